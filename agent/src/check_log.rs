//! `mxrep-agent check-log FILE [--json]`: prints the events read from a log, one per line, the
//! verdict of each SMTP connection as the cluster will count it, and a summary — the operator's
//! way to check a log format, as `fail2ban-regex` is for fail2ban.

use crate::sources::connections::ConnectionTracker;
use crate::sources::postfix::{kind_name, parse_line_in, Parsed};
use crate::sources::timezone::LogTimezone;
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// Counts of one run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub events: BTreeMap<&'static str, u64>,
    pub ignored: u64,
    pub not_understood: u64,
    /// Postfix lines about a client in a shape this parser does not know, by shape.
    pub unknown_shapes: BTreeMap<String, u64>,
    /// Lines that carried evidence about a client and became events (verdicts not counted).
    pub evidence_lines: u64,
}

impl Summary {
    /// Of the lines that speak about a client, the share that became events (1.0 when none).
    pub fn understood_share(&self) -> f64 {
        let unknown: u64 = self.unknown_shapes.values().sum();
        let all = self.evidence_lines + unknown;
        if all == 0 {
            1.0
        } else {
            self.evidence_lines as f64 / all as f64
        }
    }
}

fn details(e: &pb::Event) -> String {
    match &e.kind {
        Some(Kind::Disconnect(d)) => d
            .commands
            .iter()
            .map(|c| {
                if c.ok == c.total {
                    format!("{}={}", c.command, c.ok)
                } else {
                    format!("{}={}/{}", c.command, c.ok, c.total)
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(Kind::Rejected(r)) => format!(
            "code={} {} class={} from=<{}> to=<{}>",
            r.code,
            r.enhanced_code,
            r.class()
                .as_str_name()
                .trim_start_matches("REJECT_CLASS_")
                .to_lowercase(),
            r.sender,
            r.recipient
        ),
        Some(Kind::AuthFailure(a)) => format!("mechanism={}", a.mechanism),
        Some(Kind::Accepted(a)) => format!("queue_id={}", a.queue_id),
        Some(Kind::Verdict(v)) => format!(
            "{} ({}) messages={} rejected={} deferred={} client_name={}",
            v.verdict()
                .as_str_name()
                .trim_start_matches("VERDICT_")
                .to_lowercase(),
            v.reason,
            v.messages,
            v.rejected_recipients,
            v.deferred,
            v.client_name
        ),
        Some(Kind::ProtocolError(p)) => format!(
            "{} ({})",
            p.kind()
                .as_str_name()
                .trim_start_matches("PROTOCOL_ERROR_KIND_")
                .to_lowercase(),
            p.detail
        ),
        _ => String::new(),
    }
}

/// Prints one event (a line's, or a connection's verdict).
fn print_event(out: &mut impl Write, e: &pb::Event, json: bool) -> std::io::Result<()> {
    let kind = kind_name(e);
    let time = chrono::DateTime::from_timestamp_millis(e.time_unix_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    if json {
        let v = serde_json::json!({"time": time, "client": e.client_address, "kind": kind, "details": details(e)});
        writeln!(out, "{v}")
    } else {
        writeln!(
            out,
            "{time} {:<39} {:<14} {}",
            e.client_address,
            kind,
            details(e)
        )
    }
}

/// Reads `input` to the end, printing each event and each connection's verdict to `out`;
/// zone-less stamps are read in `tz`. Returns the summary.
pub fn check(
    input: impl BufRead,
    out: &mut impl Write,
    json: bool,
    tz: &LogTimezone,
) -> std::io::Result<Summary> {
    let mut s = Summary::default();
    let now = chrono::Utc::now();
    let mut connections = ConnectionTracker::default();
    let mut cri = crate::sources::cri::CriJoiner::default();
    let emit = |s: &mut Summary, out: &mut _, e: &pb::Event| {
        *s.events.entry(kind_name(e)).or_insert(0) += 1;
        print_event(out, e, json)
    };
    for line in input.split(b'\n') {
        let line = line?;
        s.lines += 1;
        let text = String::from_utf8_lossy(&line);
        // Container logs (CRI) are told apart line by line, partial lines joined.
        let read = if crate::sources::cri::looks_like_cri(&text) {
            match cri.push(&text) {
                Ok(None) => continue,
                Ok(Some(c)) => c.to_line("container", now, tz),
                Err(_) => parse_line_in(&text, now, tz),
            }
        } else {
            parse_line_in(&text, now, tz)
        };
        match &read.parsed {
            Parsed::Event(e) => {
                s.evidence_lines += 1;
                emit(&mut s, out, e)?;
                for v in connections.feed(read) {
                    emit(&mut s, out, &v)?;
                }
            }
            Parsed::Ignored => s.ignored += 1,
            Parsed::NotUnderstood => s.not_understood += 1,
            Parsed::UnknownShape(shape) => {
                *s.unknown_shapes.entry(shape.clone()).or_insert(0) += 1;
            }
        }
    }
    for v in connections.expire(i64::MAX) {
        emit(&mut s, out, &v)?;
    }
    Ok(s)
}

/// Prints the summary (as JSON with `json`).
pub fn print_summary(s: &Summary, out: &mut impl Write, json: bool) -> std::io::Result<()> {
    let total: u64 = s.events.values().sum();
    if json {
        let v = serde_json::json!({
            "summary": {"lines": s.lines, "events": total, "by_kind": s.events,
                        "ignored": s.ignored, "not_understood": s.not_understood,
                        "unknown_shapes": s.unknown_shapes,
                        "evidence_understood": s.understood_share()}
        });
        return writeln!(out, "{v}");
    }
    writeln!(out, "---")?;
    writeln!(out, "lines read:          {}", s.lines)?;
    writeln!(out, "events:              {total}")?;
    for (k, n) in &s.events {
        writeln!(out, "  {k:<18} {n}")?;
    }
    writeln!(
        out,
        "lines without event: {} (other Postfix programs and messages)",
        s.ignored
    )?;
    writeln!(out, "lines not understood: {}", s.not_understood)?;
    writeln!(
        out,
        "lines about a client understood: {:.1} %",
        s.understood_share() * 100.0
    )?;
    if !s.unknown_shapes.is_empty() {
        let n: u64 = s.unknown_shapes.values().sum();
        writeln!(out, "Postfix lines about a client in an unknown shape: {n}")?;
        for (shape, n) in &s.unknown_shapes {
            writeln!(out, "  {n:>6}  {shape}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_lines_about_a_client_that_were_understood() {
        let log = "Nov  6 07:01:02 mx1 postfix/smtpd[1]: connect from unknown[203.0.113.20]:50123\n\
                   Nov  6 07:01:03 mx1 postfix/smtpd[1]: SOMETHING NEW for unknown[203.0.113.20]:50123\n\
                   Nov  6 07:01:04 mx1 postfix/smtpd[1]: disconnect from unknown[203.0.113.20]:50123 ehlo=1 quit=1 commands=2\n\
                   Nov  6 07:01:05 mx1 postfix/qmgr[2]: 4N: removed\n";
        let mut out = Vec::new();
        let s = check(log.as_bytes(), &mut out, true, &LogTimezone::Utc).unwrap();
        assert_eq!((s.evidence_lines, s.ignored), (2, 1));
        assert!((s.understood_share() - 2.0 / 3.0).abs() < 1e-9);
        print_summary(&s, &mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("lines about a client understood: 66.7 %"),
            "{text}"
        );
        assert!(text.contains("SOMETHING NEW for unknown…"), "{text}");
        assert_eq!(Summary::default().understood_share(), 1.0);
    }
}
