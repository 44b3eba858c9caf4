//! Postfix log lines → typed events. Pure: no I/O, no clock but the reference time passed in.
//!
//! Understands Postfix's own `maillog_file` lines and syslog lines (RFC 3164 `Nov 26 17:06:09`,
//! ISO/RFC 3339 timestamps as rsyslog writes them, and RFC 5424 `<22>1 2026-…`), from `smtpd` and
//! `postscreen`: connect, disconnect with command counts, `reject:` with code and reason class,
//! SASL failures, accepted messages (`QUEUEID: client=`), lost connections, too many errors,
//! improper pipelining, and postscreen's PREGREET, HANGUP and DNSBL lines. Client addresses come
//! as `name[ADDR]`, `unknown[ADDR]`, `[ADDR]:PORT`, IPv4 or IPv6 (with or without `IPv6:`).

use super::timezone::LogTimezone;
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use regex::Regex;
use std::net::IpAddr;
use std::sync::OnceLock;

/// What one line turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An event for the cluster.
    Event(pb::Event),
    /// A well-formed log line that carries no event (other programs, other messages).
    Ignored,
    /// Not a log line this parser knows.
    NotUnderstood,
}

struct Patterns {
    bsd: Regex,
    iso: Regex,
    rfc5424: Regex,
    client: Regex,
    postscreen_client: Regex,
    reject: Regex,
    counts: Regex,
    sasl: Regex,
    accepted: Regex,
    after: Regex,
    dnsbl: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        bsd: Regex::new(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$").unwrap(),
        iso: Regex::new(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$").unwrap(),
        rfc5424: Regex::new(r"^<\d{1,3}>1 (\S+) (\S+) (\S+) (\S+) (\S+) (?:-|\[.*?\]) ?(.*)$").unwrap(),
        client: Regex::new(r"from ([^\s\[]*)\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]").unwrap(),
        postscreen_client: Regex::new(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]:\d+").unwrap(),
        reject: Regex::new(r"reject: (\w+) from [^\s\[]*\[[^\]]+\]: (\d{3}) (?:(\d\.\d{1,3}\.\d{1,3}) )?(.*?)(?:; from=<([^>]*)>)?(?: to=<([^>]*)>)?(?: proto=\S+)?(?: helo=<([^>]*)>)?$").unwrap(),
        counts: Regex::new(r"(\w+)=(\d+)(?:/(\d+))?").unwrap(),
        sasl: Regex::new(r"^warning: [^\s\[]*\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]: SASL (\S+) authentication failed").unwrap(),
        accepted: Regex::new(r"^([0-9A-Za-z]+): client=[^\s\[]*\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]").unwrap(),
        after: Regex::new(r"^(lost connection|too many errors|improper command pipelining) after (\S+) from [^\s\[]*\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]").unwrap(),
        dnsbl: Regex::new(r"^DNSBL rank (\d+) for \[(?:IPv6:)?([0-9A-Fa-f:.]+)\]:\d+").unwrap(),
    })
}

fn month(m: &str) -> Option<u32> {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    M.iter().position(|x| *x == m).map(|i| i as u32 + 1)
}

/// Time of an RFC 3164 stamp, which has no year and no zone: the year that puts it closest
/// before `now`, in the zone `tz` the writer's clock was in.
fn bsd_time(mon: &str, day: &str, hms: &str, now: DateTime<Utc>, tz: &LogTimezone) -> Option<i64> {
    let m = month(mon)?;
    let mut year = now.year();
    let parse = |y: i32| {
        NaiveDateTime::parse_from_str(
            &format!("{y}-{m:02}-{:0>2} {hms}", day),
            "%Y-%m-%d %H:%M:%S",
        )
        .ok()
    };
    let mut t = tz.resolve(&parse(year)?)?;
    if t > now.timestamp_millis() + 86_400_000 {
        year -= 1;
        t = tz.resolve(&parse(year)?)?;
    }
    Some(t)
}

fn iso_time(s: &str, tz: &LogTimezone) -> Option<i64> {
    let s = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.timestamp_millis());
    }
    // rsyslog's "+0000" offsets, and stamps without any offset (in the zone `tz`).
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(&s, f) {
            return Some(t.timestamp_millis());
        }
    }
    tz.resolve(&NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f").ok()?)
}

/// A line's header: time, program, process id, and the message after them.
struct Header<'a> {
    t: i64,
    program: &'a str,
    pid: Option<u32>,
    msg: &'a str,
}

/// Splits a line into its header and message; `tz` places zone-less stamps.
fn header<'a>(line: &'a str, now: DateTime<Utc>, tz: &LogTimezone) -> Option<Header<'a>> {
    let p = patterns();
    let pid = |m: Option<regex::Match<'_>>| m.and_then(|m| m.as_str().parse().ok());
    if let Some(c) = p.bsd.captures(line) {
        let t = bsd_time(
            c.get(1)?.as_str(),
            c.get(2)?.as_str(),
            c.get(3)?.as_str(),
            now,
            tz,
        )?;
        return Some(Header {
            t,
            program: c.get(5)?.as_str(),
            pid: pid(c.get(6)),
            msg: c.get(7)?.as_str(),
        });
    }
    if let Some(c) = p.iso.captures(line) {
        return Some(Header {
            t: iso_time(c.get(1)?.as_str(), tz)?,
            program: c.get(3)?.as_str(),
            pid: pid(c.get(4)),
            msg: c.get(5)?.as_str(),
        });
    }
    if let Some(c) = p.rfc5424.captures(line) {
        return Some(Header {
            t: iso_time(c.get(1)?.as_str(), tz)?,
            program: c.get(3)?.as_str(),
            pid: c.get(4).and_then(|m| m.as_str().parse().ok()),
            msg: c.get(6)?.as_str(),
        });
    }
    None
}

fn addr(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn event(t: i64, a: IpAddr, kind: Kind) -> Parsed {
    Parsed::Event(pb::Event {
        time_unix_ms: t,
        client_address: a.to_string(),
        kind: Some(kind),
    })
}

/// The reason class of a reject text.
pub fn reject_class(text: &str) -> pb::RejectClass {
    let l = text.to_ascii_lowercase();
    use pb::RejectClass as C;
    if l.contains("greylist") {
        C::Greylisted
    } else if l.contains("user unknown")
        || l.contains("unknown user")
        || l.contains("mailbox unavailable")
    {
        C::UnknownUser
    } else if l.contains("relay access denied") {
        C::RelayDenied
    } else if l.contains("blocked using") || l.contains("listed") {
        C::Blocklisted
    } else if l.contains("helo command rejected") || l.contains("sender address rejected") {
        C::HeloOrSender
    } else if l.contains("recipient address rejected") || l.contains("client host rejected") {
        C::Policy
    } else {
        C::Other
    }
}

fn protocol_error(t: i64, a: IpAddr, kind: pb::ProtocolErrorKind, detail: String) -> Parsed {
    event(
        t,
        a,
        Kind::ProtocolError(pb::ProtocolError {
            kind: kind as i32,
            detail,
        }),
    )
}

/// One line read: what it is, and which process of which program wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub parsed: Parsed,
    /// "postfix/smtpd" and its process id: one smtpd process serves one connection at a time.
    pub process: Option<(String, u32)>,
    /// The client name of a `connect from NAME[ADDR]` line (Postfix's verified name, or
    /// "unknown").
    pub client_name: Option<String>,
}

/// Parses one log line with zone-less stamps in UTC; `now` resolves the year of RFC 3164 stamps.
pub fn parse_line(line: &str, now: DateTime<Utc>) -> Parsed {
    parse_line_in(line, now, &LogTimezone::Utc).parsed
}

/// Parses one log line; zone-less stamps are in `tz`.
pub fn parse_line_in(line: &str, now: DateTime<Utc>, tz: &LogTimezone) -> Line {
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(h) = header(line, now, tz) else {
        return Line {
            parsed: Parsed::NotUnderstood,
            process: None,
            client_name: None,
        };
    };
    let process = h.pid.map(|pid| (h.program.to_string(), pid));
    let client_name = h
        .msg
        .strip_prefix("connect from ")
        .and_then(|rest| rest.split('[').next())
        .map(|n| n.to_string());
    Line {
        parsed: message(h.t, h.program, h.msg),
        process,
        client_name,
    }
}

/// The event of one message from `program`, stamped `t`.
fn message(t: i64, program: &str, msg: &str) -> Parsed {
    let prog = program.rsplit('/').next().unwrap_or(program);
    let p = patterns();
    match prog {
        "smtpd" => {
            if let Some(rest) = msg.strip_prefix("connect from ") {
                let a = p
                    .client
                    .captures(&format!("from {rest}"))
                    .and_then(|c| addr(c.get(2)?.as_str()));
                return a.map_or(Parsed::Ignored, |a| {
                    event(t, a, Kind::Connect(pb::Connect {}))
                });
            }
            if msg.starts_with("disconnect from ") {
                let Some(c) = p.client.captures(msg) else {
                    return Parsed::Ignored;
                };
                let Some(a) = addr(&c[2]) else {
                    return Parsed::Ignored;
                };
                let tail = &msg[c.get(0).map_or(0, |m| m.end())..];
                let commands = p
                    .counts
                    .captures_iter(tail)
                    .map(|c| {
                        let ok: u32 = c[2].parse().unwrap_or(0);
                        pb::CommandCount {
                            command: c[1].to_string(),
                            ok,
                            total: c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(ok),
                        }
                    })
                    .collect();
                return event(t, a, Kind::Disconnect(pb::Disconnect { commands }));
            }
            if let Some(i) = msg.find("reject: ") {
                let Some(c) = p.client.captures(&msg[i..]) else {
                    return Parsed::Ignored;
                };
                let Some(a) = addr(&c[2]) else {
                    return Parsed::Ignored;
                };
                let Some(r) = p.reject.captures(&msg[i..]) else {
                    return Parsed::Ignored;
                };
                let code: u32 = r[2].parse().unwrap_or(0);
                let enhanced = r.get(3).map_or("", |m| m.as_str()).to_string();
                // 4.3.x is our own side failing (e.g. a policy service down), not the client.
                if enhanced.starts_with("4.3.") {
                    return Parsed::Ignored;
                }
                let text = r.get(4).map_or("", |m| m.as_str());
                return event(
                    t,
                    a,
                    Kind::Rejected(pb::RecipientRejected {
                        code,
                        enhanced_code: enhanced,
                        class: reject_class(text) as i32,
                        sender: r.get(5).map_or("", |m| m.as_str()).to_string(),
                        recipient: r.get(6).map_or("", |m| m.as_str()).to_string(),
                        helo: r.get(7).map_or("", |m| m.as_str()).to_string(),
                    }),
                );
            }
            if let Some(c) = p.sasl.captures(msg) {
                let Some(a) = addr(&c[1]) else {
                    return Parsed::Ignored;
                };
                return event(
                    t,
                    a,
                    Kind::AuthFailure(pb::AuthFailure {
                        mechanism: c[2].to_string(),
                    }),
                );
            }
            if let Some(c) = p.accepted.captures(msg) {
                let Some(a) = addr(&c[2]) else {
                    return Parsed::Ignored;
                };
                return event(
                    t,
                    a,
                    Kind::Accepted(pb::MessageAccepted {
                        queue_id: c[1].to_string(),
                    }),
                );
            }
            if let Some(c) = p.after.captures(msg) {
                let Some(a) = addr(&c[3]) else {
                    return Parsed::Ignored;
                };
                let kind = match &c[1] {
                    "lost connection" => pb::ProtocolErrorKind::LostConnection,
                    "too many errors" => pb::ProtocolErrorKind::TooManyErrors,
                    _ => pb::ProtocolErrorKind::Pipelining,
                };
                return protocol_error(t, a, kind, format!("{} after {}", &c[1], &c[2]));
            }
            Parsed::Ignored
        }
        "postscreen" => {
            let kind = if msg.starts_with("PREGREET ") {
                pb::ProtocolErrorKind::Pregreet
            } else if msg.starts_with("HANGUP ") {
                pb::ProtocolErrorKind::Hangup
            } else if p.dnsbl.is_match(msg) {
                pb::ProtocolErrorKind::Dnsbl
            } else {
                return Parsed::Ignored;
            };
            let Some(a) = p
                .postscreen_client
                .captures(msg)
                .and_then(|c| addr(c.get(1)?.as_str()))
            else {
                return Parsed::Ignored;
            };
            let detail: String = msg.chars().take(120).collect();
            protocol_error(t, a, kind, detail)
        }
        _ => Parsed::Ignored,
    }
}

/// Short name of an event's kind, as check-log prints it.
pub fn kind_name(e: &pb::Event) -> &'static str {
    match &e.kind {
        Some(Kind::Connect(_)) => "connect",
        Some(Kind::Disconnect(_)) => "disconnect",
        Some(Kind::Rejected(_)) => "reject",
        Some(Kind::AuthFailure(_)) => "auth-failure",
        Some(Kind::Accepted(_)) => "accepted",
        Some(Kind::ProtocolError(_)) => "protocol-error",
        Some(Kind::PolicyRequest(_)) => "policy-request",
        Some(Kind::Verdict(_)) => "verdict",
        None => "unknown",
    }
}
