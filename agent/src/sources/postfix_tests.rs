//! Parser tests on real Postfix 3.7 lines (the shared capture) and on the other formats and
//! messages an MX host logs.

use super::postfix::*;
use chrono::{TimeZone, Utc};
use mxrep_proto::v1 as pb;
use pb::event::Kind;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 18, 0, 0).unwrap()
}

fn ev(line: &str) -> pb::Event {
    match parse_line(line, now()) {
        Parsed::Event(e) => e,
        other => panic!("no event from {line:?}: {other:?}"),
    }
}

#[test]
fn the_real_capture_parses_without_a_line_not_understood() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/postfix-3.7-maillog.log"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        // The capture is committed under tests/fixtures.
        panic!("sample capture missing at {path}");
    };
    let mut by_kind = std::collections::BTreeMap::new();
    let mut not_understood = 0;
    for line in text.lines() {
        match parse_line(line, now()) {
            Parsed::Event(e) => *by_kind.entry(kind_name(&e)).or_insert(0) += 1,
            Parsed::Ignored => {}
            Parsed::NotUnderstood | Parsed::UnknownShape(_) => not_understood += 1,
        }
    }
    assert_eq!(not_understood, 0, "every line understood, no unknown shape");
    let connects = text
        .lines()
        .filter(|l| l.contains("smtpd[") && l.contains(": connect from "))
        .count();
    let accepted = text
        .lines()
        .filter(|l| l.contains("smtpd[") && l.contains(": client="))
        .count();
    assert_eq!(by_kind["connect"], connects);
    assert_eq!(
        by_kind["disconnect"], connects,
        "every session ends with a disconnect line"
    );
    assert_eq!(by_kind["accepted"], accepted);
    assert!(by_kind["reject"] > 0);
}

#[test]
fn connect_disconnect_and_counts() {
    let e = ev("Nov 26 17:06:09 mx1 postfix/smtpd[9874]: connect from unknown[10.250.0.10]");
    assert_eq!(e.client_address, "10.250.0.10");
    assert_eq!(
        e.time_unix_ms,
        Utc.with_ymd_and_hms(2026, 11, 26, 17, 6, 9)
            .unwrap()
            .timestamp_millis()
    );
    assert!(matches!(e.kind, Some(Kind::Connect(_))));
    let e = ev("Nov 26 17:06:09 mx1 postfix/smtpd[9874]: disconnect from mail.example.org[192.0.2.7] ehlo=1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=3/5");
    let Some(Kind::Disconnect(d)) = e.kind else {
        panic!()
    };
    let get = |n: &str| {
        d.commands
            .iter()
            .find(|c| c.command == n)
            .map(|c| (c.ok, c.total))
    };
    assert_eq!(get("rcpt"), Some((0, 1)));
    assert_eq!(get("mail"), Some((1, 1)));
    assert_eq!(get("commands"), Some((3, 5)));
    assert_eq!(e.client_address, "192.0.2.7");
    // Our own policy-service warnings are not connections.
    assert_eq!(
        parse_line("Nov 26 17:06:16 mx1 postfix/smtpd[9874]: warning: connect to 127.0.0.1:10040: Connection refused", now()),
        Parsed::Ignored
    );
}

#[test]
fn reject_classes() {
    let cases = [
        ("450 4.7.1 <user@mx1.test>: Recipient address rejected: greylisted", pb::RejectClass::Greylisted, 450),
        ("554 5.7.1 <victim@elsewhere.example>: Relay access denied", pb::RejectClass::RelayDenied, 554),
        ("550 5.1.1 <nosuchuser@mx1.test>: Recipient address rejected: User unknown in local recipient table", pb::RejectClass::UnknownUser, 550),
        ("554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org", pb::RejectClass::Blocklisted, 554),
        ("504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname", pb::RejectClass::HeloOrSender, 504),
        ("554 5.7.1 <user@mx1.test>: Recipient address rejected: blocked by test policy", pb::RejectClass::Policy, 554),
    ];
    for (text, class, code) in cases {
        let line = format!("Nov 26 17:06:11 mx1 postfix/smtpd[9874]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: {text}; from=<bulk@spam.test> to=<x@mx1.test> proto=ESMTP helo=<spam1.test>");
        let e = ev(&line);
        let Some(Kind::Rejected(r)) = e.kind else {
            panic!("{line}")
        };
        assert_eq!((r.class(), r.code), (class, code), "{text}");
        assert_eq!(r.sender, "bulk@spam.test");
        assert_eq!(r.recipient, "x@mx1.test");
        assert_eq!(r.helo, "spam1.test");
    }
    // A 4.3.5 "Server configuration problem" is our side failing, not the client.
    let l = "Nov 26 17:06:17 mx1 postfix/smtpd[9874]: NOQUEUE: reject: RCPT from unknown[10.250.0.10]: 451 4.3.5 <user@mx1.test>: Recipient address rejected: Server configuration problem; from=<bulk@spam.test> to=<user@mx1.test> proto=ESMTP helo=<spam1.test>";
    assert_eq!(parse_line(l, now()), Parsed::Ignored);
}

#[test]
fn sasl_accepted_and_protocol_errors() {
    let e = ev("Nov 26 17:10:00 mx1 postfix/smtpd[1]: warning: unknown[198.51.100.3]: SASL LOGIN authentication failed: UGFzc3dvcmQ6");
    assert!(matches!(e.kind, Some(Kind::AuthFailure(ref a)) if a.mechanism == "LOGIN"));
    let e = ev("Nov 26 17:06:09 mx1 postfix/smtpd[9874]: 2B066B6317: client=unknown[10.250.0.10]");
    assert!(matches!(e.kind, Some(Kind::Accepted(ref a)) if a.queue_id == "2B066B6317"));
    let e = ev("Nov 26 17:06:09 mx1 postfix/smtpd[9874]: 2B066B6317: client=mail.example.org[192.0.2.8], sasl_method=PLAIN, sasl_username=u");
    assert_eq!(e.client_address, "192.0.2.8");
    for (line, kind) in [
        (
            "lost connection after CONNECT from unknown[203.0.113.5]",
            pb::ProtocolErrorKind::LostConnection,
        ),
        (
            "too many errors after RCPT from unknown[203.0.113.5]",
            pb::ProtocolErrorKind::TooManyErrors,
        ),
        (
            "improper command pipelining after EHLO from unknown[203.0.113.5]: QUIT\\r\\n",
            pb::ProtocolErrorKind::Pipelining,
        ),
    ] {
        let e = ev(&format!("Nov 26 17:06:09 mx1 postfix/smtpd[1]: {line}"));
        assert!(
            matches!(e.kind, Some(Kind::ProtocolError(ref p)) if p.kind() == kind),
            "{line}"
        );
        assert_eq!(e.client_address, "203.0.113.5");
    }
}

#[test]
fn postscreen_lines() {
    for (msg, kind) in [
        (
            "PREGREET 11 after 0.1 from [203.0.113.9]:41234: EHLO spam\\r\\n",
            pb::ProtocolErrorKind::Pregreet,
        ),
        (
            "HANGUP after 0.5 from [203.0.113.9]:41234 in tests after SMTP handshake",
            pb::ProtocolErrorKind::Hangup,
        ),
        (
            "DNSBL rank 3 for [2001:db8::9]:41234",
            pb::ProtocolErrorKind::Dnsbl,
        ),
    ] {
        let e = ev(&format!(
            "Nov 26 17:06:09 mx1 postfix/postscreen[77]: {msg}"
        ));
        assert!(
            matches!(e.kind, Some(Kind::ProtocolError(ref p)) if p.kind() == kind),
            "{msg}"
        );
    }
    // postscreen's own CONNECT is not counted: smtpd logs the connection it passes.
    assert_eq!(
        parse_line("Nov 26 17:06:09 mx1 postfix/postscreen[77]: CONNECT from [203.0.113.9]:41234 to [192.0.2.1]:25", now()),
        Parsed::Ignored
    );
}

#[test]
fn ipv6_and_syslog_formats() {
    let e = ev("2026-11-26T17:06:09.123456+00:00 mx1 postfix/smtpd[9874]: connect from unknown[2001:db8:1::7]");
    assert_eq!(e.client_address, "2001:db8:1::7");
    assert_eq!(e.time_unix_ms % 1000, 123);
    let e = ev("2026-11-26T18:06:09+01:00 mx1 postfix/smtpd[9874]: connect from host.example[IPv6:2001:db8::1]");
    assert_eq!(e.client_address, "2001:db8::1");
    assert_eq!(
        e.time_unix_ms,
        Utc.with_ymd_and_hms(2026, 11, 26, 17, 6, 9)
            .unwrap()
            .timestamp_millis()
    );
    let e = ev(
        "<22>1 2026-11-26T17:06:09.5Z mx1 postfix/smtpd 9874 - - connect from unknown[192.0.2.44]",
    );
    assert_eq!(e.client_address, "192.0.2.44");
    // A December stamp read in early January belongs to the year before.
    let jan = Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap();
    let Parsed::Event(e) = parse_line(
        "Dec 31 23:59:59 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]",
        jan,
    ) else {
        panic!()
    };
    assert_eq!(
        e.time_unix_ms,
        Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp_millis()
    );
}

#[test]
fn garbage_is_not_understood_and_never_panics() {
    for l in [
        "",
        "garbage",
        "Nov 99 xx mx1",
        "\u{0}\u{1}binary",
        "Nov 26 17:06:09 mx1 postfix/smtpd[1]: connect from unknown[999.1.1.1]",
    ] {
        let r = parse_line(l, now());
        assert!(
            matches!(r, Parsed::NotUnderstood | Parsed::Ignored),
            "{l:?}: {r:?}"
        );
    }
    assert_eq!(parse_line("garbage", now()), Parsed::NotUnderstood);
}

mod verdicts {
    use crate::sources::connections::ConnectionTracker;
    use crate::sources::postfix::parse_line_in;
    use crate::sources::timezone::LogTimezone;
    use mxrep_proto::v1 as pb;
    use pb::event::Kind;
    use std::collections::BTreeMap;

    fn run(text: &str) -> Vec<pb::ConnectionVerdict> {
        let now = chrono::Utc::now();
        let mut t = ConnectionTracker::default();
        let mut out = vec![];
        for l in text.lines() {
            for e in t.feed(parse_line_in(l, now, &LogTimezone::Utc)) {
                if let Some(Kind::Verdict(v)) = e.kind {
                    out.push(v);
                }
            }
        }
        assert_eq!(t.open(), 0, "every connection of the capture ended");
        out
    }

    #[test]
    fn the_real_capture_gives_one_verdict_per_connection() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/postfix-3.7-maillog.log"
        ))
        .unwrap();
        let v = run(&text);
        assert_eq!(v.len(), 211, "one per disconnect");
        let mut by: BTreeMap<(i32, String), usize> = BTreeMap::new();
        for x in &v {
            *by.entry((x.verdict, x.reason.clone())).or_default() += 1;
        }
        let delivered = v
            .iter()
            .filter(|x| x.verdict == pb::Verdict::Delivered as i32)
            .count();
        assert_eq!(delivered, 202, "{by:?}");
        // The nine refused sessions: greylisted (neutral) or rejected (bad), never delivered.
        assert!(v
            .iter()
            .filter(|x| x.verdict != pb::Verdict::Delivered as i32)
            .all(|x| x.messages == 0));
    }

    #[test]
    fn shapes_of_connections() {
        let log = |pid: u32, lines: &[&str]| -> String {
            lines
                .iter()
                .map(|l| format!("Nov 26 17:06:09 mx1 postfix/smtpd[{pid}]: {l}\n"))
                .collect()
        };
        let c = "connect from mail.example.org[192.0.2.7]";
        let mut text = String::new();
        // Delivered, with one unknown recipient forgiven.
        text += &log(1, &[c, "NOQUEUE: reject: RCPT from mail.example.org[192.0.2.7]: 550 5.1.1 <old@mx1.test>: Recipient address rejected: User unknown in local recipient table; from=<l@example.org> to=<old@mx1.test> proto=ESMTP helo=<mail.example.org>", "ABC123: client=mail.example.org[192.0.2.7]", "disconnect from mail.example.org[192.0.2.7] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6"]);
        // Greylisted only: neutral.
        text += &log(2, &["connect from unknown[192.0.2.8]", "NOQUEUE: reject: RCPT from unknown[192.0.2.8]: 450 4.2.0 <a@mx1.test>: Recipient address rejected: Greylisted; from=<s@example.net> to=<a@mx1.test> proto=ESMTP helo=<x>", "disconnect from unknown[192.0.2.8] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"]);
        // Recipient verification callout: RCPT then QUIT, no DATA: neutral.
        text += &log(
            3,
            &[
                "connect from mx.other.test[192.0.2.9]",
                "disconnect from mx.other.test[192.0.2.9] ehlo=1 mail=1 rcpt=1 quit=1 commands=4",
            ],
        );
        // Connect and quit: bad.
        text += &log(
            4,
            &[
                "connect from unknown[192.0.2.10]",
                "disconnect from unknown[192.0.2.10] ehlo=1 quit=1 commands=2",
            ],
        );
        // Relay denied: bad.
        text += &log(5, &["connect from unknown[192.0.2.11]", "NOQUEUE: reject: RCPT from unknown[192.0.2.11]: 554 5.7.1 <x@elsewhere.test>: Relay access denied; from=<s@x> to=<x@elsewhere.test> proto=ESMTP helo=<x>", "disconnect from unknown[192.0.2.11] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"]);
        let v = run(&text);
        let got: Vec<(i32, &str)> = v
            .iter()
            .map(|x| (x.verdict, x.client_name.as_str()))
            .collect();
        use pb::Verdict::*;
        assert_eq!(
            got,
            vec![
                (Delivered as i32, "mail.example.org"),
                (Neutral as i32, "unknown"),
                (Neutral as i32, "mx.other.test"),
                (Bad as i32, "unknown"),
                (Bad as i32, "unknown"),
            ]
        );
        assert!(v[4].reason.contains("relay"), "{}", v[4].reason);
        assert!(v[3].reason.contains("connect and quit"), "{}", v[3].reason);
    }

    #[test]
    fn zone_less_stamps_follow_the_log_timezone() {
        let line = "Jul  1 12:00:00 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.7]";
        let now = chrono::DateTime::parse_from_rfc3339("2026-07-02T00:00:00Z")
            .unwrap()
            .to_utc();
        let at = |tz: &str| match parse_line_in(line, now, &tz.parse().unwrap()).parsed {
            crate::sources::postfix::Parsed::Event(e) => e.time_unix_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(at("UTC") - at("Europe/Berlin"), 2 * 3_600_000);
        assert_eq!(at("America/New_York") - at("UTC"), 4 * 3_600_000);
    }
}

#[test]
fn bsd_stamps_read_as_calendar_times() {
    let at = |stamp: &str| {
        ev(&format!(
            "{stamp} mx1 postfix/smtpd[7]: connect from a[192.0.2.1]"
        ))
        .time_unix_ms
    };
    let base = at("Nov 26 17:06:59");
    assert_eq!(at("Nov 26 17:07:00") - base, 1_000);
    // A leap second is the end of its minute; a day written with one digit is that day.
    assert_eq!(at("Nov 26 17:06:60") - base, 1_000);
    assert_eq!(at("Nov  6 17:06:59") - base, -20 * 86_400_000);
    // Impossible calendar times are not lines this parser knows.
    for bad in ["Nov 31 17:06:59", "Nov 26 24:00:00", "Nov 26 17:61:00"] {
        let line = format!("{bad} mx1 postfix/smtpd[7]: connect from a[192.0.2.1]");
        assert!(
            !matches!(parse_line(&line, now()), Parsed::Event(_)),
            "{bad}"
        );
    }
}
