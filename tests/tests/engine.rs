//! The reputation engine end to end: events sent over the real `ReportEvents` gRPC stream, as
//! three MX hosts' agents would (each to a different node), into a real 3-node cluster; bans read
//! back with the real `mxrepctl` from every node.

use mxrep_proto::v1::RejectClass;
use mxrep_tests::events::*;
use mxrep_tests::*;
use serde_json::Value;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn cluster() -> TestCluster {
    let c = TestCluster::start(3, Tuning::default());
    c.wait_for_leader(3, LIMIT);
    c
}

/// MX host `i` (0..3) reports to node `i + 1`.
fn mx(c: &TestCluster, i: usize) -> (&str, String) {
    (&c.node(i as u64 + 1).api, format!("mx{}", i + 1))
}

/// The ban of exactly `prefix` as node `api` lists it.
fn listed_ban(api: &str, prefix: &str) -> Option<Value> {
    let v = ctl_json(api, &["bans", "list"]).ok()?;
    v["bans"]
        .as_array()?
        .iter()
        .find(|b| b["prefix"] == prefix && b["action"] == "drop")
        .cloned()
}

/// Waits until every node lists a ban of `prefix`; returns it as node 1 lists it.
fn wait_banned_everywhere(c: &TestCluster, prefix: &str) -> Value {
    wait_until(LIMIT, &format!("{prefix} banned on every node"), || {
        let bans: Vec<Value> = c
            .nodes
            .iter()
            .map(|n| listed_ban(&n.api, prefix))
            .collect::<Option<_>>()?;
        Some(bans[0].clone())
    })
}

fn ip_show(api: &str, addr: &str) -> Value {
    ctl_json(api, &["ip", "show", addr]).expect("ip show")
}

/// `ip show` on `api` once the node has applied at least `n` of counter `name`: a batch is
/// acknowledged when committed, and a follower may apply it a moment later.
fn ip_show_counted(api: &str, addr: &str, name: &str, n: u64) -> Value {
    wait_until(
        LIMIT,
        &format!("{addr}: {n} {name} applied on {api}"),
        || {
            let r = ip_show(api, addr);
            (counter(&r, name) >= n).then_some(r)
        },
    )
}

fn counter(report: &Value, name: &str) -> u64 {
    report["counters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .and_then(|c| c["count"].as_u64())
        .unwrap_or(0)
}

fn rotating_spammer(c: &TestCluster, addrs: &[String], prefix: &str) {
    let t = now_ms();
    for (n, a) in addrs.iter().enumerate() {
        for host in 0..3 {
            let (api, name) = mx(c, host);
            let ack = send_blocking(api, &name, rejected_session(a, t + n as i64 * 100));
            assert_eq!((ack.accepted, ack.rejected), (1, 0));
        }
    }
    let ban = wait_banned_everywhere(c, prefix);
    assert_eq!(ban["source"], "automatic");
    let ev = &ban["evidence"][0];
    assert_eq!(ev["rule"], "changing-addresses");
    assert!(ev["count"].as_u64().unwrap() >= 8);
    assert_eq!(ev["mx_hosts"], serde_json::json!(["mx1", "mx2", "mx3"]));
    let hour = ban["expires_unix_ms"].as_i64().unwrap() - ban["created_unix_ms"].as_i64().unwrap();
    assert_eq!(hour, 3_600_000);
    // No single address reached a per-address limit: only the prefix is banned.
    let all = ctl_json(&c.node(2).api, &["bans", "list"]).unwrap();
    assert_eq!(all["bans"].as_array().unwrap().len(), 1, "{all}");
    // Every address of the prefix is covered, including ones never seen.
    let r = ip_show(&c.node(3).api, &addrs[0]);
    assert_eq!(r["banned"], true);
    assert_eq!(counter(&r, "bad connections (not mail)"), 3);
}

#[test]
fn rotating_spammer_across_three_mx_hosts_gets_its_24_banned() {
    let _g = serial();
    let c = cluster();
    let addrs: Vec<String> = (1..=10).map(|i| format!("203.0.113.{i}")).collect();
    rotating_spammer(&c, &addrs, "203.0.113.0/24");
    let never_seen = ip_show(&c.node(1).api, "203.0.113.200");
    assert_eq!(never_seen["banned"], true);
}

#[test]
fn rotating_spammer_in_ipv6_gets_its_64_banned() {
    let _g = serial();
    let c = cluster();
    let addrs: Vec<String> = (1..=10).map(|i| format!("2001:db8:1::{i:x}")).collect();
    rotating_spammer(&c, &addrs, "2001:db8:1::/64");
}

#[test]
fn legitimate_sender_at_30_connections_a_minute_is_never_banned() {
    let _g = serial();
    let c = cluster();
    let sender = "198.51.100.25";
    let start = now_ms() - 180_000;
    // Three minutes of history, then the last 30 s live: 2 s apart, round robin over the MX hosts.
    for i in 0..105i64 {
        let (api, name) = mx(&c, (i % 3) as usize);
        let ack = send_blocking(api, &name, delivering_session(sender, start + i * 2_000));
        assert_eq!(ack.accepted, 1);
    }
    let r = wait_until(LIMIT, "the sender's counters on node 3", || {
        let r = ip_show(&c.node(3).api, sender);
        (counter(&r, "accepted messages") >= 100).then_some(r)
    });
    assert!(
        counter(&r, "messages delivered (good memory)") >= 100,
        "{r}"
    );
    assert_eq!(counter(&r, "bad connections (not mail)"), 0, "{r}");
    assert_eq!(r["banned"], false, "{r}");
    for n in &c.nodes {
        assert_eq!(n.ban_prefixes().unwrap(), Vec::<String>::new());
    }
}

#[test]
fn fourth_bad_connection_within_a_minute_on_any_mx_host_refuses_then_bans() {
    let _g = serial();
    let c = cluster();
    let a = "192.0.2.10";
    let t = now_ms();
    for i in 0..3 {
        let (api, name) = mx(&c, i);
        send_blocking(api, &name, vec![quit(a, t + i as i64 * 1000)]);
    }
    let r = ip_show_counted(&c.node(1).api, a, "bad connections (not mail)", 3);
    assert_eq!(counter(&r, "bad connections (not mail)"), 3);
    assert_eq!(r["banned"], false);
    let (api, name) = mx(&c, 1);
    send_blocking(api, &name, vec![quit(a, t + 3000)]);
    // First a temporary refusal on every node (the policy service answers 450), no drop.
    let refused = wait_until(LIMIT, "a temporary refusal on every node", || {
        let all: Vec<Value> = c
            .nodes
            .iter()
            .map(|n| {
                let l = ctl_json(&n.api, &["bans", "list"]).ok()?;
                l["bans"]
                    .as_array()?
                    .iter()
                    .find(|b| b["prefix"] == "192.0.2.10/32")
                    .cloned()
            })
            .collect::<Option<_>>()?;
        Some(all[0].clone())
    });
    assert_eq!(refused["action"], "tempfail");
    assert_eq!(refused["evidence"][0]["rule"], "connection-rate");
    // It goes on: a ban.
    let more: Vec<_> = (0..4).map(|i| quit(a, t + 4000 + i)).collect();
    send_blocking(api, &name, more);
    let ban = wait_banned_everywhere(&c, "192.0.2.10/32");
    assert_eq!(ban["evidence"][0]["rule"], "connection-rate");
    let len = ban["expires_unix_ms"].as_i64().unwrap() - ban["created_unix_ms"].as_i64().unwrap();
    assert_eq!(len, 600_000);
}

#[test]
fn rejects_auth_failures_and_message_rate_ban_per_address() {
    let _g = serial();
    let c = cluster();
    let t = now_ms();
    let (api1, mx1) = mx(&c, 0);
    let (api2, mx2) = mx(&c, 1);
    // 4 rejects on one host, the 5th on another.
    let rejects: Vec<_> = (0..4)
        .map(|i| rejected("192.0.2.20", t + i, RejectClass::RelayDenied))
        .collect();
    send_blocking(api1, &mx1, rejects);
    assert!(listed_ban(api1, "192.0.2.20/32").is_none());
    send_blocking(
        api2,
        &mx2,
        vec![rejected("192.0.2.20", t + 5, RejectClass::UnknownUser)],
    );
    let b = wait_banned_everywhere(&c, "192.0.2.20/32");
    assert_eq!(b["evidence"][0]["rule"], "rejects");

    // Greylisting is our own deferral: it never counts as a reject.
    let grey: Vec<_> = (0..10)
        .map(|i| rejected("192.0.2.21", t + i, RejectClass::Greylisted))
        .collect();
    send_blocking(api1, &mx1, grey);

    let auth: Vec<_> = (0..5).map(|i| auth_failure("192.0.2.22", t + i)).collect();
    send_blocking(api2, &mx2, auth);
    let b = wait_banned_everywhere(&c, "192.0.2.22/32");
    assert_eq!(b["evidence"][0]["rule"], "auth-failures");
    let len = b["expires_unix_ms"].as_i64().unwrap() - b["created_unix_ms"].as_i64().unwrap();
    assert_eq!(len, 3_600_000);

    let mail: Vec<_> = (0..501)
        .map(|i| accepted("192.0.2.23", t - 60_000 + i * 100))
        .collect();
    send_blocking(api1, &mx1, mail);
    let b = wait_banned_everywhere(&c, "192.0.2.23/32");
    assert_eq!(b["evidence"][0]["rule"], "message-rate");
    let len = b["expires_unix_ms"].as_i64().unwrap() - b["created_unix_ms"].as_i64().unwrap();
    assert_eq!(len, 600_000);

    assert!(
        listed_ban(api1, "192.0.2.21/32").is_none(),
        "greylisted sender banned"
    );
}

#[test]
fn repeat_offender_gets_twice_as_long_and_policy_is_replicated() {
    let _g = serial();
    let c = cluster();
    let policy = c.dir.path().join("policy.toml");
    std::fs::write(&policy, "[rejects]\nban_secs = 2\n").unwrap();
    let out = ctl(&c.node(2).api, &["policy", "set", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(LIMIT, "the policy on node 3", || {
        let p = ctl_json(&c.node(3).api, &["policy", "show"]).ok()?;
        (p["rejects"]["ban_secs"] == 2).then_some(())
    });
    let bad = c.dir.path().join("bad.toml");
    std::fs::write(&bad, "[changing_addresses]\nipv4_prefix_len = 8\n").unwrap();
    let out = ctl(&c.node(1).api, &["policy", "set", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broader than safety.max_breadth_ipv4"));

    let (api, name) = mx(&c, 0);
    let mut lengths = Vec::new();
    for round in 0..2 {
        let t = now_ms();
        let rejects: Vec<_> = (0..5)
            .map(|i| rejected("192.0.2.40", t + i, RejectClass::UnknownUser))
            .collect();
        send_blocking(api, &name, rejects);
        let b = wait_banned_everywhere(&c, "192.0.2.40/32");
        assert_eq!(b["level"].as_u64(), Some(round));
        lengths
            .push(b["expires_unix_ms"].as_i64().unwrap() - b["created_unix_ms"].as_i64().unwrap());
        // The leader's ticks expire it on every node.
        wait_until(LIMIT, "the ban to expire everywhere", || {
            c.nodes
                .iter()
                .all(|n| n.ban_prefixes().is_some_and(|b| b.is_empty()))
                .then_some(())
        });
    }
    assert_eq!(lengths, vec![2_000, 4_000]);
}

#[test]
fn safety_allowlist_observe_only_and_manual_unban_grace() {
    let _g = serial();
    let c = cluster();
    let api = c.node(1).api.clone();
    let (mx_api, name) = mx(&c, 2);
    let t = now_ms();
    let five = |a: &str| -> Vec<_> {
        (0..5)
            .map(|i| rejected(a, t + i, RejectClass::UnknownUser))
            .collect()
    };

    // Allowlisted: never banned.
    let out = ctl(&api, &["allow", "add", "198.51.100.0/24"]);
    assert!(out.status.success());
    send_blocking(mx_api, &name, five("198.51.100.7"));
    let r = ip_show_counted(
        &c.node(2).api,
        "198.51.100.7",
        "rejected recipients (nothing delivered)",
        5,
    );
    assert_eq!(
        counter(&r, "rejected recipients (nothing delivered)"),
        5,
        "{r}"
    );
    assert_eq!(
        (r["banned"].clone(), r["allowlisted"].clone()),
        (false.into(), true.into())
    );

    // Manual unban of an automatic ban holds the key off for the grace period.
    send_blocking(mx_api, &name, five("192.0.2.60"));
    wait_banned_everywhere(&c, "192.0.2.60/32");
    assert!(ctl(&api, &["unban", "192.0.2.60"]).status.success());
    send_blocking(mx_api, &name, five("192.0.2.60"));
    let r = ip_show_counted(
        &api,
        "192.0.2.60",
        "rejected recipients (nothing delivered)",
        10,
    );
    assert_eq!(counter(&r, "rejected recipients (nothing delivered)"), 10);
    assert_eq!(r["banned"], false);
    assert!(r["suppressed_until_unix_ms"].as_i64().unwrap() > now_ms() + 3_000_000);

    // More new bans of senders that delivered mail per minute than allowed (what a bug or a
    // poisoned feed looks like): observe-only, loudly.
    let policy = c.dir.path().join("policy.toml");
    std::fs::write(&policy, "[safety]\nmax_new_bans_per_minute = 3\n").unwrap();
    assert!(ctl(&api, &["policy", "set", policy.to_str().unwrap()])
        .status
        .success());
    for i in 1..=5 {
        let a = format!("198.18.{i}.1");
        let mut events = delivering_session(&a, t - 60_000);
        events.extend(five(&a));
        events.extend(five(&a));
        send_blocking(mx_api, &name, events);
    }
    let s = wait_until(LIMIT, "observe-only on node 3", || {
        let s = c.node(3).status()?;
        (s["observe_only"] == true).then_some(s)
    });
    assert!(s["observe_only_reason"]
        .as_str()
        .unwrap()
        .contains("more than 3"));
    let human = String::from_utf8_lossy(&ctl(&c.node(3).api, &["status"]).stdout).into_owned();
    assert!(human.contains("OBSERVE-ONLY"), "{human}");
    // Node 1 applies what node 3 already has.
    let r = wait_until(LIMIT, "the observed decision on node 1", || {
        let r = ip_show(&api, "198.18.5.1");
        (r["observed"].as_array()?.len() == 1).then_some(r)
    });
    let enforced = ctl_json(&api, &["bans", "list"]).unwrap()["bans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["prefix"].as_str().unwrap().starts_with("198.18."))
        .count();
    // The first ban of this test (192.0.2.60) counts towards the minute too.
    assert!(enforced <= 3, "{enforced} enforced");
    assert_eq!(r["banned"], false, "{r}");
    assert!(ctl(&api, &["observe-only", "clear"]).status.success());
    wait_until(LIMIT, "observe-only cleared everywhere", || {
        c.nodes
            .iter()
            .all(|n| n.status().is_some_and(|s| s["observe_only"] == false))
            .then_some(())
    });
}

#[test]
fn bans_survive_a_restart_of_every_node_with_the_same_expiry() {
    let _g = serial();
    let mut c = cluster();
    let t = now_ms();
    let (api, name) = mx(&c, 0);
    send_blocking(
        api,
        &name,
        (0..5).map(|i| auth_failure("192.0.2.70", t + i)).collect(),
    );
    let out = ctl(
        &c.node(2).api,
        &[
            "ban",
            "2001:db8:9::/48",
            "--for",
            "2h",
            "--reason",
            "manual",
        ],
    );
    assert!(out.status.success());
    let before = wait_until(LIMIT, "both bans on every node", || {
        let lists: Vec<Value> = c
            .nodes
            .iter()
            .map(|n| ctl_json(&n.api, &["bans", "list"]).ok())
            .collect::<Option<_>>()?;
        lists
            .iter()
            .all(|l| l["bans"].as_array().is_some_and(|b| b.len() == 2))
            .then(|| lists[0]["bans"].clone())
    });
    for id in 1..=3 {
        c.node_mut(id).stop();
    }
    for id in 1..=3 {
        c.node_mut(id).start();
    }
    c.wait_for_leader(3, LIMIT);
    for n in &c.nodes {
        let after = wait_until(LIMIT, "bans after restart", || {
            let v = ctl_json(&n.api, &["bans", "list"]).ok()?;
            (v["bans"].as_array()?.len() == 2).then(|| v["bans"].clone())
        });
        let key = |v: &Value| -> Vec<(String, i64, i64)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["prefix"].as_str().unwrap().to_string(),
                        b["created_unix_ms"].as_i64().unwrap(),
                        b["expires_unix_ms"].as_i64().unwrap(),
                    )
                })
                .collect()
        };
        assert_eq!(key(&after), key(&before), "node {}", n.id);
    }
}

#[test]
fn bad_events_are_refused_with_reasons_and_never_applied() {
    let _g = serial();
    let c = cluster();
    let (api, name) = mx(&c, 0);
    let t = now_ms();
    let mut unknown_kind = quit("192.0.2.80", t);
    unknown_kind.kind = None;
    let ack = send_blocking(
        api,
        &name,
        vec![
            quit("192.0.2.999", t),
            quit("192.0.2.81", t + 3_600_000),
            quit("192.0.2.82", t - 7 * 86_400_000),
            unknown_kind,
            quit("192.0.2.83", t),
        ],
    );
    assert_eq!((ack.accepted, ack.rejected), (1, 4));
    let reasons: Vec<&str> = ack.rejections.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("unparseable client address '192.0.2.999'"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("future"));
    assert!(reasons[2].contains("past"));
    assert!(reasons[3].contains("kind"));
    // The good event of the batch is applied: the refused ones, in the same entry, never were.
    ip_show_counted(api, "192.0.2.83", "bad connections (not mail)", 1);
    for a in ["192.0.2.80", "192.0.2.81", "192.0.2.82"] {
        assert_eq!(
            counter(&ip_show(api, a), "bad connections (not mail)"),
            0,
            "{a} was applied"
        );
    }
    assert_eq!(
        counter(&ip_show(api, "192.0.2.83"), "bad connections (not mail)"),
        1
    );

    let huge: Vec<_> = (0..10_001).map(|i| connect("192.0.2.84", t + i)).collect();
    let ack = send_blocking(api, &name, huge);
    assert_eq!((ack.accepted, ack.rejected), (0, 10_001));
    assert!(ack.rejections[0].reason.contains("larger than the limit"));
    assert_eq!(
        counter(&ip_show(api, "192.0.2.84"), "bad connections (not mail)"),
        0
    );
    // The node is still fine.
    assert!(c.node(1).status().is_some());
}
