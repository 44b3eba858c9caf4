//! The soak's traffic: good senders delivering on every MX host, counted per sender, spammers
//! refused; and the final check that the cluster counted every delivered message exactly.

use mxrep_tests::testbed::Testbed;
use mxrep_tests::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GOOD_SENDERS: u64 = 30;
/// Connections written per good sender, over all MX hosts.
pub type Written = Arc<Vec<AtomicU64>>;
pub fn good(n: u64) -> String {
    format!("198.51.100.{}", 10 + n % GOOD_SENDERS)
}

fn stamp() -> String {
    chrono::Utc::now().format("%b %e %H:%M:%S").to_string()
}

fn append(log: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Delivering connections on every MX host (about 50 a second each) until `stop`.
pub fn good_traffic(
    bed: &Testbed,
    stop: &Arc<AtomicBool>,
    written: &Written,
) -> Vec<std::thread::JoinHandle<()>> {
    bed.mx
        .iter()
        .map(|m| {
            let (log, host, stop, written) = (m.log.clone(), m.name.clone(), stop.clone(), written.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let (ip, pid, t) = (good(n), 20_000 + n % 10_000, stamp());
                    append(&log, &format!(
                        "{t} {host} postfix/smtpd[{pid}]: connect from unknown[{ip}]\n\
                         {t} {host} postfix/smtpd[{pid}]: 5{n:X}: client=unknown[{ip}]\n\
                         {t} {host} postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"));
                    written[(n % GOOD_SENDERS) as usize].fetch_add(1, Ordering::SeqCst);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect()
}

/// Five refused connections from `addr` on `host`'s log: enough for a ban.
pub fn spam(log: &std::path::Path, host: &str, addr: &str) {
    append(
        log,
        &mxrep_tests::mix::refused_connections(addr, host, &stamp()),
    );
}

/// Waits up to a minute until the leader counted every delivered message written, exactly;
/// names the senders short of it if not.
pub fn check_every_message_counted(bed: &Testbed, written: &Written) {
    let total: u64 = written.iter().map(|w| w.load(Ordering::SeqCst)).sum();
    let leader = bed.wait_for_leader();
    let node = bed.nodes.iter().find(|n| n.id == leader).unwrap();
    // Delivered messages counted per good sender.
    let count_each = || -> Option<Vec<u64>> {
        (0..GOOD_SENDERS)
            .map(|n| {
                let r = ctl_json_in(node.netns.as_deref(), &node.api, &["ip", "show", &good(n)])
                    .ok()?;
                let c = r["counters"].as_array()?.iter();
                Some(
                    // Over the 24 h good memory: "accepted messages" is a 10-minute window.
                    c.filter(|c| c["name"] == "messages delivered (good memory)")
                        .filter_map(|c| c["count"].as_u64())
                        .sum::<u64>(),
                )
            })
            .collect()
    };
    let count_all = || count_each().map(|c| c.iter().sum::<u64>());
    // Waits up to a minute for every message to be counted; then names the senders short of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    let got = loop {
        let c = count_all();
        if c != last {
            eprintln!("  counted {c:?} of {total}");
            last = c;
        }
        match c {
            Some(c) if c >= total || Instant::now() >= deadline => break c,
            _ if Instant::now() >= deadline => break 0,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    if got != total {
        let each = count_each().unwrap_or_default();
        for (n, c) in each.iter().enumerate() {
            let w = written[n].load(Ordering::SeqCst);
            if *c != w {
                eprintln!("  {}: counted {c} of {w} written", good(n as u64));
            }
        }
    }
    assert_eq!(
        got, total,
        "counted {got} delivered messages of {total} written"
    );
}
