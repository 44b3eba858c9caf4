//! Exact counting across failover: three agents' uplinks stream delivered-message verdicts at
//! full speed while the leader is SIGKILLed and a follower is frozen (SIGSTOP, a partition as far
//! as Raft can tell) for 3 s. Every batch the uplinks resend after a failover must be counted
//! once: the cluster's totals equal what the agents sent, exactly, round after round.

use mxrep_agent::uplink::{Uplink, UplinkConfig};
use mxrep_tests::events::{accepted, now_ms, wait_all_acknowledged};
use mxrep_tests::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const SENDERS: u32 = 300;
const MESSAGES: u32 = 4;

fn leader(c: &TestCluster) -> u64 {
    wait_until(LIMIT, "a leader", || {
        c.nodes
            .iter()
            .filter(|n| n.is_running())
            .find_map(|n| n.status()?["leader_id"].as_u64().filter(|l| *l > 0))
    })
}

#[test]
fn totals_equal_what_the_agents_sent_through_leader_kills_and_partitions() {
    let _g = serial();
    let mut c = TestCluster::start(3, Tuning::default());
    c.wait_for_leader(3, LIMIT);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
    // Each agent starts on a different node and fails over to the others.
    let uplinks: Vec<Uplink> = (0..3)
        .map(|i| {
            let nodes = (0..3).map(|k| apis[(i + k) % 3].clone()).collect();
            rt.block_on(async { Uplink::start(UplinkConfig::new(nodes, format!("mx{}", i + 1))) })
        })
        .collect();
    for round in 0..3u32 {
        let addr = |s: u32| format!("198.18.{}.{}", 10 + round * 2 + s / 200, s % 200 + 1);
        let lead = leader(&c);
        let frozen = (1..=3).find(|id| *id != lead).unwrap();
        let start = Instant::now();
        let mut faults_done = false;
        // 300 senders × 4 messages over three MX hosts, in waves while the faults happen.
        for m in 0..MESSAGES {
            for s in 0..SENDERS {
                uplinks[((s + m) % 3) as usize].push(accepted(&addr(s), now_ms()));
            }
            if m == 1 && !faults_done {
                c.node_mut(lead).kill();
                c.node(frozen).freeze(true);
                faults_done = true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        std::thread::sleep(Duration::from_secs(3).saturating_sub(start.elapsed()));
        c.node(frozen).freeze(false);
        c.node_mut(lead).start();
        wait_all_acknowledged(&uplinks, LIMIT);
        let api = c.node(frozen).api.clone();
        for s in (0..SENDERS).step_by(7) {
            let r = wait_until(LIMIT, "the counts on the formerly frozen node", || {
                let r = ctl_json(&api, &["ip", "show", &addr(s)]).ok()?;
                let n = |name: &str| {
                    r["counters"]
                        .as_array()?
                        .iter()
                        .find(|c| c["name"] == name)?["count"]
                        .as_u64()
                };
                (n("accepted messages")? >= MESSAGES as u64).then(|| {
                    (
                        n("accepted messages"),
                        n("messages delivered (good memory)"),
                    )
                })
            });
            assert_eq!(
                r,
                (Some(MESSAGES as u64), Some(MESSAGES as u64)),
                "round {round}: {} counted wrong after the failover",
                addr(s)
            );
        }
        let reconnects: u64 = uplinks
            .iter()
            .map(|u| u.stats().reconnects.load(Ordering::Relaxed))
            .sum();
        assert!(
            reconnects > 0,
            "round {round}: no uplink noticed the failover"
        );
    }
    drop(uplinks);
}
