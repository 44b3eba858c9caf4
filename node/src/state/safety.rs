//! What a rule's decision must pass to become a ban, and how long the ban lasts.
//!
//! - Allowlisted prefixes and allowlisted verified client names are never banned automatically;
//!   nor is a key an operator unbanned (for the grace time), nor one already inside a ban.
//! - Automatic bans never cover more than the breadth limit (IPv4 /24, IPv6 /48 by default).
//! - Repeat offenders: each new ban of the same key lasts `factor` times longer, capped.
//! - The breaker: more than `max_new_bans_per_minute` new *risky* automatic bans — prefix bans,
//!   or bans of keys that delivered mail within the good memory, which is what a bug or a
//!   poisoned feed would produce — switch the cluster to observe-only for risky bans: they are
//!   recorded, not enforced, until an operator clears it. Bans of single addresses that never
//!   delivered mail cost no legitimate mail and go on, so a botnet wave of thousands of bad-only
//!   addresses is stopped rather than turning enforcement off when it is needed most.

use super::rules::Decision;
use super::{Ban, BanAction, BanChange, BanChangeKind, BanSource, ReputationState};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Most decisions kept while in observe-only mode.
const MAX_OBSERVED: usize = 10_000;

/// A key's history of automatic bans, for repeat-offender escalation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offence {
    pub count: u32,
    pub last_ms: i64,
}

/// Why the cluster stopped enforcing new risky automatic bans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveOnly {
    pub since_ms: i64,
    pub reason: String,
}

impl ReputationState {
    /// Could banning `key` cost legitimate mail: a prefix, or a key that delivered recently?
    pub fn is_risky(&self, key: &IpNet) -> bool {
        let now = self.now_secs();
        let memory = self.policy.changing_addresses.good_memory_secs;
        if key.prefix_len() < key.max_prefix_len() {
            return true;
        }
        self.addrs
            .get(key.addr())
            .is_some_and(|s| s.good.sum(now, memory) > 0)
    }

    /// Turns a rule's decision into a ban (or a temporary refusal), unless a safety limit says no.
    pub(super) fn decide(&mut self, index: u64, d: Decision) -> Option<BanChange> {
        let key = d.key;
        let now = self.clock_ms;
        let single = key.prefix_len() == key.max_prefix_len();
        if self.is_allowed(&key)
            || (single && self.is_name_allowed(key.addr()))
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
        if d.action == BanAction::Tempfail {
            return self.tempfail(index, d);
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
        let ban = Ban {
            prefix: key,
            reason: d.reason,
            source: BanSource::Automatic,
            created_ms: now,
            expires_ms: now.saturating_add((secs as i64).saturating_mul(1000)),
            version: index,
            level,
            evidence: d.evidence,
            action: BanAction::Drop,
        };
        if self.is_risky(&key) && self.breaker_holds(now) {
            if self.observed.len() < MAX_OBSERVED {
                self.observed.insert(key, ban);
            }
            return None;
        }
        self.offences.insert(
            key,
            Offence {
                count: level + 1,
                last_ms: now,
            },
        );
        let kind = match self.bans.insert(key, ban.clone()) {
            Some(_) => BanChangeKind::Extended,
            None => BanChangeKind::Added,
        };
        Some(BanChange { kind, ban })
    }

    /// Counts one risky ban against the breaker; true if it must be held back.
    fn breaker_holds(&mut self, now: i64) -> bool {
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
                        "more than {max} new automatic bans of prefixes or of addresses that delivered mail within one minute: such bans are recorded, not enforced, until an operator clears observe-only mode (bans of addresses that never delivered go on)"
                    ),
                });
            }
        }
        self.observe_only.is_some()
    }

    /// Records the connection-rate rule's first answer: mail refused temporarily, no drop.
    fn tempfail(&mut self, index: u64, d: Decision) -> Option<BanChange> {
        let now = self.clock_ms;
        if self.bans.contains_key(&d.key) {
            return None;
        }
        let secs = (now.max(0) / 1000) as u32;
        let st = self.addrs.entry(d.key.addr());
        st.throttled_at = secs.max(1);
        st.bad_since_throttle = 0;
        let ban = Ban {
            prefix: d.key,
            reason: d.reason,
            source: BanSource::Automatic,
            created_ms: now,
            expires_ms: now.saturating_add((d.base_secs as i64).saturating_mul(1000)),
            version: index,
            level: 0,
            evidence: d.evidence,
            action: BanAction::Tempfail,
        };
        self.bans.insert(d.key, ban.clone());
        Some(BanChange {
            kind: BanChangeKind::Added,
            ban,
        })
    }
}
