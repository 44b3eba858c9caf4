//! Fault soak: mixed traffic for `MXREP_SOAK_SECS` seconds (180 by default; BENCHMARKS.md has a
//! 30-minute run) on the multi-host bed — three nodes, three MX hosts with agents and real
//! nftables — while faults come one after another in a random order: a node SIGKILLed and
//! started again, a node's link down and up, one node's data dir (a small tmpfs) filled until its
//! writes fail, then freed — and, when asked (`MXREP_SOAK_FAULTS`), an agent restarted (SIGTERM).
//!
//! Checked all along: after each heal every MX host's kernel sets hold the leader's whole ban
//! list within 2 s; no committed ban is ever lost (until it expires); at the end every spammer is
//! banned, the delivered messages counted equal the connections written exactly, and no
//! process's memory grew more than a leak would explain.

use mxrep_tests::faults::{data_dir_on_tmpfs, fill, rss_bytes, terminate, unmount_data_dir};
use mxrep_tests::netns::e2e_available;
use mxrep_tests::testbed::Testbed;
use mxrep_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GOOD_SENDERS: u64 = 30;
/// The node whose data dir is a tmpfs that gets filled.
const SMALL_DISK: usize = 2;

fn good(n: u64) -> String {
    format!("198.51.100.{}", 10 + n % GOOD_SENDERS)
}

fn stamp() -> String {
    chrono::Utc::now().format("%b %e %H:%M:%S").to_string()
}

fn append(log: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Delivering connections on every MX host (about 50 a second each) until `stop`.
fn good_traffic(
    bed: &Testbed,
    stop: &Arc<AtomicBool>,
    written: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    bed.mx
        .iter()
        .map(|m| {
            let (log, host, stop, written) = (m.log.clone(), m.name.clone(), stop.clone(), written.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let (ip, pid, t) = (good(n), 20_000 + n % 10_000, stamp());
                    append(&log, &format!(
                        "{t} {host} postfix/smtpd[{pid}]: connect from unknown[{ip}]\n\
                         {t} {host} postfix/smtpd[{pid}]: 5{n:X}: client=unknown[{ip}]\n\
                         {t} {host} postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"));
                    written.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect()
}

/// Five refused connections from `addr` on `host`'s log: enough for a ban.
fn spam(log: &std::path::Path, host: &str, addr: &str) {
    append(
        log,
        &mxrep_tests::mix::refused_connections(addr, host, &stamp()),
    );
}

/// The leader's drop bans (prefix → expiry), asked of the leader itself.
fn leader_bans(bed: &Testbed) -> Option<BTreeMap<String, i64>> {
    let leader = bed.wait_for_leader();
    let n = bed.nodes.iter().find(|n| n.id == leader)?;
    let v = ctl_json_in(n.netns.as_deref(), &n.api, &["bans", "list"]).ok()?;
    Some(
        v["bans"]
            .as_array()?
            .iter()
            .filter(|b| b["action"] == "drop")
            .filter_map(|b| {
                let p = b["prefix"].as_str()?;
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/32")
                };
                Some((p, b["expires_unix_ms"].as_i64()?))
            })
            .collect(),
    )
}

/// What the soak saw, for its report and its final checks.
#[derive(Default)]
struct Record {
    /// Every drop ban ever seen at a leader, with its expiry.
    committed: BTreeMap<String, i64>,
    /// Heal → all kernels hold the leader's list, per fault kind.
    converged: Vec<(&'static str, Duration)>,
    /// Heal → one leader named by every node (and its list read), per fault.
    leader_known: Vec<Duration>,
    /// RSS samples per process (label, pid).
    rss: BTreeMap<(String, u32), Vec<u64>>,
}

impl Record {
    /// No committed, unexpired ban missing from the leader's list.
    fn check_nothing_lost(&mut self, bed: &Testbed) {
        let now = chrono::Utc::now().timestamp_millis();
        let list = wait_until(Duration::from_secs(30), "the leader's ban list", || {
            leader_bans(bed)
        });
        for (p, exp) in &self.committed {
            assert!(
                *exp < now + 5_000 || list.contains_key(p),
                "committed ban {p} lost"
            );
        }
        self.committed.extend(list);
    }

    /// Waits until every MX host's kernel holds the leader's list; records how long it took.
    fn check_converged(&mut self, bed: &Testbed, kind: &'static str, healed: Instant) {
        let want: BTreeSet<String> =
            wait_until(Duration::from_secs(30), "the leader's ban list", || {
                leader_bans(bed)
            })
            .into_keys()
            .collect();
        self.leader_known.push(healed.elapsed());
        wait_until(
            Duration::from_secs(30),
            "every MX host to hold the leader's bans",
            || {
                bed.mx
                    .iter()
                    .all(|m| {
                        let have: BTreeSet<String> = m.kernel_bans().into_iter().collect();
                        want.is_subset(&have)
                    })
                    .then_some(())
            },
        );
        self.converged.push((kind, healed.elapsed()));
    }

    fn sample_memory(&mut self, bed: &Testbed) {
        let procs = bed
            .nodes
            .iter()
            .filter_map(|n| Some((format!("node {}", n.id), n.pid()?)))
            .chain(
                bed.mx
                    .iter()
                    .filter_map(|m| Some((format!("agent {}", m.name), m.agent.as_ref()?.0.id()))),
            );
        for (label, pid) in procs {
            let rss = rss_bytes(pid);
            if rss > 0 {
                self.rss.entry((label, pid)).or_default().push(rss);
            }
        }
    }
}

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
        Arc::new(AtomicU64::new(0)),
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
    // MXREP_SOAK_FAULTS (comma-separated) picks the kinds. "agent restarted" is not among the
    // default ones: under it the soak still finds about 1 in 2,500 connections uncounted
    // (BENCHMARKS.md, "Fault soak"; tests/tests/agent_restart.rs passes), a defect open in
    // issue 16; `MXREP_SOAK_FAULTS="agent restarted"` shows it.
    let chosen = std::env::var("MXREP_SOAK_FAULTS")
        .unwrap_or_else(|_| "node killed,link down,disk full".into());
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
    let total = written.load(Ordering::SeqCst);
    let leader = bed.wait_for_leader();
    let node = bed.nodes.iter().find(|n| n.id == leader).unwrap();
    let count_all = || -> Option<u64> {
        (0..GOOD_SENDERS)
            .map(|n| {
                let r = ctl_json_in(node.netns.as_deref(), &node.api, &["ip", "show", &good(n)])
                    .ok()?;
                let c = r["counters"].as_array()?.iter();
                Some(
                    // Over the 24 h good memory: "accepted messages" is a 10-minute window.
                    c.filter(|c| c["name"] == "messages delivered (good memory)")
                        .filter_map(|c| c["count"].as_u64())
                        .sum::<u64>(),
                )
            })
            .sum()
    };
    let last = std::cell::Cell::new(None);
    let got = wait_until(
        Duration::from_secs(60),
        &format!("every delivered message counted ({total} written)"),
        || {
            let c = count_all();
            if c != last.get() {
                eprintln!("  counted {c:?} of {total}");
                last.set(c);
            }
            c.filter(|c| *c >= total)
        },
    );
    assert_eq!(
        got, total,
        "counted {got} delivered messages of {total} written"
    );
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
