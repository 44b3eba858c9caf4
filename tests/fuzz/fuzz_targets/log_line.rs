//! A log line in every form the agent reads: Postfix and Exim lines as written to a file, a
//! syslog message as received, a kubelet CRI line, a journal entry. Nothing may panic.
#![no_main]
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use mxrep_agent::sources::cri::CriJoiner;
use mxrep_agent::sources::journal::entry_line;
use mxrep_agent::sources::postfix::parse_line_in;
use mxrep_agent::sources::syslog::message::split;
use mxrep_agent::sources::timezone::LogTimezone;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 21, 0, 0).unwrap();
    let tz = LogTimezone::Utc;
    let _ = parse_line_in(&text, now, &tz);
    if let Some((_, line)) = split(&text, "192.0.2.99") {
        let _ = parse_line_in(&line, now, &tz);
    }
    if let Ok(Some(c)) = CriJoiner::default().push(&text) {
        let _ = c.to_line("node-1", now, &tz);
    }
    if let Some((line, _)) = entry_line(&text, "mx-j") {
        let _ = parse_line_in(&line, now, &tz);
    }
});
