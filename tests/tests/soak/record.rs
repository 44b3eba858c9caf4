//! What the soak records while faults come and go: the bans seen committed, how long each heal
//! took to reach every kernel, and the processes' memory.

use mxrep_tests::faults::rss_bytes;
use mxrep_tests::testbed::Testbed;
use mxrep_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The leader's drop bans (prefix → expiry), asked of the leader itself.
pub fn leader_bans(bed: &Testbed) -> Option<BTreeMap<String, i64>> {
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
pub struct Record {
    /// Every drop ban ever seen at a leader, with its expiry.
    pub committed: BTreeMap<String, i64>,
    /// Heal → all kernels hold the leader's list, per fault kind.
    pub converged: Vec<(&'static str, Duration)>,
    /// Heal → one leader named by every node (and its list read), per fault.
    pub leader_known: Vec<Duration>,
    /// RSS samples per process (label, pid).
    pub rss: BTreeMap<(String, u32), Vec<u64>>,
}

impl Record {
    /// No committed, unexpired ban missing from the leader's list.
    pub fn check_nothing_lost(&mut self, bed: &Testbed) {
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
    pub fn check_converged(&mut self, bed: &Testbed, kind: &'static str, healed: Instant) {
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

    pub fn sample_memory(&mut self, bed: &Testbed) {
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
