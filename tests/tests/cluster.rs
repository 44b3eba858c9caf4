//! The cluster core with real processes: formation from `--peers`, writes through followers,
//! leader loss (SIGKILL), restart on the same data dir, snapshots and log purging, a member added
//! by `cluster add`, and a `--dev` node that keeps its bans across a restart.

use mxrep_tests::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn ban(endpoint: &str, prefix: &str) -> String {
    let v = wait_until(
        LIMIT,
        &format!("ban of {prefix} through {endpoint}"),
        || {
            match ctl_json(
                endpoint,
                &["ban", prefix, "--for", "1h", "--reason", "test"],
            ) {
                Ok(v) => Some(v),
                Err(e) => {
                    // Writes wait for a leader themselves; an error here is a real failure.
                    panic!("ban {prefix} via {endpoint} failed: {e}")
                }
            }
        },
    );
    v["ban"]["prefix"]
        .as_str()
        .expect("ban in answer")
        .to_string()
}

#[test]
fn three_nodes_agree_on_a_leader_and_a_follower_write_reaches_all() {
    let _g = serial();
    let c = TestCluster::start(3, Tuning::default());
    let leader = c.wait_for_leader(3, LIMIT);
    // Every node's own status names that leader.
    for n in &c.nodes {
        let s = n.status().expect("status");
        assert_eq!(s["leader_id"].as_u64(), Some(leader), "node {}", n.id);
        assert_eq!(s["members"].as_array().unwrap().len(), 3);
    }
    let follower = c.nodes.iter().find(|n| n.id != leader).unwrap();
    let p = ban(&follower.api, "203.0.113.7");
    assert_eq!(p, "203.0.113.7/32");
    let p6 = ban(&follower.api, "2001:db8:1::/64");
    c.wait_for_bans(&[p, p6], LIMIT);
}

#[test]
fn leader_killed_new_leader_takes_writes_and_restarted_node_catches_up() {
    let _g = serial();
    let mut c = TestCluster::start(3, Tuning::default());
    let leader = c.wait_for_leader(3, LIMIT);
    let mut bans = Vec::new();
    for (i, n) in [1u64, 2, 3, 1, 2].iter().enumerate() {
        bans.push(ban(&c.node(*n).api, &format!("198.51.100.{}", i + 1)));
    }
    c.wait_for_bans(&bans, LIMIT);
    let term_before = c.node(leader).status().unwrap()["term"].as_u64().unwrap();

    c.node_mut(leader).kill();
    let new_leader = c.wait_for_leader(3, LIMIT);
    assert_ne!(new_leader, leader);
    let survivor = c.nodes.iter().find(|n| n.is_running()).unwrap();
    bans.push(ban(&survivor.api, "203.0.113.0/24"));
    c.wait_for_bans(&bans, LIMIT);

    // Restart on the same data dir: it rejoins the cluster it belonged to and catches up.
    let before_restart = c
        .node(leader)
        .log_text()
        .matches("cluster initialised")
        .count();
    c.node_mut(leader).start();
    c.wait_for_leader(3, LIMIT);
    c.wait_for_bans(&bans, LIMIT);
    let restarted = c.node(leader);
    assert_eq!(
        restarted.log_text().matches("cluster initialised").count(),
        before_restart,
        "a restarted node must never initialise again"
    );
    let s = restarted.status().unwrap();
    assert!(s["term"].as_u64().unwrap() > term_before);
    assert_eq!(s["members"].as_array().unwrap().len(), 3);
}

#[test]
fn purged_log_means_a_new_member_gets_the_state_by_snapshot() {
    let _g = serial();
    let tuning = Tuning {
        snapshot_logs_since_last: 20,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Tuning::default()
    };
    let mut c = TestCluster::start(3, tuning.clone());
    let leader = c.wait_for_leader(3, LIMIT);
    let api = c.node(leader).api.clone();
    let bans: Vec<String> = (1..=45)
        .map(|i| ban(&api, &format!("198.18.0.{i}")))
        .collect();
    c.wait_for_bans(&bans, LIMIT);
    wait_until(LIMIT, "the leader to snapshot and purge its log", || {
        let s = c.node(leader).status()?;
        (s["purged_index"].as_u64()? > 20 && s["snapshot_index"].as_u64()? > 20).then_some(())
    });

    let mut n4 = NodeProc::new(c.dir.path(), 4, None, &tuning);
    n4.start();
    wait_until(LIMIT, "node 4 to answer", || n4.status());
    let out = ctl(&api, &["cluster", "add", "4", &n4.peer, &n4.api]);
    assert!(
        out.status.success(),
        "cluster add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.nodes.push(n4);
    c.wait_for_leader(4, LIMIT);
    c.wait_for_bans(&bans, LIMIT);
    let s = c.node(4).status().unwrap();
    assert!(
        s["snapshot_index"].as_u64().unwrap() > 0,
        "node 4 must have been sent a snapshot: {s}"
    );
    let voters = s["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .count();
    assert_eq!(voters, 4);

    // Removing it again leaves three voters.
    let out = ctl(&api, &["cluster", "remove", "4", "--json"]);
    assert!(
        out.status.success(),
        "cluster remove: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(LIMIT, "membership of 3 on node 1..3", || {
        c.nodes
            .iter()
            .filter(|n| n.id != 4)
            .all(|n| {
                n.status()
                    .is_some_and(|s| s["members"].as_array().map(|m| m.len()) == Some(3))
            })
            .then_some(())
    });
}

#[test]
fn dev_node_keeps_its_bans_across_a_kill_and_restart() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let peer = format!("127.0.0.1:{}", free_port());
    let start = || {
        std::process::Command::new(bin("mxrep-node"))
            .args(["--dev", "--api-listen", &api, "--peer-listen", &peer])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = start();
    let banned = wait_until(LIMIT, "the dev node to accept a ban", || {
        ctl_json(
            &api,
            &["ban", "192.0.2.0/24", "--for", "2h", "--reason", "dev"],
        )
        .ok()
    });
    let expires = banned["ban"]["expires_unix_ms"].as_i64().unwrap();
    assert!(
        dir.path().join("mxrep-data").is_dir(),
        "--dev keeps its data in ./mxrep-data"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = start();
    let listed = wait_until(LIMIT, "the restarted dev node to list its ban", || {
        let v = ctl_json(&api, &["bans", "list"]).ok()?;
        (!v["bans"].as_array()?.is_empty()).then_some(v)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let b = &listed["bans"][0];
    assert_eq!(b["prefix"], "192.0.2.0/24");
    assert_eq!(b["reason"], "dev");
    assert_eq!(
        b["expires_unix_ms"].as_i64(),
        Some(expires),
        "same expiry after restart"
    );
}
