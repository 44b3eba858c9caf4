//! `mxrepctl replay`: the engine offline over Postfix logs. Over the real capture in the
//! fixtures, and over the generated traffic mix written as three MX hosts' logs: every spammer
//! class decided, no legitimate sender covered, no delivered mail from a banned address, and the
//! same input always gives the same output.

use mxrep_tests::mix::{covers, lines, sessions, CLASSES};
use mxrep_tests::*;
use serde_json::Value;
use std::process::Command;

fn replay(args: &[&str]) -> (Value, String) {
    let out = run_ok(Command::new(bin("mxrepctl")).arg("replay").args(args));
    let text = String::from_utf8(out.stdout).unwrap();
    let json = if args.contains(&"--json") {
        serde_json::from_str(&text).unwrap()
    } else {
        Value::Null
    };
    (json, text)
}

#[test]
fn the_real_capture_replays_without_a_ban() {
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/postfix-3.7-maillog.log"
    );
    let (r, _) = replay(&["--json", "--log-timezone", "UTC", &format!("mx1={capture}")]);
    let s = &r["summary"];
    assert_eq!(s["connections"]["delivered"], 202, "{s}");
    assert_eq!(
        s["connections"]["neutral"].as_u64().unwrap() + s["connections"]["bad"].as_u64().unwrap(),
        9
    );
    assert_eq!(s["lines_not_understood"], 0);
    assert_eq!(s["mx_hosts"], serde_json::json!(["mx1"]));
    // A test bed's handful of refused sessions is no reason to ban anyone.
    assert_eq!(r["decisions"], serde_json::json!([]), "{r}");
    let (_, text) = replay(&["--log-timezone", "UTC", capture]);
    assert!(
        text.contains("summary: 211 connections (202 delivered"),
        "{text}"
    );
    assert!(
        text.contains("delivered messages from addresses it would have banned: 0"),
        "{text}"
    );
}

#[test]
fn the_traffic_mix_replays_to_the_spammers_and_never_a_legitimate_sender() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
        .unwrap()
        .and_hms_opt(10, 0, 0)
        .unwrap();
    let mut logs = vec![String::new(); 3];
    let mut legit = std::collections::BTreeSet::new();
    let mut pid = 1000;
    for s in 0..90u64 {
        let stamp = (t0 + chrono::Duration::seconds(s as i64))
            .format("%b %e %H:%M:%S")
            .to_string();
        for sess in sessions(s) {
            pid += 1;
            if !CLASSES.iter().any(|c| c.name == sess.class && c.spam) {
                legit.insert(sess.addr.clone());
            }
            for l in lines(&sess, &stamp, &format!("mx{}", sess.mx + 1), pid) {
                logs[sess.mx].push_str(&l);
                logs[sess.mx].push('\n');
            }
        }
    }
    let paths: Vec<String> = logs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let p = dir.path().join(format!("mx{}.log", i + 1));
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        })
        .collect();
    let mut args = vec!["--json", "--log-timezone", "UTC"];
    args.extend(paths.iter().map(|p| p.as_str()));
    let (r, first) = replay(&args);
    let decisions = r["decisions"].as_array().unwrap();
    for c in CLASSES.iter().filter(|c| c.spam) {
        assert!(
            decisions
                .iter()
                .any(|d| d["prefix"] == c.key && d["action"] == "drop"),
            "{} not banned: {decisions:?}",
            c.name
        );
    }
    for d in decisions {
        let p = d["prefix"].as_str().unwrap();
        assert!(
            !legit.iter().any(|a| covers(p, a)),
            "{p} covers a legitimate sender: {d}"
        );
    }
    let s = &r["summary"];
    assert_eq!(s["delivered_messages_from_banned"], 0, "{s}");
    assert_eq!(s["mx_hosts"], serde_json::json!(["mx1", "mx2", "mx3"]));
    assert_eq!(s["lines_not_understood"], 0);
    // The single-address burst was refused temporarily before it was banned.
    assert!(decisions
        .iter()
        .any(|d| d["prefix"] == "198.51.100.66/32" && d["action"] == "tempfail"));
    // Deterministic: the same logs, the same output, byte for byte.
    let (_, again) = replay(&args);
    assert_eq!(first, again);
}
