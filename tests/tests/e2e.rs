//! The whole system across hosts on real kernels: three cluster nodes, three MX hosts running
//! real Postfix with mxrep-agent, a spammer host and a legitimate sender, all network namespaces.
//! SMTP sessions are real (`swaks`, or bare TCP connections for clients that never speak).

use mxrep_tests::netns::*;
use mxrep_tests::testbed::*;
use mxrep_tests::*;
use std::time::{Duration, Instant};

fn bed(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Testbed)> {
    if !e2e_available(test) {
        return None;
    }
    for tool in ["swaks", "postfix"] {
        let ok = std::process::Command::new("which")
            .arg(tool)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "{test}: {tool} is not installed (apt-get install {tool}); this test needs the real one");
    }
    let g = serial();
    Some((g, Testbed::start(true)))
}

/// A TCP connection that never speaks SMTP: Postfix logs connect, lost connection, disconnect.
fn silent_connect(bed: &Testbed, src: &str, mx: usize) -> bool {
    connects(&bed.spam, src, &bed.mx[mx].addr)
}

/// Connect-and-quit over the three MX hosts: four within a minute earn a temporary refusal
/// from the cluster; four more after it, a ban on every MX host.
fn burst_until_banned(bed: &Testbed, spammer: &str) {
    for i in 0..4 {
        assert!(
            silent_connect(bed, spammer, i % 3),
            "connection {i} to mx{}",
            i % 3 + 1
        );
    }
    let key = format!("{spammer}/32");
    bed.wait_refused(&key);
    for m in &bed.mx {
        assert!(
            !m.kernel_bans().contains(&key),
            "a temporary refusal is no drop"
        );
    }
    for i in 0..4 {
        assert!(
            silent_connect(bed, spammer, i % 3),
            "refused, not dropped yet"
        );
    }
    bed.wait_enforced_everywhere(&key);
}

#[test]
fn rotating_spammer_is_stopped_on_every_mx_host() {
    let Some((_g, bed)) = bed("rotating_spammer_is_stopped_on_every_mx_host") else {
        return;
    };
    // One new address per connection, round robin over the MX hosts: no host sees more than
    // four connections, each with one rejected recipient.
    for i in 0..10usize {
        let src = format!("203.0.113.{}", 10 + i);
        assert!(
            !bed.swaks(&bed.spam, &src, i % 3, "nosuchuser"),
            "the unknown user must be refused"
        );
    }
    bed.wait_enforced_everywhere("203.0.113.0/24");
    for (i, m) in bed.mx.iter().enumerate() {
        assert!(
            !silent_connect(&bed, "203.0.113.200", i),
            "a never-seen address of the prefix reached {}",
            m.name
        );
        assert!(
            connects(&bed.legit, "192.0.2.41", &m.addr),
            "{} must still serve others",
            m.name
        );
        let log = m.postfix.as_ref().unwrap().log_text();
        assert!(
            log.contains("User unknown"),
            "Postfix on {} saw the spam",
            m.name
        );
    }
    let ban = bed.ctl_json(&["ip", "show", "203.0.113.99"]).unwrap();
    let ev = &ban["covering_bans"][0]["evidence"][0];
    assert_eq!(ev["rule"], "changing-addresses");
    assert_eq!(
        ev["mx_hosts"].as_array().unwrap().len(),
        3,
        "all three MX hosts contributed: {ban}"
    );
}

#[test]
fn burst_then_agent_restart_then_cluster_gone() {
    let Some((_g, mut bed)) = bed("burst_then_agent_restart_then_cluster_gone") else {
        return;
    };
    let spammer = "203.0.113.77";
    // The classic rule, cluster-wide: four connections within 60 s that were not mail, over
    // three MX hosts, then more of them after the temporary refusal.
    burst_until_banned(&bed, spammer);
    for i in 0..3 {
        assert!(!silent_connect(&bed, spammer, i));
    }

    // Agent restart during the ban: the element never leaves the kernel set.
    bed.mx[0].agent = None;
    assert!(bed.mx[0]
        .kernel_bans()
        .contains(&"203.0.113.77/32".to_string()));
    bed.mx[0].start_agent();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            bed.mx[0]
                .kernel_bans()
                .contains(&"203.0.113.77/32".to_string()),
            "gap during the agent restart"
        );
    }

    // The cluster gone: bans stay enforced, legitimate mail still flows, nothing blocks.
    for n in &mut bed.nodes {
        n.kill();
    }
    for i in 0..3 {
        assert!(
            !silent_connect(&bed, spammer, i),
            "the ban must outlive the cluster"
        );
        let t = Instant::now();
        assert!(
            bed.swaks(&bed.legit, "198.51.100.25", i, "user"),
            "legitimate mail refused on mx{}",
            i + 1
        );
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "delivery slowed down without the cluster: {:?}",
            t.elapsed()
        );
    }
    for m in &bed.mx {
        // Local delivery follows the queueing by a moment.
        wait_until(LIMIT, &format!("the mail delivered on {}", m.name), || {
            m.postfix
                .as_ref()
                .unwrap()
                .log_text()
                .contains("status=sent")
                .then_some(())
        });
    }
}

#[test]
fn leader_killed_mid_attack_and_a_node_cut_off() {
    let Some((_g, mut bed)) = bed("leader_killed_mid_attack_and_a_node_cut_off") else {
        return;
    };
    let before = bed
        .ctl_json(&[
            "ban",
            "192.0.2.200",
            "--for",
            "1h",
            "--reason",
            "before the kill",
        ])
        .unwrap();
    assert_eq!(before["ban"]["prefix"], "192.0.2.200/32");
    bed.wait_enforced_everywhere("192.0.2.200/32");
    for i in 0..4usize {
        bed.swaks(
            &bed.spam,
            &format!("203.0.113.{}", 10 + i),
            i % 3,
            "nosuchuser",
        );
    }
    let leader = bed.wait_for_leader();
    let killed_at = Instant::now();
    bed.nodes[leader as usize - 1].kill();
    for i in 4..10usize {
        bed.swaks(
            &bed.spam,
            &format!("203.0.113.{}", 10 + i),
            i % 3,
            "nosuchuser",
        );
    }
    bed.wait_enforced_everywhere("203.0.113.0/24");
    eprintln!(
        "leader kill to prefix ban on every MX host: {:?}",
        killed_at.elapsed()
    );
    for m in &bed.mx {
        assert!(
            m.kernel_bans().contains(&"192.0.2.200/32".to_string()),
            "{} lost a committed ban",
            m.name
        );
    }
    bed.nodes[leader as usize - 1].start();
    bed.wait_for_leader();

    // Cut one node off: the other two keep deciding; agents attached to it move on.
    let cut = bed.nodes[0].netns.clone().unwrap();
    bed.lab.cut(&cut, true);
    bed.nodes[0].kill(); // unreachable from here anyway; restarted after the link returns
    burst_until_banned(&bed, "198.18.0.7");
    bed.lab.cut(&cut, false);
    bed.nodes[0].start();
    // Every node and every MX host's kernel hold the same ban set.
    let expected = wait_until(LIMIT, "all three nodes to agree", || {
        let lists: Vec<Vec<String>> = bed
            .nodes
            .iter()
            .map(|n| {
                let v = ctl_json_in(n.netns.as_deref(), &n.api, &["bans", "list"]).ok()?;
                let mut p: Vec<String> = v["bans"]
                    .as_array()?
                    .iter()
                    .filter(|b| b["action"] == "drop")
                    .map(|b| b["prefix"].as_str().unwrap().to_string())
                    .collect();
                p.sort();
                Some(p)
            })
            .collect::<Option<_>>()?;
        lists
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| lists[0].clone())
    });
    assert!(expected.contains(&"198.18.0.7/32".to_string()));
    wait_until(
        LIMIT,
        "every MX host's sets to equal the cluster's ban set",
        || {
            bed.mx
                .iter()
                .all(|m| m.kernel_bans() == expected)
                .then_some(())
        },
    );
}

#[test]
fn legitimate_sender_at_30_connections_a_minute_is_never_banned() {
    let Some((_g, bed)) = bed("legitimate_sender_at_30_connections_a_minute_is_never_banned")
    else {
        return;
    };
    let sender = "198.51.100.25";
    let start = Instant::now();
    let sessions = 35;
    for i in 0..sessions {
        // A steady 30 connections a minute: one every 2 s, round robin over the MX hosts.
        let due = start + Duration::from_secs(2) * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        assert!(
            bed.swaks(&bed.legit, sender, i % 3, "user"),
            "message {i} refused by mx{}",
            i % 3 + 1
        );
    }
    let delivered = |m: &MxHost| {
        m.postfix
            .as_ref()
            .unwrap()
            .log_text()
            .matches("status=sent")
            .count()
    };
    wait_until(LIMIT, "every message delivered", || {
        (bed.mx.iter().map(delivered).sum::<usize>() == sessions).then_some(())
    });
    // Every message reached the cluster as an accepted message, and none of it led to a ban.
    let r = wait_until(LIMIT, "the cluster to count every message", || {
        let r = bed.ctl_json(&["ip", "show", sender]).ok()?;
        let accepted = r["counters"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "accepted messages")?["count"]
            .as_u64()?;
        (accepted == sessions as u64).then_some(r)
    });
    assert_eq!(r["banned"], false, "{r}");
    for m in &bed.mx {
        assert!(
            m.kernel_bans().is_empty(),
            "{} holds bans: {:?}",
            m.name,
            m.kernel_bans()
        );
    }
}

#[test]
fn greylisting_once_for_the_fleet_with_real_postfix() {
    let Some((_g, mut bed)) = bed("greylisting_once_for_the_fleet_with_real_postfix") else {
        return;
    };
    let policy = bed.dir.path().join("greylist.toml");
    std::fs::write(
        &policy,
        "[greylist]\nenabled = true\ndelay_secs = 5\nauto_allowlist_spacing_secs = 1\n",
    )
    .unwrap();
    let n = &bed.nodes[0];
    let out = ctl_in(
        n.netns.as_deref(),
        &n.api,
        &["policy", "set", policy.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(LIMIT, "the policy on every node", || {
        bed.nodes
            .iter()
            .all(|n| {
                ctl_json_in(n.netns.as_deref(), &n.api, &["policy", "show"])
                    .is_ok_and(|p| p["greylist"]["enabled"] == true)
            })
            .then_some(())
    });
    let rcpt = "user@mx.test";
    let grey = |m: &MxHost| {
        m.postfix
            .as_ref()
            .unwrap()
            .log_text()
            .matches("Greylisted by mxrep")
            .count()
    };
    // First attempt, on mx1: refused for now, in Postfix's own log.
    assert!(
        !bed.swaks_to(&bed.spam, "203.0.113.30", 0, rcpt),
        "a first attempt must be deferred"
    );
    let t0 = Instant::now();
    wait_until(LIMIT, "mx1 to log the greylisting", || {
        (grey(&bed.mx[0]) > 0).then_some(())
    });
    // A retry too early, on mx2 from another address of the /24: still refused.
    assert!(
        !bed.swaks_to(&bed.spam, "203.0.113.31", 1, rcpt),
        "a retry before the delay must be deferred"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the early retry came too late to test"
    );
    // After the delay, the same retry passes on mx2 and is delivered there.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed()));
    wait_until(LIMIT, "the retry to be accepted on mx2", || {
        bed.swaks_to(&bed.spam, "203.0.113.31", 1, rcpt)
            .then_some(())
    });
    wait_until(LIMIT, "the message delivered on mx2", || {
        bed.mx[1]
            .postfix
            .as_ref()
            .unwrap()
            .log_text()
            .contains("status=sent")
            .then_some(())
    });
    // Passes a second or more apart: after five the network is allowlisted on every MX host.
    wait_until(LIMIT, "the network allowlisted", || {
        std::thread::sleep(Duration::from_millis(1100));
        assert!(
            bed.swaks_to(&bed.spam, "203.0.113.31", 2, rcpt),
            "a passed triplet must stay passed"
        );
        let r = bed.ctl_json(&["ip", "show", "203.0.113.31"]).ok()?;
        r["greylist"]["allowlisted_until_unix_ms"].as_i64()
    });
    // A new triplet from the network goes straight through, on mx3.
    assert!(
        bed.swaks_to(&bed.spam, "203.0.113.32", 2, "devnull@mx.test"),
        "an allowlisted network is not greylisted"
    );
    // Greylisting is neutral: nobody of the network was banned for it.
    let bans = bed.ctl_json(&["bans", "list"]).unwrap();
    assert!(
        !bans["bans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["prefix"].as_str().unwrap().starts_with("203.0.113.")),
        "{bans}"
    );

    // Every node stopped: mail from a never-seen client is accepted at once (fail open).
    for node in &mut bed.nodes {
        node.kill();
    }
    for i in 0..3 {
        let t = Instant::now();
        assert!(
            bed.swaks_to(&bed.legit, "198.51.100.25", i, rcpt),
            "fail open on mx{}",
            i + 1
        );
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "greylisting without the cluster slowed mail: {:?}",
            t.elapsed()
        );
    }
}
