//! Decisions an operator can trust, on real kernels: three cluster nodes and three MX hosts'
//! agents (network namespaces, nftables) follow Postfix logs of a realistic 90-second traffic
//! mix (see `mxrep_tests::mix`). Every spammer class is banned on every MX host; no address of
//! a legitimate sender is ever covered by a ban. The detection delay of each spammer class
//! (first connection → element in every MX host's kernel set) is printed for BENCHMARKS.md.
//! Then `mxrepctl replay` runs over the same three logs and must reach the same verdicts.

use mxrep_tests::mix::{covers, lines, sessions, CLASSES};
use mxrep_tests::netns::*;
use mxrep_tests::testbed::*;
use mxrep_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

const SECONDS: u64 = 90;

fn stamp() -> String {
    chrono::Local::now().format("%b %e %H:%M:%S").to_string()
}

/// Kernel bans of every MX host.
fn kernel(bed: &Testbed) -> Vec<Vec<String>> {
    bed.mx.iter().map(|m| m.kernel_bans()).collect()
}

/// Legitimate addresses covered by a ban on some MX host.
fn false_positives(bans: &[Vec<String>], legit: &BTreeSet<String>) -> Vec<String> {
    let mut out = vec![];
    for (i, host) in bans.iter().enumerate() {
        for b in host {
            for a in legit.iter().filter(|a| covers(b, a)) {
                out.push(format!("mx{}: {b} covers legitimate {a}", i + 1));
            }
        }
    }
    out
}

#[test]
fn spammers_banned_everywhere_and_no_legitimate_sender_ever() {
    if !e2e_available("spammers_banned_everywhere_and_no_legitimate_sender_ever") {
        return;
    }
    let _g = serial();
    let bed = Testbed::start(false);
    let mut logs: Vec<std::fs::File> = bed
        .mx
        .iter()
        .map(|m| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&m.log)
                .unwrap()
        })
        .collect();
    let spam: Vec<_> = CLASSES.iter().filter(|c| c.spam).collect();
    let mut first_seen: BTreeMap<&str, Instant> = BTreeMap::new();
    let mut detected: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut legit = BTreeSet::new();
    let mut pid = 20_000u32;
    let start = Instant::now();
    let check = |legit: &BTreeSet<String>,
                 first_seen: &BTreeMap<&str, Instant>,
                 detected: &mut BTreeMap<&str, Duration>| {
        let bans = kernel(&bed);
        let fp = false_positives(&bans, legit);
        assert!(fp.is_empty(), "false positives: {fp:?}");
        for c in &spam {
            if detected.contains_key(c.name) {
                continue;
            }
            if let Some(t0) = first_seen.get(c.name) {
                if bans.iter().all(|h| h.iter().any(|b| b == c.key)) {
                    detected.insert(c.name, t0.elapsed());
                }
            }
        }
    };
    for s in 0..SECONDS {
        let due = start + Duration::from_secs(s);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = stamp();
        for sess in sessions(s) {
            pid += 1;
            first_seen.entry(sess.class).or_insert_with(Instant::now);
            let class = CLASSES.iter().find(|c| c.name == sess.class).unwrap();
            if !class.spam {
                legit.insert(sess.addr.clone());
            }
            let host = &bed.mx[sess.mx].name;
            for l in lines(&sess, &now, host, pid) {
                writeln!(logs[sess.mx], "{l}").unwrap();
            }
        }
        check(&legit, &first_seen, &mut detected);
    }
    wait_until(LIMIT, "every spammer class banned on every MX host", || {
        check(&legit, &first_seen, &mut detected);
        (detected.len() == spam.len()).then_some(())
    });
    let bans = kernel(&bed);
    assert!(false_positives(&bans, &legit).is_empty());
    for (class, d) in &detected {
        eprintln!("detection delay {class}: {:.1} s", d.as_secs_f64());
    }
    eprintln!("false positives: 0 (legitimate addresses: {})", legit.len());

    // The same logs, replayed offline: the same spammers, no legitimate mail lost.
    let args: Vec<String> = bed
        .mx
        .iter()
        .map(|m| format!("{}={}", m.name, m.log.display()))
        .collect();
    let mut argv = vec!["replay", "--json"];
    argv.extend(args.iter().map(|s| s.as_str()));
    let out = run_ok(std::process::Command::new(bin("mxrepctl")).args(&argv));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decided: Vec<(String, String)> = r["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["prefix"].as_str().unwrap().to_string(),
                b["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for c in &spam {
        assert!(
            decided.iter().any(|(p, a)| p == c.key && a == "drop"),
            "replay missed {}: {decided:?}",
            c.name
        );
    }
    for (p, a) in &decided {
        assert!(
            !legit.iter().any(|l| covers(p, l)),
            "replay would {a} {p}, covering a legitimate sender"
        );
    }
    assert_eq!(
        r["summary"]["delivered_messages_from_banned"], 0,
        "{}",
        r["summary"]
    );
    assert_eq!(r["summary"]["lines_not_understood"], 0);
    assert_eq!(r["summary"]["mx_hosts"].as_array().unwrap().len(), 3);
}
