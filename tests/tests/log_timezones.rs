//! Agents on hosts whose syslog writes local time without a zone: one two hours east of UTC, one
//! five hours west. Each reads its stamps in its own zone (`TZ`, as the host's /etc/localtime
//! would say), so the cluster counts every connection of both, at the right time, and bans a
//! burst exactly as for a UTC host.

use mxrep_tests::*;
use std::io::Write;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

struct ZonedAgent {
    agent: AgentProc,
    log: std::path::PathBuf,
    /// The host's offset from UTC, in hours.
    offset_h: i32,
    name: String,
}

impl ZonedAgent {
    fn start(dir: &std::path::Path, api: &str, name: &str, tz: &str, offset_h: i32) -> Self {
        let log = dir.join(format!("{name}.maillog"));
        std::fs::write(&log, "").unwrap();
        let path = log.display().to_string();
        let args = ["--dry-run", "--postfix-log", &path];
        Self {
            agent: AgentProc::start(dir, api, name, &args, &[("TZ", tz)]),
            log,
            offset_h,
            name: name.into(),
        }
    }

    /// Appends `lines` (messages after the header) stamped with this host's local time, no zone.
    fn write(&self, lines: &[String]) {
        let local = chrono::Utc::now() + chrono::Duration::hours(self.offset_h.into());
        let stamp = local.format("%b %e %H:%M:%S");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap();
        for l in lines {
            writeln!(f, "{stamp} {} {l}", self.name).unwrap();
        }
    }
}

fn delivering(addr: &str, pid: u32) -> Vec<String> {
    vec![
        format!("postfix/smtpd[{pid}]: connect from mail.example[{addr}]"),
        format!("postfix/smtpd[{pid}]: 4N{pid:X}: client=mail.example[{addr}]"),
        format!("postfix/smtpd[{pid}]: disconnect from mail.example[{addr}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
    ]
}

fn rejected(addr: &str, pid: u32) -> Vec<String> {
    vec![
        format!("postfix/smtpd[{pid}]: connect from unknown[{addr}]"),
        format!("postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from unknown[{addr}]: 550 5.1.1 <n{pid}@mx.test>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.test> to=<n{pid}@mx.test> proto=ESMTP helo=<spam.test>"),
        format!("postfix/smtpd[{pid}]: disconnect from unknown[{addr}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"),
    ]
}

#[test]
fn hosts_east_and_west_of_utc_count_and_ban_like_a_utc_host() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_leading(dir.path(), "");
    let east = ZonedAgent::start(dir.path(), &node.api, "mx-east", "Etc/GMT-2", 2);
    let west = ZonedAgent::start(dir.path(), &node.api, "mx-west", "Etc/GMT+5", -5);
    // The same sender delivers three messages through each host.
    for (k, a) in [&east, &west].into_iter().enumerate() {
        let lines: Vec<String> = (0..3)
            .flat_map(|i| delivering("198.51.100.70", 3000 + 10 * k as u32 + i))
            .collect();
        a.write(&lines);
    }
    wait_until(
        LIMIT,
        "six accepted messages counted for the sender",
        || (accepted_messages(&node.api, "198.51.100.70")? == 6).then_some(()),
    );
    // A burst of rejected connections, split over the two hosts, is banned with both as evidence.
    for (k, a) in [&east, &west].into_iter().enumerate() {
        let lines: Vec<String> = (0..3)
            .flat_map(|i| rejected("203.0.113.70", 4000 + 10 * k as u32 + i))
            .collect();
        a.write(&lines);
    }
    let hosts = wait_until(LIMIT, "the burst to be banned", || {
        ban_evidence_hosts(&node.api, "203.0.113.70/32")
    });
    assert_eq!(hosts, vec!["mx-east".to_string(), "mx-west".to_string()]);
    // And still exactly six: nothing counted twice, nothing refused as from the future.
    assert_eq!(accepted_messages(&node.api, "198.51.100.70"), Some(6));
}

#[test]
fn stamps_in_a_zone_the_agent_was_not_told_count_when_read_and_are_reported_once() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_leading(dir.path(), "");
    // The host's syslog writes UTC+2 local time; the agent was left to read it as UTC.
    let wrong = ZonedAgent::start(dir.path(), &node.api, "mx-wrong", "UTC", 2);
    let lines: Vec<String> = (0..7)
        .flat_map(|i| delivering("198.51.100.71", 5000 + i))
        .collect();
    wrong.write(&lines);
    wait_until(
        LIMIT,
        "every message counted though stamped two hours ahead",
        || (accepted_messages(&node.api, "198.51.100.71")? == 7).then_some(()),
    );
    let log = wait_until(LIMIT, "the offset reported", || {
        let t = wrong.agent.log_text();
        t.contains("2 h 00 min ahead of this host's clock")
            .then_some(t)
    });
    assert!(log.contains("--log-timezone +02:00"), "{log}");
    assert_eq!(
        log.matches("min ahead of").count(),
        1,
        "reported once: {log}"
    );
}
