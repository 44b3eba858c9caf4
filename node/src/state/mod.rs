//! The replicated state machine of mxrep: a pure, deterministic module with no I/O.
//!
//! `ReputationState::apply(index, request)` is the only way state changes. It depends on nothing
//! but its inputs: "now" is the time the leader stamped on the entry (kept monotone here, so a
//! leader with a slower clock can never move time backwards), never the clock at apply time.
//! Windows rotate and bans expire on apply, driven by the leader's periodic tick entries. Every
//! map is ordered, so every node that applies the same log holds the same state.
//!
//! - [`counters`] and [`window`]: what is counted, per address and per prefix;
//! - [`rules`]: the policies that turn counts into decisions;
//! - [`policy`]: the replicated policy document;
//! - this file: bans, allowlist, repeat offenders, the safety limits, and eviction.
//!
//! The Raft layer (`crate::raft`) stores and replicates the entries; this module decides.

mod ban;
mod command;
pub mod counters;
pub mod policy;
mod prefix;
mod report;
mod rules;
pub mod window;

pub use ban::{Ban, BanChange, BanChangeKind, BanSource, Evidence};
pub use command::{Command, Observation, Request, Response};
pub use policy::Policy;
pub use prefix::{parse_address, parse_prefix, PrefixError};
pub use report::{AddressReport, CounterReport};

use counters::{AddrTable, PrefixStats};
use ipnet::IpNet;
use rules::Decision;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

/// How often (cluster time) idle counters are evicted.
const SWEEP_EVERY_MS: i64 = 60_000;
/// Most MX host names interned; later ones count as "other hosts".
const MAX_HOSTS: usize = 1024;
/// Most decisions kept while in observe-only mode.
const MAX_OBSERVED: usize = 10_000;

/// A key's history of automatic bans, for repeat-offender escalation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offence {
    pub count: u32,
    pub last_ms: i64,
}

/// Why the cluster stopped enforcing new automatic bans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveOnly {
    pub since_ms: i64,
    pub reason: String,
}

/// Everything the cluster agrees on, as of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationState {
    /// Cluster time in unix milliseconds: the largest time stamped on any applied entry.
    pub clock_ms: i64,
    /// Log index of the last change of the enforced ban set (0: never changed).
    pub version: u64,
    /// Enforced bans by canonical prefix.
    pub bans: BTreeMap<IpNet, Ban>,
    pub policy: Policy,
    /// Operator allowlist (`mxrepctl allow add`), on top of the policy's `safety.allow`.
    pub allow: BTreeSet<IpNet>,
    /// Interned MX host names; the index is the bit in the counters' host masks.
    pub hosts: Vec<String>,
    pub addrs: AddrTable,
    pub prefixes: BTreeMap<IpNet, PrefixStats>,
    pub offences: BTreeMap<IpNet, Offence>,
    /// Keys an operator unbanned: no automatic ban until the time given.
    pub suppressed: BTreeMap<IpNet, i64>,
    /// Creation times of automatic bans in the last minute.
    pub recent_auto_bans: VecDeque<i64>,
    pub observe_only: Option<ObserveOnly>,
    /// Decisions taken while in observe-only mode: recorded, not enforced.
    pub observed: BTreeMap<IpNet, Ban>,
    pub last_sweep_ms: i64,
}

impl ReputationState {
    /// Applies one committed entry at log `index` and says what changed.
    pub fn apply(&mut self, index: u64, request: &Request) -> Response {
        self.clock_ms = self.clock_ms.max(request.now_ms);
        let mut changes = self.expire();
        self.sweep_if_due();
        match &request.command {
            Command::Tick => {}
            Command::Ban {
                prefix,
                duration_ms,
                reason,
                source,
            } => changes.extend(self.manual_ban(index, *prefix, *duration_ms, reason, *source)),
            Command::Unban { prefix } => changes.extend(self.unban(*prefix)),
            Command::Observe {
                hosts,
                observations,
            } => changes.extend(self.observe(index, hosts, observations)),
            Command::SetPolicy(p) => {
                if p.windows() != self.policy.windows() {
                    // Buckets are sized by the windows: counts of other sizes would mislead.
                    self.addrs.clear();
                    self.prefixes.clear();
                }
                self.policy = (**p).clone();
            }
            Command::Allow { prefix, add: true } => {
                self.allow.insert(*prefix);
                changes.extend(self.drop_allowed_auto_bans());
            }
            Command::Allow { prefix, add: false } => {
                self.allow.remove(prefix);
            }
            Command::ClearObserveOnly => {
                self.observe_only = None;
                self.recent_auto_bans.clear();
            }
        }
        if !changes.is_empty() {
            self.version = index;
        }
        Response {
            version: self.version,
            changes,
        }
    }

    /// Enforced bans that cover `addr`, narrowest first.
    pub fn bans_covering(&self, addr: IpAddr) -> Vec<&Ban> {
        covering(&self.bans, addr)
    }

    /// Is `key` equal to, or inside, an enforced ban? One lookup per possible supernet.
    pub fn is_banned_within(&self, key: &IpNet) -> bool {
        (0..=key.prefix_len()).any(|len| {
            IpNet::new(key.addr(), len)
                .map(|n| self.bans.contains_key(&n.trunc()))
                .unwrap_or(false)
        })
    }

    /// Is `key` inside an allowlisted prefix?
    pub fn is_allowed(&self, key: &IpNet) -> bool {
        self.allow
            .iter()
            .chain(self.policy.safety.allow.iter())
            .any(|a| a.contains(key))
    }

    fn now_secs(&self) -> u32 {
        (self.clock_ms.max(0) / 1000).min(u32::MAX as i64) as u32
    }

    fn manual_ban(
        &mut self,
        index: u64,
        prefix: IpNet,
        duration_ms: u64,
        reason: &str,
        source: BanSource,
    ) -> Option<BanChange> {
        let expires_ms = self
            .clock_ms
            .saturating_add(i64::try_from(duration_ms).unwrap_or(i64::MAX));
        if expires_ms <= self.clock_ms {
            return None;
        }
        match self.bans.get_mut(&prefix) {
            Some(existing) => {
                if expires_ms <= existing.expires_ms && existing.reason == reason {
                    return None;
                }
                existing.expires_ms = existing.expires_ms.max(expires_ms);
                existing.reason = reason.to_string();
                existing.source = source;
                existing.version = index;
                Some(BanChange {
                    kind: BanChangeKind::Extended,
                    ban: existing.clone(),
                })
            }
            None => {
                let ban = Ban {
                    prefix,
                    reason: reason.to_string(),
                    source,
                    created_ms: self.clock_ms,
                    expires_ms,
                    version: index,
                    level: 0,
                    evidence: vec![],
                };
                self.bans.insert(prefix, ban.clone());
                Some(BanChange {
                    kind: BanChangeKind::Added,
                    ban,
                })
            }
        }
    }

    fn unban(&mut self, prefix: IpNet) -> Option<BanChange> {
        self.observed.remove(&prefix);
        let ban = self.bans.remove(&prefix)?;
        if ban.source == BanSource::Automatic {
            let until = self
                .clock_ms
                .saturating_add(self.policy.safety.unban_grace_secs as i64 * 1000);
            self.suppressed.insert(prefix, until);
        }
        Some(BanChange {
            kind: BanChangeKind::Removed,
            ban,
        })
    }

    /// Removes automatic bans that an allowlist entry now covers.
    fn drop_allowed_auto_bans(&mut self) -> Vec<BanChange> {
        let gone: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| b.source == BanSource::Automatic && self.is_allowed(&b.prefix))
            .map(|b| b.prefix)
            .collect();
        gone.into_iter()
            .filter_map(|p| self.bans.remove(&p))
            .map(|ban| BanChange {
                kind: BanChangeKind::Removed,
                ban,
            })
            .collect()
    }

    /// Bit of host `name` in the host masks, interning it if there is room.
    fn host_bit(&mut self, name: &str) -> u64 {
        let idx = match self.hosts.iter().position(|h| h == name) {
            Some(i) => i,
            None if self.hosts.len() < MAX_HOSTS => {
                self.hosts.push(name.to_string());
                self.hosts.len() - 1
            }
            None => 63,
        };
        1u64 << idx.min(63)
    }

    /// Host names of a mask.
    pub fn host_names(&self, mask: u64) -> Vec<String> {
        let mut out: Vec<String> = (0..63)
            .filter(|i| mask & (1 << i) != 0)
            .filter_map(|i| self.hosts.get(i).cloned())
            .collect();
        if mask & (1 << 63) != 0 {
            out.push("(other hosts)".into());
        }
        out
    }

    /// Applies one flush of deltas, then evaluates the policies for every key it touched.
    fn observe(&mut self, index: u64, hosts: &[String], obs: &[Observation]) -> Vec<BanChange> {
        let bits: Vec<u64> = hosts.iter().map(|h| self.host_bit(h)).collect();
        let now = self.now_secs();
        let p = &self.policy;
        let (cw, mw, rw) = (
            p.connection_rate.window_secs,
            p.message_rate.window_secs,
            p.rejects.window_secs,
        );
        let (v4len, v6len) = (
            p.changing_addresses.ipv4_prefix_len,
            p.changing_addresses.ipv6_prefix_len,
        );
        let cap = (p.changing_addresses.distinct_addresses as usize).saturating_mul(4);
        let mut touched_addrs = BTreeSet::new();
        let mut touched_prefixes = BTreeSet::new();
        for o in obs {
            let Some(&bit) = bits.get(o.host as usize) else {
                continue;
            };
            let at = o.at.min(now);
            let st = self.addrs.entry(o.addr);
            st.hosts |= bit;
            if o.connects > 0 {
                st.connects.add(at, cw, o.connects);
            }
            if o.accepted > 0 {
                st.accepted.add(at, mw, o.accepted);
            }
            if o.rejects > 0 {
                st.rejects.add(at, rw, o.rejects);
            }
            if o.auth_failures > 0 {
                st.auth_failures.add(at, rw, o.auth_failures);
            }
            touched_addrs.insert(o.addr);
            if o.is_bad() {
                let pfx = counters::prefix_of(o.addr, v4len, v6len);
                let ps = self.prefixes.entry(pfx).or_default();
                ps.mark_bad(o.addr, at, cap.max(1));
                ps.hosts |= bit;
                touched_prefixes.insert(pfx);
            }
        }
        let mut decisions: Vec<Decision> = touched_addrs
            .into_iter()
            .filter_map(|a| rules::evaluate_address(self, a, now))
            .collect();
        decisions.extend(
            touched_prefixes
                .into_iter()
                .filter_map(|p| rules::evaluate_prefix(self, p, now)),
        );
        decisions
            .into_iter()
            .filter_map(|d| self.decide(index, d))
            .collect()
    }

    /// Turns a rule's decision into a ban, unless a safety limit says no.
    fn decide(&mut self, index: u64, d: Decision) -> Option<BanChange> {
        let key = d.key;
        let now = self.clock_ms;
        if self.is_allowed(&key)
            || self.suppressed.get(&key).is_some_and(|until| *until > now)
            || self.is_banned_within(&key)
            || (self.observe_only.is_some() && self.observed.contains_key(&key))
        {
            return None;
        }
        let s = &self.policy.safety;
        let broadest = match key {
            IpNet::V4(_) => s.max_breadth_ipv4,
            IpNet::V6(_) => s.max_breadth_ipv6,
        };
        if key.prefix_len() < broadest {
            return None;
        }
        let r = &self.policy.repeat_offenders;
        let memory_ms = (r.memory_secs as i64).saturating_mul(1000);
        let level = self
            .offences
            .get(&key)
            .filter(|o| o.last_ms.saturating_add(memory_ms) > now)
            .map(|o| o.count)
            .unwrap_or(0);
        let factor = (r.factor as u64).saturating_pow(level);
        let secs = d
            .base_secs
            .saturating_mul(factor)
            .min(r.max_ban_secs.max(d.base_secs));
        self.offences.insert(
            key,
            Offence {
                count: level + 1,
                last_ms: now,
            },
        );
        let ban = Ban {
            prefix: key,
            reason: d.reason,
            source: BanSource::Automatic,
            created_ms: now,
            expires_ms: now.saturating_add((secs as i64).saturating_mul(1000)),
            version: index,
            level,
            evidence: d.evidence,
        };
        while self
            .recent_auto_bans
            .front()
            .is_some_and(|t| *t + 60_000 <= now)
        {
            self.recent_auto_bans.pop_front();
        }
        if self.observe_only.is_none() {
            self.recent_auto_bans.push_back(now);
            let max = self.policy.safety.max_new_bans_per_minute as usize;
            if self.recent_auto_bans.len() > max {
                self.observe_only = Some(ObserveOnly {
                    since_ms: now,
                    reason: format!(
                        "more than {max} new automatic bans within one minute: new automatic bans are recorded, not enforced, until an operator clears observe-only mode"
                    ),
                });
            }
        }
        if self.observe_only.is_some() {
            if self.observed.len() < MAX_OBSERVED {
                self.observed.insert(key, ban);
            }
            return None;
        }
        self.bans.insert(key, ban.clone());
        Some(BanChange {
            kind: BanChangeKind::Added,
            ban,
        })
    }

    /// Removes every ban whose expiry is at or before the cluster clock.
    fn expire(&mut self) -> Vec<BanChange> {
        let now = self.clock_ms;
        self.observed.retain(|_, b| b.expires_ms > now);
        let expired: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| b.expires_ms <= now)
            .map(|b| b.prefix)
            .collect();
        expired
            .into_iter()
            .filter_map(|p| self.bans.remove(&p))
            .map(|ban| BanChange {
                kind: BanChangeKind::Expired,
                ban,
            })
            .collect()
    }

    /// Evicts what no window holds any more, once per minute of cluster time.
    fn sweep_if_due(&mut self) {
        if self.clock_ms < self.last_sweep_ms + SWEEP_EVERY_MS {
            return;
        }
        self.last_sweep_ms = self.clock_ms;
        let now = self.now_secs();
        let p = &self.policy;
        let (cw, mw, rw, pw) = (
            p.connection_rate.window_secs,
            p.message_rate.window_secs,
            p.rejects.window_secs,
            p.changing_addresses.window_secs,
        );
        self.addrs.retain(|s| {
            !(s.connects.is_idle(now, cw)
                && s.accepted.is_idle(now, mw)
                && s.rejects.is_idle(now, rw)
                && s.auth_failures.is_idle(now, rw))
        });
        self.prefixes.retain(|_, ps| {
            ps.bad.retain(|_, t| *t + pw > now);
            !ps.bad.is_empty()
        });
        let memory_ms = (p.repeat_offenders.memory_secs as i64).saturating_mul(1000);
        let clock = self.clock_ms;
        self.offences
            .retain(|_, o| o.last_ms.saturating_add(memory_ms) > clock);
        self.suppressed.retain(|_, until| *until > clock);
    }
}

fn covering(map: &BTreeMap<IpNet, Ban>, addr: IpAddr) -> Vec<&Ban> {
    let mut found: Vec<&Ban> = map.values().filter(|b| b.prefix.contains(&addr)).collect();
    found.sort_by_key(|b| std::cmp::Reverse(b.prefix.prefix_len()));
    found
}

#[cfg(test)]
mod tests;
