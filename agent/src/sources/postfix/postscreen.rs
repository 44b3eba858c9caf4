//! postscreen's lines: its verdicts on a client before smtpd sees it (PREGREET, HANGUP, DNSBL
//! rank, COMMAND TIME/COUNT/LENGTH LIMIT, BARE NEWLINE, NON-SMTP COMMAND, DENYLISTED) and its
//! own `NOQUEUE: reject: RCPT from [ADDR]:PORT` lines. Its informational lines (CONNECT, PASS,
//! allowlisting, DISCONNECT) carry no evidence.

use super::{addr, patterns, protocol_error, smtpd, unknown_shape, Parsed};
use mxrep_proto::v1 as pb;
use pb::ProtocolErrorKind as K;

/// Verdict prefixes and what each means.
const VERDICTS: [(&str, K); 10] = [
    ("PREGREET ", K::Pregreet),
    ("HANGUP ", K::Hangup),
    ("COMMAND TIME LIMIT ", K::CommandTimeLimit),
    ("COMMAND COUNT LIMIT ", K::CommandCountLimit),
    ("COMMAND LENGTH LIMIT ", K::CommandLengthLimit),
    ("BARE NEWLINE ", K::BareNewline),
    ("NON-SMTP COMMAND ", K::NonSmtpCommand),
    ("DENYLISTED ", K::Denylisted),
    ("BLACKLISTED ", K::Denylisted),
    ("DNSBL rank ", K::Dnsbl),
];

/// Lines about a client that say nothing about its behaviour.
const INFORMATIONAL: [&str; 11] = [
    "CONNECT from ",
    "PASS NEW ",
    "PASS OLD ",
    "WHITELISTED ",
    "ALLOWLISTED ",
    "WHITELIST VETO ",
    "ALLOWLIST VETO ",
    "DISCONNECT ",
    "NOQUEUE: reject: CONNECT ",
    "warning: ",
    "cache ",
];

/// The event of one postscreen message stamped `t`.
pub(super) fn message(t: i64, msg: &str) -> Parsed {
    let p = patterns();
    if let Some(i) = msg.find("reject: RCPT from ") {
        return smtpd::reject(t, &msg[i..]);
    }
    let Some((_, kind)) = VERDICTS.iter().find(|(prefix, _)| msg.starts_with(prefix)) else {
        return unknown_shape(msg, &INFORMATIONAL);
    };
    if *kind == K::Dnsbl && !p.dnsbl.is_match(msg) {
        return Parsed::Ignored;
    }
    let Some(a) = p
        .postscreen_client
        .captures(msg)
        .and_then(|c| addr(c.get(1)?.as_str()))
    else {
        return Parsed::Ignored;
    };
    let detail: String = msg.chars().take(120).collect();
    protocol_error(t, a, *kind, detail)
}
