//! Real Postfix 3.7 with postscreen in front of smtpd and `smtpd_client_port_logging = yes`: a
//! client that talks before its turn (PREGREET), one that hangs up at once (HANGUP), one on
//! postscreen's deny list (DENYLISTED), and a sender that delivers through postscreen to smtpd.
//! Every line Postfix writes is understood (`check-log` finds no unknown line and no unknown
//! shape), and the agent following the log live gives the cluster the bad verdicts and the
//! delivery, port suffixes and all.

use mxrep_tests::netns::*;
use mxrep_tests::postfix::{raw_client, Postfix};
use mxrep_tests::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `addr`'s counter `name`, asked of the node in namespace `ns`.
fn count(ns: &str, api: &str, addr: &str, name: &str) -> Option<u64> {
    let r = ctl_json_in(Some(ns), api, &["ip", "show", addr]).ok()?;
    r["counters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?["count"]
        .as_u64()
}

#[test]
fn postscreen_verdicts_and_port_suffixes_from_real_postfix() {
    if !e2e_available("postscreen_verdicts_and_port_suffixes_from_real_postfix")
        || !tool_available("postscreen test", "postfix", "postfix")
        || !tool_available("postscreen test", "swaks", "swaks")
    {
        return;
    }
    let _g = serial();
    let mut lab = Lab::new("ps");
    let mx = lab.host("mx", &["192.0.2.1/24"]);
    let cl = lab.host(
        "cl",
        &[
            "192.0.2.2/24",
            "203.0.113.51/32",
            "203.0.113.52/32",
            "203.0.113.53/32",
        ],
    );
    route(&mx, "203.0.113.0/24");
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_in(dir.path(), &mx);

    let postfix = Postfix::start(&mx, &dir.path().join("postfix"), "mx1", "192.0.2.1");
    postfix.enable_postscreen("203.0.113.53/32 reject\n");

    let agent_log = dir.path().join("agent.log");
    let _agent = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &mx])
            .arg(bin("mxrep-agent"))
            .args(["--cluster", &node.api, "--node-name", "mx1", "--dry-run"])
            .arg("--postfix-log")
            .arg(&postfix.log)
            .arg("--state-dir")
            .arg(dir.path().join("agent-state"))
            .env("MXREP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .expect("start mxrep-agent"),
    );
    wait_until(LIMIT, "the agent to run", || {
        std::fs::read_to_string(&agent_log)
            .ok()?
            .contains("mxrep-agent running")
            .then_some(())
    });

    for (src, early) in [
        ("203.0.113.51", Some("EHLO early.test")),
        ("203.0.113.52", None),
        ("203.0.113.53", None),
    ] {
        assert!(raw_client(&cl, src, "192.0.2.1", early), "{src} connects");
    }
    wait_until(LIMIT, "a delivery through postscreen to smtpd", || {
        testbed::swaks_at(&cl, "192.0.2.2", "192.0.2.1", "user@mx.test").then_some(())
    });
    let log = wait_until(
        LIMIT,
        "postscreen's verdicts and smtpd's port-suffixed lines",
        || {
            let t = postfix.log_text();
            (t.contains("PREGREET")
                && t.contains("HANGUP")
                && t.contains("DENYLISTED")
                && t.contains("connect from unknown[192.0.2.2]:")
                && t.contains("client=unknown[192.0.2.2]:"))
            .then_some(t)
        },
    );

    // How tests/fixtures/postfix-3.7-postscreen.log was captured.
    if let Ok(to) = std::env::var("MXREP_CAPTURE_DIR") {
        std::fs::copy(
            &postfix.log,
            Path::new(&to).join("postfix-3.7-postscreen.log"),
        )
        .unwrap();
    }
    // Every line of the real log understood: no unknown line, no unknown shape.
    let out = run_ok(
        Command::new(bin("mxrep-agent"))
            .args(["check-log", "--json", "--log-timezone", "UTC"])
            .arg(&postfix.log),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["not_understood"], 0, "{log}");
    assert_eq!(s["unknown_shapes"], serde_json::json!({}), "{log}");
    assert_eq!(s["evidence_understood"], 1.0, "{s}");
    assert!(s["by_kind"]["protocol-error"].as_u64() >= Some(3), "{s}");
    assert!(s["by_kind"]["accepted"].as_u64() >= Some(1), "{s}");

    // Followed live: the three bad clients and the delivery reached the cluster.
    for bad in ["203.0.113.51", "203.0.113.52", "203.0.113.53"] {
        wait_until(LIMIT, &format!("a bad connection of {bad}"), || {
            (count(&mx, &node.api, bad, "bad connections (not mail)")? == 1).then_some(())
        });
    }
    wait_until(LIMIT, "the delivery counted", || {
        (count(&mx, &node.api, "192.0.2.2", "accepted messages")? == 1).then_some(())
    });
}
