//! Fault soak: mixed traffic for `MXREP_SOAK_SECS` seconds (180 by default; BENCHMARKS.md has a
//! 30-minute run) on the multi-host bed — three nodes, three MX hosts with agents and real
//! nftables — while faults come one after another in a random order: a node SIGKILLed and
//! started again, a node's link down and up, one node's data dir (a small tmpfs) filled until its
//! writes fail, then freed, and an agent restarted (SIGTERM); `MXREP_SOAK_FAULTS` picks kinds.
//!
//! Checked all along: after each heal every MX host's kernel sets hold the leader's whole ban
//! list within 2 s; no committed ban is ever lost (until it expires); at the end every spammer is
//! banned, the delivered messages counted equal the connections written exactly, and no
//! process's memory grew more than a leak would explain.
//!
//! Layout: `traffic` (good senders, spammers, the exact count at the end), `record` (bans seen,
//! convergence after each heal, memory).

mod record;
mod traffic;

use mxrep_tests::faults::{data_dir_on_tmpfs, fill, terminate, unmount_data_dir};
use mxrep_tests::netns::e2e_available;
use mxrep_tests::testbed::Testbed;
use mxrep_tests::*;
use record::{leader_bans, Record};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use traffic::{good_traffic, spam, GOOD_SENDERS};

/// The node whose data dir is a tmpfs that gets filled.
const SMALL_DISK: usize = 2;

#[test]
fn faults_under_mixed_traffic_lose_no_ban_and_no_count() {
    if !e2e_available("faults_under_mixed_traffic_lose_no_ban_and_no_count") {
        return;
    }
    let _g = serial();
    let secs: u64 = std::env::var("MXREP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let seed = std::env::var("MXREP_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp() as u64);
    eprintln!("soak: {secs} s, seed {seed} (MXREP_SOAK_SEED={seed} repeats the order of faults)");
    let mut bed = Testbed::start(false);
    data_dir_on_tmpfs(&mut bed.nodes[SMALL_DISK], 64);
    let _unmount = UnmountOnDrop(bed.nodes[SMALL_DISK].data_dir.clone());
    bed.wait_for_leader();

    // The good senders deliver about 5 messages a second each, above the message-rate rule's
    // 500 in 10 min: that rule is off here, as for a fleet's known bulk senders.
    let policy = bed.dir.path().join("soak-policy.toml");
    std::fs::write(&policy, "[message_rate]\nenabled = false\n").unwrap();
    bed.ctl_json(&["policy", "set", policy.to_str().unwrap()])
        .expect("policy set");
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(
            (0..GOOD_SENDERS)
                .map(|_| AtomicU64::new(0))
                .collect::<Vec<_>>(),
        ),
    );
    let writers = good_traffic(&bed, &stop, &written);
    let spammers: Arc<Mutex<Vec<String>>> = Arc::default();
    let spammer = {
        let (logs, stop, spammers) = (
            bed.mx
                .iter()
                .map(|m| (m.log.clone(), m.name.clone()))
                .collect::<Vec<_>>(),
            stop.clone(),
            spammers.clone(),
        );
        std::thread::spawn(move || {
            for k in 0u64.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // One address per /24 (eight bad ones in a /24 would ban the prefix instead).
                let addr = format!("198.{}.{}.7", 18 + k / 256, k % 256);
                let (log, host) = &logs[k as usize % logs.len()];
                spam(log, host, &addr);
                spammers.lock().unwrap().push(addr);
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };

    let mut rec = Record::default();
    // MXREP_SOAK_FAULTS (comma-separated) picks the kinds; all four by default.
    let chosen = std::env::var("MXREP_SOAK_FAULTS")
        .unwrap_or_else(|_| "node killed,link down,agent restarted,disk full".into());
    let mut kinds: Vec<&'static str> = ["node killed", "link down", "agent restarted", "disk full"]
        .into_iter()
        .filter(|k| chosen.split(',').any(|c| c.trim() == *k))
        .collect();
    assert!(
        !kinds.is_empty(),
        "MXREP_SOAK_FAULTS names no known fault: {chosen}"
    );
    let started = Instant::now();
    let mut rng = seed;
    let mut round = 0usize;
    while started.elapsed() < Duration::from_secs(secs) {
        // Every kind once per four faults, in an order drawn from the seed.
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if round.is_multiple_of(kinds.len()) {
            for i in (1..kinds.len()).rev() {
                kinds.swap(i, (rng >> 33) as usize % (i + 1));
            }
        }
        // As a supervisor would: a node that exited by itself is started again. A node whose
        // disk was filled may go on for a while and fail only later (a snapshot written then).
        for node in bed.nodes.iter_mut() {
            if node.exited() {
                eprintln!("  node {} had exited by itself: started again", node.id);
                node.start();
            }
        }
        let kind = kinds[round % kinds.len()];
        let target = (rng >> 40) as usize % 3;
        rec.sample_memory(&bed);
        let healed = match kind {
            "node killed" => {
                bed.nodes[target].kill();
                std::thread::sleep(Duration::from_secs(3));
                bed.nodes[target].start();
                Instant::now()
            }
            "link down" => {
                let ns = bed.nodes[target]
                    .netns
                    .clone()
                    .expect("nodes in namespaces");
                bed.lab.cut(&ns, true);
                std::thread::sleep(Duration::from_secs(3));
                bed.lab.cut(&ns, false);
                Instant::now()
            }
            "agent restarted" => {
                let m = &mut bed.mx[target];
                assert!(
                    terminate(
                        m.agent.take().expect("agent running"),
                        Duration::from_secs(15)
                    ),
                    "agent on {} did not exit on SIGTERM",
                    m.name
                );
                m.start_agent();
                Instant::now()
            }
            _ => {
                let node = &mut bed.nodes[SMALL_DISK];
                let filler = fill(&node.data_dir);
                // Traffic keeps coming: the node's next write fails, and it exits.
                let gave_up = Instant::now() + Duration::from_secs(20);
                while !node.exited() && Instant::now() < gave_up {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let exited = !node.is_running();
                std::fs::remove_file(filler).unwrap();
                eprintln!(
                    "  disk full on node {}: {}",
                    node.id,
                    if exited {
                        "it exited, started again"
                    } else {
                        "still running after 20 s"
                    }
                );
                if exited {
                    node.start();
                }
                Instant::now()
            }
        };
        rec.check_converged(&bed, kind, healed);
        rec.check_nothing_lost(&bed);
        eprintln!(
            "  {:>4} s  {kind:<16} leader named after {:>5} ms, converged in {:>5} ms",
            started.elapsed().as_secs(),
            rec.leader_known.last().unwrap().as_millis(),
            rec.converged.last().unwrap().1.as_millis()
        );
        round += 1;
        std::thread::sleep(Duration::from_secs(2));
    }

    stop.store(true, Ordering::SeqCst);
    writers
        .into_iter()
        .chain([spammer])
        .for_each(|w| w.join().unwrap());
    rec.sample_memory(&bed);
    let total: u64 = written.iter().map(|w| w.load(Ordering::SeqCst)).sum();
    traffic::check_every_message_counted(&bed, &written);
    let banned = wait_until(Duration::from_secs(60), "every spammer banned", || {
        let list = leader_bans(&bed)?;
        spammers
            .lock()
            .unwrap()
            .iter()
            .all(|a| list.contains_key(&format!("{a}/32")))
            .then_some(list.len())
    });
    rec.check_nothing_lost(&bed);

    let worst = rec
        .converged
        .iter()
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    eprintln!("soak: {round} faults in {} s; {total} connections counted exactly; {} spammers banned ({banned} bans held); worst convergence after a heal {} ms", started.elapsed().as_secs(), spammers.lock().unwrap().len(), worst.as_millis());
    for ((label, pid), s) in &rec.rss {
        eprintln!(
            "  {label} (pid {pid}): RSS {} → {} MiB over {} samples",
            s[0] >> 20,
            s[s.len() - 1] >> 20,
            s.len()
        );
        // A process that lived through several faults may settle, not climb without bound.
        if s.len() >= 4 {
            assert!(
                s[s.len() - 1] <= 2 * s[1] + (48 << 20),
                "{label} grew from {} to {} MiB",
                s[1] >> 20,
                s[s.len() - 1] >> 20
            );
        }
    }
    assert!(
        worst <= Duration::from_secs(2),
        "a heal took {} ms to converge: {:?}",
        worst.as_millis(),
        rec.converged
    );
}

/// Unmounts the small data dir when the test ends, passed or not.
struct UnmountOnDrop(std::path::PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        unmount_data_dir(&self.0);
    }
}
