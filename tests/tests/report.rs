//! `mxrepctl report` on a real kernel: an agent enforcing into nftables counts the connection
//! attempts its drop rules drop (over all rules, and per ban through per-element counters) and
//! reports them to the cluster; the report shows them per MX host and per ban, with the bans
//! made and the ban lifted by hand.

use mxrep_tests::netns::*;
use mxrep_tests::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn report(ns: &str, api: &str) -> Option<Value> {
    ctl_json_in(Some(ns), api, &["report", "--since", "1h"]).ok()
}

/// The dropped count of `key` (an MX host or a ban) in report section `list`.
fn dropped(r: &Value, list: &str, field: &str, key: &str) -> u64 {
    r[list]
        .as_array()
        .and_then(|a| a.iter().find(|e| e[field] == key))
        .and_then(|e| e["dropped"].as_u64())
        .unwrap_or(0)
}

#[test]
fn dropped_attempts_are_counted_per_host_and_ban_and_reported() {
    if !e2e_available("dropped_attempts_are_counted_per_host_and_ban_and_reported") {
        return;
    }
    let _g = serial();
    let hosts = MxAndClient::start("r");
    let (mx, cl) = (hosts.mx.clone(), hosts.cl.clone());
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_in(dir.path(), &mx);
    let log = dir.path().join("maillog");
    std::fs::write(&log, "").unwrap();
    let _agent = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &mx])
            .arg(bin("mxrep-agent"))
            .args([
                "--cluster",
                &node.api,
                "--node-name",
                "mx1",
                "--nft-table",
                "mxrep_r",
            ])
            .args(["--drop-report-every", "200ms", "--postfix-log"])
            .arg(&log)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    for p in ["203.0.113.5", "203.0.113.0/29"] {
        let out = ctl_in(
            Some(&mx),
            &node.api,
            &["ban", p, "--for", "1h", "--reason", "spam"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_for(LIMIT, "both bans dropping", || {
        !connects(&cl, "203.0.113.5", "192.0.2.1") && !connects(&cl, "203.0.113.6", "192.0.2.1")
    });
    for _ in 0..3 {
        assert!(!connects(&cl, "203.0.113.5", "192.0.2.1"));
    }
    assert!(!connects(&cl, "203.0.113.6", "192.0.2.1"));

    // 4 attempts from .5 and 2 from .6 at least (SYN retries may add to them).
    let r = wait_until(LIMIT, "the drops reported per host and per ban", || {
        let r = report(&mx, &node.api)?;
        (dropped(&r, "top", "prefix", "203.0.113.5/32") >= 4
            && dropped(&r, "top", "prefix", "203.0.113.0/29") >= 2)
            .then_some(r)
    });
    assert!(dropped(&r, "hosts", "mx_host", "mx1") >= 6, "{r}");
    assert!(r["dropped"].as_u64().unwrap() >= 6);
    assert_eq!(
        r["top"][0]["prefix"], "203.0.113.5/32",
        "most dropped first: {r}"
    );
    let made: Vec<(String, String, u64)> = r["bans_made"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap().to_string();
            (s("rule"), s("source"), b["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(made, vec![("operator".into(), "manual".into(), 2)]);

    // Lifted by hand: named with who did it, and it stays in the report with what it dropped.
    let out = ctl_in(Some(&mx), &node.api, &["unban", "203.0.113.0/29"]);
    assert!(out.status.success());
    let r = wait_until(LIMIT, "the lifted ban in the report", || {
        let r = report(&mx, &node.api)?;
        (!r["lifted"].as_array()?.is_empty()).then_some(r)
    });
    assert_eq!(r["lifted"][0]["prefix"], "203.0.113.0/29");
    assert_eq!(r["lifted"][0]["actor"], "dev");
    let ended = r["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["prefix"] == "203.0.113.0/29");
    assert_eq!(ended.map(|t| t["active"].clone()), Some(Value::Bool(false)));

    // The text form names every part; a look back past what is kept is refused clearly.
    let out = ctl_in(Some(&mx), &node.api, &["report"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "connection attempts dropped:",
        "mx1",
        "bans made: 2",
        "greylisting:",
        "DNS list hits:",
        "bans that dropped most:",
        "bans lifted by hand:",
    ] {
        assert!(text.contains(part), "{part} missing:\n{text}");
    }
    let out = ctl_in(
        Some(&mx),
        &node.api,
        &["--json", "report", "--since", "30d"],
    );
    assert!(!out.status.success());
    let e: Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    assert_eq!(e["error"]["code"], "invalid_argument", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("7 days"));
}
