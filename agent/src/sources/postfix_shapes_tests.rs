//! The corpus of Postfix line shapes in tests/fixtures/postfix-shapes.tsv: client port suffixes,
//! one-space single-digit days, other instances (`postfix-out/smtpd`), every postscreen verdict
//! and reject, informational lines, and lines of an unknown shape — each with the event it must
//! yield.

use super::postfix::*;
use chrono::{TimeZone, Utc};
use mxrep_proto::v1 as pb;
use pb::event::Kind;

fn what(parsed: &Parsed) -> String {
    match parsed {
        Parsed::Event(e) => match &e.kind {
            Some(Kind::Rejected(r)) => format!("reject:{}", class_name(r.class())),
            Some(Kind::ProtocolError(p)) => format!("protocol-error:{}", error_name(p.kind())),
            _ => kind_name(e).to_string(),
        },
        Parsed::Ignored => "ignored".into(),
        Parsed::NotUnderstood => "not-understood".into(),
        Parsed::UnknownShape(_) => "unknown-shape".into(),
    }
}

fn class_name(c: pb::RejectClass) -> String {
    c.as_str_name()
        .trim_start_matches("REJECT_CLASS_")
        .to_ascii_lowercase()
}

fn error_name(k: pb::ProtocolErrorKind) -> String {
    k.as_str_name()
        .trim_start_matches("PROTOCOL_ERROR_KIND_")
        .to_ascii_lowercase()
}

#[test]
fn every_shape_yields_its_event() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/postfix-shapes.tsv"
    );
    let text = std::fs::read_to_string(path).expect("the shapes corpus");
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    let mut checked = 0;
    for (n, row) in text.lines().enumerate() {
        if row.starts_with('#') || row.trim().is_empty() {
            continue;
        }
        let (want, line) = row.split_once('\t').expect("EXPECTED<TAB>LINE");
        let got = parse_line(line, now);
        assert_eq!(what(&got), want, "line {}: {line}", n + 1);
        if let Parsed::Event(e) = &got {
            assert!(e.client_address.parse::<std::net::IpAddr>().is_ok());
            assert!(!e.client_address.contains(']'), "{line}");
            // Nov 6 (one space or two) of 2026, 07:0x UTC.
            let t = Utc.timestamp_millis_opt(e.time_unix_ms).unwrap();
            assert_eq!(t.format("%m-%d %H").to_string(), "11-06 07", "{line}");
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked} lines checked");
}

#[test]
fn an_unknown_shape_masks_what_varies() {
    let a = parse_line(
        "Nov  6 07:02:18 mx1 postfix/smtpd[1]: SOMETHING NEW happened to unknown[203.0.113.44]:41248 after 3 tries",
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap(),
    );
    let b = parse_line(
        "Nov  6 07:09:00 mx1 postfix/smtpd[2]: SOMETHING NEW happened to mail.example[2001:db8::1]:5 after 12 tries",
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap(),
    );
    let (Parsed::UnknownShape(x), Parsed::UnknownShape(y)) = (&a, &b) else {
        panic!("{a:?} {b:?}");
    };
    assert_eq!(x, "SOMETHING NEW happened to unknown… after … tries");
    assert_eq!(y, "SOMETHING NEW happened to mail.example… after … tries");
}

/// The verdicts the connection tracker gives for the capture at `path` (every line must be an
/// event or a line without evidence), as (client, verdict).
fn verdicts_of(path: &str) -> Vec<(String, pb::Verdict)> {
    use crate::sources::connections::ConnectionTracker;
    let text = std::fs::read_to_string(path).expect("the capture");
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
    let mut tracker = ConnectionTracker::default();
    let mut verdicts = vec![];
    for line in text.lines() {
        let read = parse_line_in(line, now, &crate::sources::timezone::LogTimezone::Utc);
        assert!(
            matches!(read.parsed, Parsed::Event(_) | Parsed::Ignored),
            "{line}: {:?}",
            read.parsed
        );
        verdicts.extend(tracker.feed(read));
    }
    verdicts
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Verdict(v)) => Some((e.client_address.clone(), v.verdict())),
            _ => None,
        })
        .collect()
}

fn pairs(want: &[(&str, pb::Verdict)]) -> Vec<(String, pb::Verdict)> {
    want.iter().map(|(a, v)| (a.to_string(), *v)).collect()
}

#[test]
fn real_postscreen_capture_gives_one_verdict_per_connection() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/postfix-3.7-postscreen.log"
    );
    let (d, b) = (pb::Verdict::Delivered, pb::Verdict::Bad);
    // PREGREET then HANGUP of one connection is one bad connection, not two.
    assert_eq!(
        verdicts_of(path),
        pairs(&[
            ("203.0.113.51", b),
            ("203.0.113.52", b),
            ("203.0.113.53", b),
            ("192.0.2.2", d)
        ])
    );
}

#[test]
fn real_exim_capture_gives_the_same_verdicts() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/exim-4.96-mainlog.log"
    );
    let (d, b) = (pb::Verdict::Delivered, pb::Verdict::Bad);
    assert_eq!(
        verdicts_of(path),
        pairs(&[
            ("127.0.0.2", d),
            ("127.0.0.2", d),
            ("127.0.0.3", b),
            ("127.0.0.3", b),
            ("127.0.0.3", b)
        ])
    );
}

#[test]
fn every_form_of_the_other_sources_yields_its_event() {
    use crate::sources::{cri::CriJoiner, journal::entry_line, syslog::message::split};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/source-forms.tsv"
    );
    let text = std::fs::read_to_string(path).expect("the forms corpus");
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 21, 0, 0).unwrap();
    let tz = crate::sources::timezone::LogTimezone::Utc;
    let mut checked = 0;
    for row in text
        .lines()
        .filter(|r| !r.starts_with('#') && !r.trim().is_empty())
    {
        let mut cols = row.splitn(3, '\t');
        let (want, form, record) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
        );
        let got =
            match form {
                "cri" => CriJoiner::default()
                    .push(record)
                    .ok()
                    .flatten()
                    .map(|c| c.to_line("node-1", now, &tz).parsed),
                "syslog" => split(record, "192.0.2.99")
                    .map(|(_, line)| parse_line_in(&line, now, &tz).parsed),
                "journal" => entry_line(record, "mx-j")
                    .map(|(line, _)| parse_line_in(&line, now, &tz).parsed),
                other => panic!("unknown form {other}"),
            };
        let got = got.map_or_else(|| "refused".to_string(), |p| what(&p));
        assert_eq!(got, want, "{form}: {record}");
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
}
