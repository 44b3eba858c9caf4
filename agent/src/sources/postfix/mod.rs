//! Mail server log lines → typed events (Postfix's smtpd and postscreen; Exim in [`exim`]). Pure: no I/O, no clock but the reference time passed in.
//!
//! Understands Postfix's own `maillog_file` lines and syslog lines (RFC 3164 `Nov 26 17:06:09`,
//! ISO/RFC 3339 timestamps as rsyslog writes them, and RFC 5424 `<22>1 2026-…`), from `smtpd` and
//! `postscreen`: connect, disconnect with command counts, `reject:` with code and reason class,
//! SASL failures, accepted messages (`QUEUEID: client=`), lost connections, too many errors,
//! improper pipelining, and postscreen's PREGREET, HANGUP and DNSBL lines. Client addresses come
//! as `name[ADDR]`, `unknown[ADDR]`, `[ADDR]:PORT`, IPv4 or IPv6 (with or without `IPv6:`).

use super::timezone::LogTimezone;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use regex::Regex;
use std::net::IpAddr;
use std::sync::OnceLock;

pub(crate) mod bsd_header;
pub mod exim;
mod postscreen;
mod smtpd;

/// What one line turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An event for the cluster.
    Event(pb::Event),
    /// A well-formed log line that carries no event (other programs, other messages).
    Ignored,
    /// Not a log line this parser knows.
    NotUnderstood,
    /// A Postfix line about a client that matches no shape this parser knows: the shape (the
    /// message with addresses, numbers and queue ids masked), so it can be reported once.
    UnknownShape(String),
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
    /// Any client address in brackets.
    any_client: Regex,
    /// What an unknown shape masks: addresses, <…>, queue ids, numbers.
    masked: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        bsd: Regex::new(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$").unwrap(),
        iso: Regex::new(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$").unwrap(),
        rfc5424: Regex::new(r"^<\d{1,3}>1 (\S+) (\S+) (\S+) (\S+) (\S+) (?:-|\[.*?\]) ?(.*)$").unwrap(),
        client: Regex::new(r"from ([^\s\[]*)\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]").unwrap(),
        postscreen_client: Regex::new(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]:\d+").unwrap(),
        reject: Regex::new(r"reject: (\w+) from [^\s\[]*\[[^\]]+\](?::\d+)?: (\d{3}) (?:(\d\.\d{1,3}\.\d{1,3}) )?(.*?)(?:; from=<([^>]*)>,?)?(?: to=<([^>]*)>,?)?(?: proto=[^\s,]+,?)?(?: helo=<([^>]*)>)?$").unwrap(),
        counts: Regex::new(r"(\w+)=(\d+)(?:/(\d+))?").unwrap(),
        sasl: Regex::new(r"^warning: [^\s\[]*\[(?:IPv6:)?([0-9A-Fa-f:.]+)\](?::\d+)?: SASL (\S+) authentication failed").unwrap(),
        accepted: Regex::new(r"^([0-9A-Za-z]+): client=[^\s\[]*\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]").unwrap(),
        after: Regex::new(r"^(lost connection|too many errors|improper command pipelining|timeout) after (\S+)(?: \([^)]*\))? from [^\s\[]*\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]").unwrap(),
        dnsbl: Regex::new(r"^DNSBL rank (\d+) for \[(?:IPv6:)?([0-9A-Fa-f:.]+)\]:\d+").unwrap(),
        any_client: Regex::new(r"\[(?:IPv6:)?[0-9A-Fa-f]*[:.][0-9A-Fa-f:.]+\]").unwrap(),
        masked: Regex::new(r"\[[^\]]*\](?::\d+)?|<[^>]*>|\b[0-9A-F]{6,}\b|\d+(?:\.\d+)?").unwrap(),
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
    let d: u32 = day.parse().ok()?;
    let mut parts = hms.split(':').map(|x| x.parse::<u32>().ok());
    let (h, mi, s) = (parts.next()??, parts.next()??, parts.next()??);
    let mut year = now.year();
    // A leap second (`:60`) is the last millisecond-and-more of its minute, as chrono reads it.
    let at = |y: i32| {
        let date = NaiveDate::from_ymd_opt(y, m, d)?;
        match s {
            60 => date.and_hms_milli_opt(h, mi, 59, 1_000),
            _ => date.and_hms_opt(h, mi, s),
        }
    };
    let mut t = tz.resolve(&at(year)?)?;
    if t > now.timestamp_millis() + 86_400_000 {
        year -= 1;
        t = tz.resolve(&at(year)?)?;
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
    let bsd = bsd_header::bsd_fields(line)
        .or_else(|| bsd_header::BsdFields::from_captures(&p.bsd.captures(line)?));
    if let Some(f) = bsd {
        return Some(Header {
            t: bsd_time(f.month, f.day, f.hms, now, tz)?,
            program: f.program,
            pid: f.pid.and_then(|p| p.parse().ok()),
            msg: f.msg,
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
    /// postscreen's client port (`[ADDR]:PORT`): postscreen serves many connections in one
    /// process, so address and port name one.
    pub client_port: Option<u16>,
}

impl Line {
    /// A line that is no log line this parser knows.
    pub fn not_understood() -> Self {
        Self {
            parsed: Parsed::NotUnderstood,
            process: None,
            client_name: None,
            client_port: None,
        }
    }
}

/// Parses one log line with zone-less stamps in UTC; `now` resolves the year of RFC 3164 stamps.
pub fn parse_line(line: &str, now: DateTime<Utc>) -> Parsed {
    parse_line_in(line, now, &LogTimezone::Utc).parsed
}

/// Parses one log line; zone-less stamps are in `tz`.
pub fn parse_line_in(line: &str, now: DateTime<Utc>, tz: &LogTimezone) -> Line {
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(h) = header(line, now, tz) else {
        // Exim's own mainlog has a header of its own.
        return exim::parse_mainlog(line, tz).unwrap_or_else(Line::not_understood);
    };
    if matches!(h.program, "exim" | "exim4") {
        return exim::syslog_message(h.t, h.msg);
    }
    let process = h.pid.map(|pid| (h.program.to_string(), pid));
    let client_name = h
        .msg
        .strip_prefix("connect from ")
        .and_then(|rest| rest.split('[').next())
        .map(|n| n.to_string());
    let client_port = h
        .program
        .ends_with("postscreen")
        .then(|| h.msg.split_once("]:"))
        .flatten()
        .and_then(|(_, rest)| {
            let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse().ok()
        });
    Line {
        parsed: message(h.t, h.program, h.msg),
        process,
        client_name,
        client_port,
    }
}

/// The event of one message from `program`, stamped `t`.
fn message(t: i64, program: &str, msg: &str) -> Parsed {
    match program.rsplit('/').next().unwrap_or(program) {
        "smtpd" => smtpd::message(t, msg),
        "postscreen" => postscreen::message(t, msg),
        _ => Parsed::Ignored,
    }
}

/// A message that names a client but matches nothing known: its shape, or Ignored when it has no
/// client address or starts with one of the `informational` prefixes.
fn unknown_shape(msg: &str, informational: &[&str]) -> Parsed {
    let p = patterns();
    // `QUEUEID: hold: …` is as informational as `NOQUEUE: hold: …`.
    let bare = match msg.split_once(": ") {
        Some((id, rest)) if id.chars().all(|c| c.is_ascii_alphanumeric()) => rest,
        _ => msg,
    };
    let known = |m: &str| informational.iter().any(|i| m.starts_with(i));
    if !p.any_client.is_match(msg)
        || known(msg)
        || known(&format!("NOQUEUE: {bare}"))
        || known(bare)
    {
        return Parsed::Ignored;
    }
    let shape = p.masked.replace_all(msg, "…");
    Parsed::UnknownShape(shape.chars().take(100).collect())
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
