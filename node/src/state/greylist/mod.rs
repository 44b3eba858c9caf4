//! Greylisting for the whole fleet, as replicated data: triplets (client network, normalised
//! sender, recipient — as a 64-bit key, see `mxrep_common::triplet`) with when they were first seen and first
//! passed, and per client network how often it passed (five passes, at most one an hour counted by default,
//! allowlist it for 35 days, as postgrey's `--auto-whitelist-clients`).
//!
//! - this file: the tables, sightings applied at the entry's time, expiry;
//! - `mxrep_common::triplet`: sender normalisation and the triplet key (shared with the agent);
//! - [`decide`]: the answer to one policy request, read from applied state (no write waited on).

pub mod decide;

use super::policy::Greylist as GreylistPolicy;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One triplet, times in cluster seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triplet {
    /// When it was first seen (or seen again after its retry window ran out).
    pub first: u32,
    /// When a retry first came after the delay (0: still pending).
    pub passed: u32,
    /// When it was last seen.
    pub last: u32,
}

/// Greylisting history of one client network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreyClient {
    /// Triplets first seen from it.
    pub seen: u32,
    /// Triplets that passed.
    pub passed: u32,
    /// Passes counted toward the allowlist (at most one an hour).
    pub passes: u32,
    pub last_pass: u32,
    /// Not greylisted until this time (0: not allowlisted).
    pub allowlisted_until: u32,
    /// When it was last seen.
    pub last: u32,
}

/// A request that the cluster should remember: a triplet seen from a client network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub triplet: u64,
    pub network: IpNet,
}

/// Every triplet and client network the fleet has greylisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreylistTable {
    pub triplets: BTreeMap<u64, Triplet>,
    pub clients: BTreeMap<IpNet, GreyClient>,
    /// Cluster second of the last expiry sweep.
    pub last_sweep: u32,
}

/// Expired triplets are swept this often (cluster time).
const SWEEP_EVERY: u32 = 3600;

impl GreylistTable {
    /// Applies sightings at cluster second `now`; returns how many triplets were greylisted
    /// afresh and how many passed.
    pub fn apply(&mut self, p: &GreylistPolicy, sightings: &[Sighting], now: u32) -> (u64, u64) {
        let (mut greylisted, mut passed) = (0, 0);
        for s in sightings {
            let client = self.clients.entry(s.network).or_default();
            client.last = client.last.max(now);
            let t = self.triplets.entry(s.triplet).or_default();
            let fresh = t.first == 0
                || (t.passed == 0 && now > t.first.saturating_add(p.retry_window_secs));
            if fresh {
                *t = Triplet {
                    first: now,
                    passed: 0,
                    last: now,
                };
                client.seen += 1;
                greylisted += 1;
                continue;
            }
            t.last = t.last.max(now);
            if t.passed == 0 {
                if now < t.first.saturating_add(p.delay_secs) {
                    continue;
                }
                t.passed = now;
                client.passed += 1;
                passed += 1;
            }
            if client.passes == 0
                || now
                    >= client
                        .last_pass
                        .saturating_add(p.auto_allowlist_spacing_secs)
            {
                client.passes += 1;
                client.last_pass = now;
                if client.passes >= p.auto_allowlist_passes {
                    client.allowlisted_until = now.saturating_add(p.auto_allowlist_secs);
                }
            }
        }
        (greylisted, passed)
    }

    /// Forgets triplets not seen for `max_age_secs`, pending ones past their retry window, and
    /// clients with nothing left; once an hour of cluster time.
    pub fn sweep_if_due(&mut self, p: &GreylistPolicy, now: u32) {
        if now < self.last_sweep.saturating_add(SWEEP_EVERY) {
            return;
        }
        self.last_sweep = now;
        self.triplets.retain(|_, t| {
            let pending_expired =
                t.passed == 0 && now > t.first.saturating_add(p.retry_window_secs);
            !pending_expired && now <= t.last.saturating_add(p.max_age_secs)
        });
        self.clients.retain(|_, c| {
            c.allowlisted_until > now || now <= c.last.saturating_add(p.max_age_secs)
        });
    }

    pub fn is_allowlisted(&self, network: &IpNet, now: u32) -> bool {
        self.clients
            .get(network)
            .is_some_and(|c| c.allowlisted_until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> IpNet {
        "192.0.2.0/24".parse().unwrap()
    }

    #[test]
    fn lifecycle_delay_pass_expiry_and_allowlist() {
        let p = GreylistPolicy::default();
        let mut g = GreylistTable::default();
        let s = |k| Sighting {
            triplet: k,
            network: net(),
        };
        g.apply(&p, &[s(1)], 1000);
        assert_eq!(
            g.triplets[&1],
            Triplet {
                first: 1000,
                passed: 0,
                last: 1000
            }
        );
        g.apply(&p, &[s(1)], 1100); // too early: nothing passes
        assert_eq!(g.triplets[&1].passed, 0);
        g.apply(&p, &[s(1)], 1300);
        assert_eq!(g.triplets[&1].passed, 1300);
        // Passes count toward the allowlist at most once an hour.
        for (i, k) in (2..=6).enumerate() {
            let t0 = 2000 + i as u32 * 4000;
            g.apply(&p, &[s(k)], t0);
            g.apply(&p, &[s(k)], t0 + 301);
        }
        let c = &g.clients[&net()];
        assert_eq!((c.seen, c.passed), (6, 6));
        assert!(g.is_allowlisted(&net(), 30_000), "{c:?}");
        assert!(!g.is_allowlisted(&net(), 30_000 + p.auto_allowlist_secs + 20_000));
        // A pending triplet that nobody retried within the window starts over.
        g.apply(&p, &[s(9)], 100_000);
        g.apply(&p, &[s(9)], 100_000 + p.retry_window_secs + 1);
        assert_eq!(g.triplets[&9].first, 100_000 + p.retry_window_secs + 1);
        // Sweeps forget what is too old: a pending triplet past its window, then everything
        // unseen for the maximum age (the allowlist outlives its triplets until it ends).
        let t = 100_000 + 2 * p.retry_window_secs + 10;
        g.sweep_if_due(&p, t);
        assert!(!g.triplets.contains_key(&9) && g.triplets.contains_key(&1));
        g.sweep_if_due(&p, t + p.max_age_secs + 1);
        assert!(g.triplets.is_empty(), "{:?}", g.triplets);
        assert!(g.clients.is_empty(), "{:?}", g.clients);
    }

    #[test]
    fn quick_retries_within_an_hour_count_once() {
        let p = GreylistPolicy::default();
        let mut g = GreylistTable::default();
        for k in 0..10 {
            g.apply(
                &p,
                &[Sighting {
                    triplet: k,
                    network: net(),
                }],
                1000,
            );
            g.apply(
                &p,
                &[Sighting {
                    triplet: k,
                    network: net(),
                }],
                1400,
            );
        }
        assert_eq!(g.clients[&net()].passes, 1);
        assert!(!g.is_allowlisted(&net(), 1500));
    }
}
