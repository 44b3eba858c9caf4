//! A decisive connection written behind a long unread backlog overtakes it: the agent's tail
//! scout sends its verdict ahead while the in-order reader is still far behind, and once the
//! in-order reader is through, every connection — the scouted ones included — is counted
//! exactly once, also when the agent is restarted (SIGTERM) between the two. A real node and a
//! real agent following a real file.

use mxrep_tests::*;
use std::io::Write;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
const SENDERS: u64 = 20;
/// Delivering connections written at once behind the agent's back: about 50 MB of log.
const BACKLOG: u64 = 150_000;
const BAD: &str = "203.0.113.77";
/// Bad connections of `BAD`: below any ban, so that only counting is looked at.
const BAD_CONNECTIONS: u64 = 3;

fn sender(n: u64) -> String {
    format!("198.51.100.{}", n % SENDERS + 10)
}

fn counter(api: &str, addr: &str, name: &str) -> Option<u64> {
    let r = ctl_json(api, &["ip", "show", addr]).ok()?;
    Some(
        r["counters"]
            .as_array()?
            .iter()
            .filter(|c| c["name"] == name)
            .filter_map(|c| c["count"].as_u64())
            .sum(),
    )
}

#[test]
fn a_decisive_connection_behind_a_backlog_is_sent_ahead_and_counted_once() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single(dir.path());
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[message_rate]\nenabled = false\n").unwrap();
    ctl_json(&node.api, &["policy", "set", policy.to_str().unwrap()]).expect("policy set");
    let log = dir.path().join("maillog");
    std::fs::write(&log, "").unwrap();
    let path = log.display().to_string();
    let start = || {
        AgentProc::start(
            dir.path(),
            &node.api,
            "mx1",
            &["--dry-run", "--postfix-log", &path],
            &[],
        )
    };
    let agent = start();
    let delivered = || -> Option<u64> {
        (0..SENDERS)
            .map(|n| counter(&node.api, &sender(n), "accepted messages"))
            .sum::<Option<u64>>()
    };
    let t = chrono::Utc::now().format("%b %e %H:%M:%S").to_string();
    let connection = |n: u64| {
        let (ip, pid) = (sender(n), 20_000 + n % 5_000);
        format!(
            "{t} mx1 postfix/smtpd[{pid}]: connect from unknown[{ip}]\n\
             {t} mx1 postfix/smtpd[{pid}]: 4{n:X}: client=unknown[{ip}]\n\
             {t} mx1 postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"
        )
    };
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    // The agent follows the file (from its end): a first connection is counted.
    f.write_all(connection(0).as_bytes()).unwrap();
    wait_until(LIMIT, "the first connection counted", || {
        (delivered()? == 1).then_some(())
    });

    // The backlog, then the bad connections, written at once.
    let mut text = String::new();
    for n in 1..=BACKLOG {
        text.push_str(&connection(n));
    }
    text.push_str(
        &mxrep_tests::mix::refused_connections(BAD, "mx1", &t)
            .lines()
            .take(3 * BAD_CONNECTIONS as usize)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    // A last delivering connection after them: once it is counted, the in-order reader has read
    // the bad connections as well.
    text.push_str(&connection(BACKLOG + 1));
    f.write_all(text.as_bytes()).unwrap();
    let total = BACKLOG + 2;

    let bad = wait_until(LIMIT, "the bad connections counted", || {
        counter(&node.api, BAD, "bad connections (not mail)").filter(|c| *c >= BAD_CONNECTIONS)
    });
    let behind = delivered().expect("counters");
    assert!(
        behind < total,
        "the bad connections were counted only after the whole backlog ({behind} of {total}): nothing overtook it"
    );
    println!("bad connections counted while {behind} of {total} delivered connections were");
    assert_eq!(bad, BAD_CONNECTIONS);
    // Stopped while the reader is still behind them: the next run must know they were sent.
    let text = agent.stopped();
    let at_stop = delivered().expect("counters");
    assert!(
        at_stop < BACKLOG,
        "the reader had read the whole backlog ({at_stop} of {total}) before the agent stopped"
    );
    assert!(
        text.contains("every verdict read was acknowledged by the cluster"),
        "{text}"
    );
    let agent = start();
    let got = wait_until(LIMIT, "every connection counted", || {
        delivered().filter(|c| *c >= total)
    });
    assert_eq!(got, total, "counted {got} of {total} delivered connections");
    // The in-order reader has read the bad connections too by now, and a stopping agent waits
    // until the cluster acknowledged every verdict it read: a second count would show after it.
    let text = agent.stopped();
    assert!(
        text.contains("every verdict read was acknowledged by the cluster"),
        "{text}"
    );
    assert_eq!(
        counter(&node.api, BAD, "bad connections (not mail)"),
        Some(BAD_CONNECTIONS),
        "the bad connections were counted again by the in-order reader"
    );
}
