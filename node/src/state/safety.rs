//! What a rule's decision must pass to become a ban, and how long the ban lasts.
//!
//! - Allowlisted prefixes and allowlisted verified client names are never banned automatically,
//!   nor is a prefix that holds an address vouched for (DNSWL, allowlisted verified name);
//!   nor is a key an operator unbanned (for the grace time), nor one already inside a ban.
//! - Automatic bans never cover more than the breadth limit (IPv4 /24, IPv6 /48 by default).
//! - Repeat offenders: each new ban of the same key lasts `factor` times longer, capped.
//! - The breaker trips on signs of a bug or a poisoned feed, not on attack volume: more than
//!   `max_new_bans_per_minute` new *risky* automatic bans — prefix bans, or bans of keys that
//!   delivered mail within the good memory — switch risky bans to observe-only: recorded, not
//!   enforced. Bans of single addresses that never delivered mail cost no legitimate mail and go
//!   on, so a botnet wave of thousands of bad-only addresses is stopped rather than turning
//!   enforcement off when it is needed most. Only a raw volume far above any wave
//!   (`max_all_new_bans_per_minute`) holds back every automatic ban. Observe-only ends by itself
//!   once `observe_only_recovery_secs` pass without a decision held back, or when an operator
//!   clears it.

use super::counters::Throttle;
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

/// Why the cluster stopped enforcing new automatic bans, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveOnly {
    pub since_ms: i64,
    pub reason: String,
    /// Every automatic ban is held back (the raw volume limit), not only risky ones.
    pub all: bool,
    /// Cluster time of the last decision held back.
    pub last_held_ms: i64,
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
            || self.is_settled(&key)
        {
            return None;
        }
        let s = &self.policy.safety;
        let broadest = match key {
            IpNet::V4(_) => s.max_breadth_ipv4,
            IpNet::V6(_) => s.max_breadth_ipv6,
        };
        if key.prefix_len() < broadest || (!single && self.covers_vouched(&key)) {
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
            action: d.action,
            author: String::new(),
        };
        if self.breaker_holds(now, self.is_risky(&key)) {
            if self.observed.len() < MAX_OBSERVED {
                self.insert_observed(ban);
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
        let kind = match self.insert_ban(ban.clone()) {
            Some(_) => BanChangeKind::Extended,
            None => BanChangeKind::Added,
        };
        Some(BanChange { kind, ban })
    }

    /// Does prefix `key` hold an address vouched for by an allowlist (DNSWL, or a verified
    /// client name on the policy's list)? Such a prefix is never banned automatically.
    fn covers_vouched(&self, key: &IpNet) -> bool {
        let now = self.now_secs();
        let range = key.network()..=key.broadcast();
        self.dnsbl
            .entries
            .range(range.clone())
            .any(|(a, _)| self.dnsbl.allowlisted(*a, now))
            || self.named.range(range).next().is_some()
    }

    /// Counts one automatic ban against the breaker; true if it must be held back.
    fn breaker_holds(&mut self, now: i64, risky: bool) -> bool {
        let minute_ago = now - 60_000;
        for q in [&mut self.recent_auto_bans, &mut self.recent_all_bans] {
            while q.front().is_some_and(|t| *t <= minute_ago) {
                q.pop_front();
            }
        }
        let s = &self.policy.safety;
        let (max_risky, max_all) = (
            s.max_new_bans_per_minute as usize,
            s.max_all_new_bans_per_minute as usize,
        );
        let held = |o: &ObserveOnly| o.all || risky;
        if let Some(o) = self.observe_only.as_mut().filter(|o| held(o)) {
            o.last_held_ms = now;
            return true;
        }
        self.recent_all_bans.push_back(now);
        if risky {
            self.recent_auto_bans.push_back(now);
        }
        let trip = if self.recent_all_bans.len() > max_all {
            Some((true, format!("more than {max_all} new automatic bans within one minute: every new automatic ban is recorded, not enforced")))
        } else if risky && self.recent_auto_bans.len() > max_risky {
            Some((false, format!("more than {max_risky} new automatic bans of prefixes or of addresses that delivered mail within one minute (a bug or a poisoned feed?): such bans are recorded, not enforced; bans of addresses that never delivered go on")))
        } else {
            None
        };
        let Some((all, reason)) = trip else {
            return false;
        };
        self.observe_only = Some(ObserveOnly {
            since_ms: now,
            reason,
            all,
            last_held_ms: now,
        });
        true
    }

    /// Ends observe-only once the signs cleared: no decision held back for the recovery time.
    pub(super) fn recover_if_clear(&mut self) {
        let secs = self.policy.safety.observe_only_recovery_secs;
        let clear = self.observe_only.as_ref().is_some_and(|o| {
            secs > 0
                && o.last_held_ms
                    .saturating_add((secs as i64).saturating_mul(1000))
                    <= self.clock_ms
        });
        if clear {
            self.observe_only = None;
            self.recent_auto_bans.clear();
            self.recent_all_bans.clear();
        }
    }

    /// Records the connection-rate rule's first answer: mail refused temporarily, no drop.
    fn tempfail(&mut self, index: u64, d: Decision) -> Option<BanChange> {
        let now = self.clock_ms;
        if self.bans.contains_key(&d.key) {
            return None;
        }
        let secs = (now.max(0) / 1000) as u32;
        self.throttles.insert(
            d.key.addr(),
            Throttle {
                at: secs.max(1),
                bad_since: 0,
            },
        );
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
            author: String::new(),
        };
        self.insert_ban(ban.clone());
        Some(BanChange {
            kind: BanChangeKind::Added,
            ban,
        })
    }
}
