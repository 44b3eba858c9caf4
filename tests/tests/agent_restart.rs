//! An agent restarted (SIGTERM, as `systemctl restart` or a DaemonSet rollout does it) while its
//! log grows loses and repeats nothing: on the way out it reads no further, keeps the connections
//! it saw half of, and waits until the cluster acknowledged every verdict; the next run goes on
//! from the saved position with those connections. The cluster's count of delivered messages
//! equals, exactly, the connections written — also when the first run stopped before it read a
//! single line.

use mxrep_tests::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const SENDERS: u64 = 40;

fn sender(n: u64) -> String {
    format!("198.51.100.{}", n % SENDERS + 10)
}

/// Writes delivering connections until `stop`, each in two writes (connect and client= first,
/// disconnect 5 ms later) so that stops fall inside connections; `written` counts them.
fn write_connections(log: &std::path::Path, stop: &AtomicBool, written: &AtomicU64) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    let mut n = written.load(Ordering::SeqCst);
    loop {
        let t = chrono::Utc::now().format("%b %e %H:%M:%S");
        let (ip, pid) = (sender(n), 20_000 + n % 5_000);
        let head = format!(
            "{t} mx1 postfix/smtpd[{pid}]: connect from unknown[{ip}]\n\
             {t} mx1 postfix/smtpd[{pid}]: 4{n:X}: client=unknown[{ip}]\n"
        );
        f.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let tail = format!(
            "{t} mx1 postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"
        );
        f.write_all(tail.as_bytes()).unwrap();
        n += 1;
        written.store(n, Ordering::SeqCst);
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

#[test]
fn an_agent_restarted_under_a_growing_log_counts_every_connection_once() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single(dir.path());
    // Delivered mail only: no rule may ban these senders.
    let log = dir.path().join("maillog");
    std::fs::write(&log, "").unwrap();
    let path = log.display().to_string();
    let args = ["--dry-run", "--postfix-log", &path];
    let start = || AgentProc::start(dir.path(), &node.api, "mx1", &args, &[]);

    // Delivered messages of every sender (0 for one not seen yet); None if a query failed.
    let counted = || -> Option<u64> {
        (0..SENDERS)
            .map(|n| {
                let r = ctl_json(&node.api, &["ip", "show", &sender(n)]).ok()?;
                let c = r["counters"].as_array()?.iter();
                Some(
                    c.filter(|c| c["name"] == "accepted messages")
                        .filter_map(|c| c["count"].as_u64())
                        .sum::<u64>(),
                )
            })
            .sum::<Option<u64>>()
    };
    // An agent stopped before it read a line: the next run starts where this one began (the
    // log's end then), so a connection written while no agent runs is read.
    let (exited, text) = start().stop(Duration::from_secs(15));
    assert!(exited, "the agent did not exit on SIGTERM:\n{text}");
    let (stop, written) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
    write_connections(&log, &stop, &written);
    let mut agent = start();
    wait_until(LIMIT, "the first connection counted", || {
        (counted()? == 1).then_some(())
    });
    stop.store(false, Ordering::SeqCst);
    let writer = {
        let (log, stop, written) = (log.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || write_connections(&log, &stop, &written))
    };
    for round in 0..4 {
        let before = written.load(Ordering::SeqCst);
        wait_until(LIMIT, "more connections written", || {
            (written.load(Ordering::SeqCst) > before + 60).then_some(())
        });
        let (exited, text) = agent.stop(Duration::from_secs(15));
        assert!(
            exited,
            "round {round}: the agent did not exit on SIGTERM:\n{text}"
        );
        assert!(
            text.contains("every verdict read was acknowledged by the cluster"),
            "round {round}: the agent exited without its verdicts acknowledged:\n{text}"
        );
        agent = start();
    }
    let before = written.load(Ordering::SeqCst);
    wait_until(LIMIT, "more connections written", || {
        (written.load(Ordering::SeqCst) > before + 60).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let total = written.load(Ordering::SeqCst);
    let got = wait_until(LIMIT, "every connection counted", || {
        counted().filter(|c| *c >= total)
    });
    assert_eq!(got, total, "counted {got} of {total} connections written");
    // Nothing more arrives late (a repeat would show here).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counted(), Some(total));
    drop(agent);
}
