//! Exim's main log → the same events as Postfix's, so an Exim fleet gets the same protection:
//! connections, accepted messages (`<=`), rejected recipients and senders, authentication
//! failures, protocol errors, and the end of a connection. Read from `mainlog` itself
//! (`2026-11-27 20:48:04 …`, zone-less unless `log_timezone` is set) and from its syslog form
//! (`exim[PID]: …`). With `log_selector = +incoming_port` (recommended) every line names the
//! client's port, which keys the connection, as smtpd's process id does for Postfix.

use super::{addr, event, protocol_error, reject_class, Line, Parsed};
use crate::sources::timezone::LogTimezone;
use chrono::NaiveDateTime;
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use regex::Regex;
use std::sync::OnceLock;

struct Patterns {
    header: Regex,
    client: Regex,
    accepted: Regex,
    rejected: Regex,
    auth: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        header: Regex::new(
            r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: ([+-]\d{4}))?(?: \[\d+\])? (.*)$",
        )
        .unwrap(),
        client: Regex::new(r"\[((?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)\](?::(\d+))?")
            .unwrap(),
        accepted: Regex::new(r"^(\S+) <= .* H=.* P=\S*smtp").unwrap(),
        rejected: Regex::new(
            r"(temporarily )?rejected (RCPT|MAIL|EHLO or HELO) ?(?:<([^>]*)>)?: ?(.*)$",
        )
        .unwrap(),
        auth: Regex::new(r"^(\S+) authenticator failed for ").unwrap(),
    })
}

/// A line of Exim's own `mainlog`; None when it is not one.
pub fn parse_mainlog(line: &str, tz: &LogTimezone) -> Option<Line> {
    let c = patterns().header.captures(line)?;
    let stamp = c.get(1)?.as_str();
    let t = match c.get(2) {
        Some(off) => chrono::DateTime::parse_from_str(
            &format!("{stamp} {}", off.as_str()),
            "%Y-%m-%d %H:%M:%S%.f %z",
        )
        .ok()?
        .timestamp_millis(),
        None => tz.resolve(&NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f").ok()?)?,
    };
    Some(line_of(t, c.get(3)?.as_str()))
}

/// The syslog form's message, which may repeat Exim's own stamp (`syslog_timestamp`).
pub(super) fn syslog_message(t: i64, msg: &str) -> Line {
    let inner = patterns()
        .header
        .captures(msg)
        .and_then(|c| c.get(3))
        .map_or(msg, |m| m.as_str());
    line_of(t, inner)
}

/// One Exim message stamped `t`: its event, keyed by the client's port.
fn line_of(t: i64, msg: &str) -> Line {
    let p = patterns();
    let client = p.client.captures(msg);
    let a = client.as_ref().and_then(|c| addr(c.get(1)?.as_str()));
    let port: Option<u32> = client
        .as_ref()
        .and_then(|c| c.get(2))
        .and_then(|m| m.as_str().parse().ok());
    let parsed = match a {
        None => Parsed::Ignored,
        Some(a) => message(t, a, msg),
    };
    Line {
        parsed,
        process: Some(("exim".into(), port.unwrap_or(0))),
        client_name: None,
        client_port: None,
    }
}

fn message(t: i64, a: std::net::IpAddr, msg: &str) -> Parsed {
    use pb::ProtocolErrorKind as K;
    let p = patterns();
    if msg.starts_with("SMTP connection from ") {
        if msg.contains("(TCP/IP connection count") {
            return event(t, a, Kind::Connect(pb::Connect {}));
        }
        if msg.contains(" closed by ") || msg.ends_with(" lost") || msg.contains(" lost while ") {
            return event(t, a, Kind::Disconnect(pb::Disconnect { commands: vec![] }));
        }
        return Parsed::Ignored;
    }
    if let Some(c) = p.accepted.captures(msg) {
        let queue_id = c[1].to_string();
        return event(t, a, Kind::Accepted(pb::MessageAccepted { queue_id }));
    }
    if let Some(c) = p.rejected.captures(msg) {
        let temporary = c.get(1).is_some();
        let text = c.get(4).map_or("", |m| m.as_str());
        let class = match &c[2] {
            "RCPT" => reject_class(text),
            _ => pb::RejectClass::HeloOrSender,
        };
        let recipient = match &c[2] {
            "RCPT" => c.get(3).map_or("", |m| m.as_str()).to_string(),
            _ => String::new(),
        };
        return event(
            t,
            a,
            Kind::Rejected(pb::RecipientRejected {
                code: if temporary { 450 } else { 550 },
                enhanced_code: String::new(),
                class: class as i32,
                sender: String::new(),
                recipient,
                helo: String::new(),
            }),
        );
    }
    if let Some(c) = p.auth.captures(msg) {
        let mechanism = c[1].to_string();
        return event(t, a, Kind::AuthFailure(pb::AuthFailure { mechanism }));
    }
    let detail: String = msg.chars().take(120).collect();
    let kind = if msg.starts_with("SMTP protocol synchronization error") {
        K::Pipelining
    } else if msg.starts_with("SMTP protocol error")
        || msg.starts_with("SMTP syntax error")
        || (msg.starts_with("SMTP call from ") && msg.contains("dropped: too many"))
    {
        K::TooManyErrors
    } else if msg.starts_with("SMTP command timeout") || msg.starts_with("SMTP data timeout") {
        K::Timeout
    } else if msg.starts_with("unexpected disconnection") {
        K::LostConnection
    } else {
        return Parsed::Ignored;
    };
    protocol_error(t, a, kind, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> String {
        let l = parse_mainlog(line, &LogTimezone::Utc).expect("an Exim line");
        match l.parsed {
            Parsed::Event(e) => super::super::kind_name(&e).to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn exim_lines_become_the_same_events() {
        for (want, line) in [
            ("connect", "2026-11-27 20:48:04 SMTP connection from [127.0.0.1]:59472 (TCP/IP connection count = 1)"),
            ("accepted", "2026-11-27 20:48:04 1xX2rU-0004Sm-0l <= a@b.test H=(vm) [127.0.0.1]:59472 P=esmtp S=427 id=x@vm"),
            ("disconnect", "2026-11-27 20:48:04 SMTP connection from (vm) [127.0.0.1]:59472 closed by QUIT"),
            ("reject", "2026-11-27 20:48:04 H=(vm) [127.0.0.1]:59486 F=<a@b.test> rejected RCPT <nobody@mx.test>: User unknown"),
            ("reject", "2026-11-27 20:48:04 H=(x) [2001:db8::5]:4000 F=<a@b.test> temporarily rejected RCPT <u@mx.test>: greylisted"),
            ("auth-failure", "2026-11-27 20:48:05 login authenticator failed for (x) [192.0.2.5]:4001: 535 Incorrect authentication data (set_id=u)"),
            ("protocol-error", "2026-11-27 20:48:06 SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.6]:4002 input=\"EHLO x\""),
            ("protocol-error", "2026-11-27 20:48:07 SMTP call from (x) [192.0.2.7]:4003 dropped: too many syntax or protocol errors (last command was \"RCPT\")"),
            ("Ignored", "2026-11-27 20:48:02 exim 4.96 daemon started: pid=17157, listening for SMTP on [127.0.0.1]:2525"),
            ("Ignored", "2026-11-27 20:48:04 1xX2rU-0004Sm-0l => blackhole (DATA ignored) <user@mx.test> R=devnull"),
        ] {
            assert_eq!(kind(line), want, "{line}");
        }
        let r = parse_mainlog(
            "2026-11-27 20:48:04 H=(vm) [127.0.0.1]:59486 F=<a@b.test> rejected RCPT <nobody@mx.test>: User unknown",
            &LogTimezone::Utc,
        )
        .unwrap();
        assert_eq!(
            r.process,
            Some(("exim".into(), 59486)),
            "keyed by the client's port"
        );
        let Parsed::Event(e) = r.parsed else {
            unreachable!()
        };
        let Some(Kind::Rejected(rej)) = e.kind else {
            unreachable!()
        };
        assert_eq!(
            (rej.class(), rej.recipient.as_str()),
            (pb::RejectClass::UnknownUser, "nobody@mx.test")
        );
        assert_eq!(e.time_unix_ms, 1_795_812_484_000);
        assert_eq!(
            parse_mainlog("Nov 27 20:48:04 mx postfix/smtpd[1]: x", &LogTimezone::Utc),
            None
        );
    }
}
