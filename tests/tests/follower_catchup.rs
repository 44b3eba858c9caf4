//! A follower that falls far behind under load catches up while load goes on. Three agents'
//! uplinks stream delivered-message verdicts for 120,000 addresses at full speed, so the leader
//! writes entries of thousands of addresses each; a follower is frozen (SIGSTOP: to its peers, a
//! node cut off) long enough to miss hundreds of them. Then it is thawed, the load steadies at a
//! rate the cluster takes in with headroom, and the follower must reach the leader's log within a
//! deadline and then hold exactly the counts the agents sent.
//!
//! Before per-peer append budgets (`node/src/raft/append_budget.rs`) the first part never ended:
//! the leader sent the thawed follower 8 entries (700 KB here) per AppendEntries, which it could
//! not take in within the 100 ms openraft allows, and every try timed out, for as long as the
//! test ran.
//!
//! Two ways back: from the leader's log (the default settings), and by an installed snapshot when
//! the leader has already purged the entries the follower misses (small snapshot settings).

use mxrep_agent::uplink::{Uplink, UplinkConfig};
use mxrep_tests::events::{accepted, now_ms, wait_all_acknowledged};
use mxrep_tests::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// How long a thawed follower may take to catch up.
const CATCH_UP: Duration = Duration::from_secs(120);
/// Distinct senders the load cycles through.
const SPACE: u32 = 120_000;
/// Verdicts per second once the follower is thawed: a steady load well within what a debug-built
/// cluster on two cores takes in (about 50,000 a second at full speed), as a fleet's cluster runs
/// with headroom. The follower catching up must take in its backlog beside it.
const STEADY: u64 = 20_000;
/// Verdicts an uplink may hold unsent before the load waits for it.
const QUEUE_CAP: usize = 20_000;

fn addr(i: u32) -> String {
    format!("198.{}.{}.{}", 18 + (i >> 16), (i >> 8) & 255, i & 255)
}

/// One number from `mxrepctl status --json` on `node`.
fn status_u64(node: &NodeProc, key: &str) -> Option<u64> {
    node.status()?[key].as_u64()
}

/// Verdicts streamed through three uplinks, one per node, until stopped, at full speed or at a
/// set rate; counts what it sent per address.
struct Load {
    stop: Arc<AtomicBool>,
    /// Verdicts per second (0: as fast as the cluster takes them).
    rate: Arc<AtomicU64>,
    sent: Arc<Mutex<Vec<u32>>>,
    thread: Option<std::thread::JoinHandle<Vec<Uplink>>>,
}

impl Load {
    fn start(rt: &tokio::runtime::Runtime, apis: &[String]) -> Self {
        let uplinks: Vec<Uplink> = (0..3)
            .map(|i| {
                let nodes = (0..3).map(|k| apis[(i + k) % 3].clone()).collect();
                rt.block_on(async {
                    Uplink::start(UplinkConfig::new(nodes, format!("mx{}", i + 1)))
                })
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let rate = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(Mutex::new(vec![0u32; SPACE as usize]));
        let (stop2, rate2, sent2) = (stop.clone(), rate.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u32;
            // Where the paced rate counts from: (when, verdicts sent by then).
            let mut paced_from: Option<(Instant, u32)> = None;
            while !stop2.load(Ordering::Relaxed) {
                let up = &uplinks[(i % 3) as usize];
                let rate = rate2.load(Ordering::Relaxed);
                let ahead = rate > 0 && {
                    let (t0, i0) = *paced_from.get_or_insert((Instant::now(), i));
                    (i - i0) as f64 >= t0.elapsed().as_secs_f64() * rate as f64
                };
                if ahead || up.queued() >= QUEUE_CAP {
                    // Pacing, not waiting for an outcome.
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let a = i % SPACE;
                up.push(accepted(&addr(a), now_ms()));
                sent2.lock().unwrap()[a as usize] += 1;
                i = i.wrapping_add(1);
            }
            uplinks
        });
        Self {
            stop,
            rate,
            sent,
            thread: Some(thread),
        }
    }

    /// From now on, `per_second` verdicts a second.
    fn steady(&self, per_second: u64) {
        self.rate.store(per_second, Ordering::Relaxed);
    }

    /// Verdicts sent so far.
    fn total(&self) -> u64 {
        self.sent.lock().unwrap().iter().map(|n| *n as u64).sum()
    }

    /// Stops pushing and waits for every verdict pushed to be acknowledged by the cluster.
    fn finish(mut self) -> Vec<u32> {
        self.stop.store(true, Ordering::Relaxed);
        let uplinks = self.thread.take().unwrap().join().unwrap();
        wait_all_acknowledged(&uplinks, LIMIT);
        let sent = self.sent.lock().unwrap().clone();
        sent
    }
}

/// Freezes a follower for `frozen_for` under load, thaws it, and checks it catches up and counts
/// exactly. Returns (the follower's applied index when frozen, the leader's purged index when
/// thawed).
fn freeze_under_load(tuning: Tuning, frozen_for: Duration, min_missed_entries: u64) -> (u64, u64) {
    let _g = serial();
    let c = TestCluster::start(3, tuning);
    let lead = c.wait_for_leader(3, LIMIT);
    let leader = c.node(lead);
    let follower = c.nodes.iter().find(|n| n.id != lead).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
    let load = Load::start(&rt, &apis);
    wait_until(LIMIT, "the load to be flowing", || {
        (load.total() > 40_000).then_some(())
    });

    let applied_at_freeze = status_u64(follower, "last_applied").unwrap();
    follower.freeze(true);
    let frozen_at = Instant::now();
    let sent_at_freeze = load.total();
    while frozen_at.elapsed() < frozen_for {
        std::thread::sleep(Duration::from_millis(200));
    }
    let leader_index = status_u64(leader, "last_log_index").unwrap();
    let purged = status_u64(leader, "purged_index").unwrap_or(0);
    let sent_frozen = load.total() - sent_at_freeze;
    follower.freeze(false);
    load.steady(STEADY);
    let thawed_at = Instant::now();
    eprintln!(
        "frozen {:?}: {} entries and {sent_frozen} verdicts missed (leader log purged to {purged})",
        frozen_for,
        leader_index - applied_at_freeze
    );
    assert!(
        leader_index - applied_at_freeze >= min_missed_entries,
        "the follower missed only {} entries: the test did not put it far behind",
        leader_index - applied_at_freeze
    );

    // Catching up while the load goes on: first the log, then applying it.
    wait_until(
        CATCH_UP,
        "the thawed follower to hold the leader's log",
        || (status_u64(follower, "last_log_index")? >= leader_index).then_some(()),
    );
    eprintln!("log caught up in {:?}", thawed_at.elapsed());
    wait_until(
        CATCH_UP,
        "the thawed follower to apply the leader's log",
        || (status_u64(follower, "last_applied")? >= leader_index).then_some(()),
    );
    eprintln!(
        "caught up {} entries in {:?}, load still running",
        leader_index - applied_at_freeze,
        thawed_at.elapsed()
    );
    let sent = load.finish();
    let final_index = status_u64(leader, "last_applied").unwrap();
    wait_until(
        LIMIT,
        "the follower to apply everything acknowledged",
        || (status_u64(follower, "last_applied")? >= final_index).then_some(()),
    );
    for a in (0..SPACE).step_by(6_007) {
        for node in [follower, leader] {
            assert_eq!(
                accepted_messages(&node.api, &addr(a)),
                Some(sent[a as usize] as u64),
                "node {} counts {} wrong after the follower's catch-up",
                node.id,
                addr(a)
            );
        }
    }
    (applied_at_freeze, purged)
}

#[test]
fn a_follower_frozen_under_load_catches_up_from_the_log() {
    // 30 s behind: hundreds of entries, far more than one AppendEntries may carry.
    freeze_under_load(Tuning::default(), Duration::from_secs(30), 200);
}

#[test]
fn a_follower_frozen_past_the_purged_log_catches_up_by_snapshot() {
    let tuning = Tuning {
        snapshot_logs_since_last: 100,
        max_in_snapshot_log_to_keep: 20,
        purge_batch_size: 10,
        ..Tuning::default()
    };
    let (applied_at_freeze, purged) = freeze_under_load(tuning, Duration::from_secs(20), 120);
    assert!(
        purged > applied_at_freeze,
        "the leader kept the entries the follower missed (purged to {purged}, the follower \
         had {applied_at_freeze}): it was not made to install a snapshot"
    );
}
