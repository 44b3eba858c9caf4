//! The life of a ban outside the rules: operator bans and unbans, expiry at the cluster clock,
//! allowlist entries lifting automatic bans, and the sweep that evicts idle counters.

use super::dedup::SESSION_IDLE_MS;
use super::{Ban, BanAction, BanChange, BanChangeKind, BanSource, ReputationState};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// How often (cluster time) idle counters are evicted.
const SWEEP_EVERY_MS: i64 = 60_000;
// Sessions must outlive a sweep period, or a live agent session could be forgotten.
const _: () = assert!(SESSION_IDLE_MS > SWEEP_EVERY_MS);

/// A lower bound of the earliest expiry among the bans (enforced and observed), so that an entry
/// scans them for expired ones only when one may have expired (a scan of 100,000 bans on every
/// entry made a node's log replay take 1 ms an entry). Derived, not agreed: skipped in snapshots
/// and equal in every comparison; 0 — a new or restored state — means "scan at the next entry".
#[derive(Debug, Clone, Copy, Default)]
pub struct ExpiryHint(i64);

impl PartialEq for ExpiryHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ExpiryHint {}

impl ReputationState {
    /// Enters `ban` (replacing the one of its prefix, returned), keeping the expiry hint a lower
    /// bound and the length counts. Every new ban goes through here.
    pub(super) fn insert_ban(&mut self, ban: Ban) -> Option<Ban> {
        self.ban_expiry.0 = self.ban_expiry.0.min(ban.expires_ms);
        let prefix = ban.prefix;
        let replaced = self.bans.insert(prefix, ban);
        if replaced.is_none() {
            self.ban_lengths.added(&prefix);
        }
        replaced
    }

    /// Removes the ban of `prefix`, keeping the length counts. Every removal goes through here.
    fn remove_ban(&mut self, prefix: &IpNet) -> Option<Ban> {
        let ban = self.bans.remove(prefix)?;
        self.ban_lengths.removed(prefix);
        Some(ban)
    }

    /// Records `ban` as observed (held back by the breaker), keeping the expiry hint a lower
    /// bound. Every observed ban goes through here.
    pub(super) fn insert_observed(&mut self, ban: Ban) {
        self.ban_expiry.0 = self.ban_expiry.0.min(ban.expires_ms);
        self.observed.insert(ban.prefix, ban);
    }

    pub(super) fn manual_ban(
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
                if existing.drops()
                    && expires_ms <= existing.expires_ms
                    && existing.reason == reason
                {
                    return None;
                }
                existing.expires_ms = existing.expires_ms.max(expires_ms);
                existing.reason = reason.to_string();
                existing.source = source;
                existing.version = index;
                existing.action = BanAction::Drop;
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
                    action: BanAction::Drop,
                    author: String::new(),
                };
                self.insert_ban(ban.clone());
                Some(BanChange {
                    kind: BanChangeKind::Added,
                    ban,
                })
            }
        }
    }

    pub(super) fn unban(&mut self, prefix: IpNet) -> Option<BanChange> {
        self.observed.remove(&prefix);
        let ban = self.remove_ban(&prefix)?;
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
    pub(super) fn drop_allowed_auto_bans(&mut self) -> Vec<BanChange> {
        let gone: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| b.source == BanSource::Automatic && self.is_allowed(&b.prefix))
            .map(|b| b.prefix)
            .collect();
        gone.into_iter()
            .filter_map(|p| self.remove_ban(&p))
            .map(|ban| BanChange {
                kind: BanChangeKind::Removed,
                ban,
            })
            .collect()
    }

    /// Removes every ban whose expiry is at or before the cluster clock.
    pub(super) fn expire(&mut self) -> Vec<BanChange> {
        let now = self.clock_ms;
        if now < self.ban_expiry.0 {
            // No ban (enforced or observed) expires before the hint: nothing to scan for.
            return vec![];
        }
        self.observed.retain(|_, b| b.expires_ms > now);
        let expired: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| b.expires_ms <= now)
            .map(|b| b.prefix)
            .collect();
        self.ban_expiry.0 = self
            .bans
            .values()
            .chain(self.observed.values())
            .filter(|b| b.expires_ms > now)
            .map(|b| b.expires_ms)
            .min()
            .unwrap_or(i64::MAX);
        expired
            .into_iter()
            .filter_map(|p| self.remove_ban(&p))
            .map(|ban| BanChange {
                kind: BanChangeKind::Expired,
                ban,
            })
            .collect()
    }

    /// Evicts what no window holds any more, once per minute of cluster time.
    pub(super) fn sweep_if_due(&mut self) {
        if self.clock_ms < self.last_sweep_ms + SWEEP_EVERY_MS {
            return;
        }
        self.last_sweep_ms = self.clock_ms;
        let now = self.now_secs();
        let p = &self.policy;
        let (cw, mw, rw, pw, gm) = (
            p.connection_rate.window_secs,
            p.message_rate.window_secs,
            p.rejects.window_secs,
            p.changing_addresses.window_secs,
            p.changing_addresses.good_memory_secs,
        );
        let refusal = p.connection_rate.tempfail_secs;
        self.throttles
            .retain(|_, t| t.at as u64 + refusal > now as u64);
        let throttles = &self.throttles;
        self.addrs.retain(|a, s| {
            !(s.connections.is_idle(now, cw)
                && s.messages.is_idle(now, mw)
                && s.refusals.is_idle(now, rw)
                && s.good.is_idle(now, gm)
                && !throttles.contains_key(&a))
        });
        let addrs = &self.addrs;
        self.named.retain(|a| addrs.get(*a).is_some());
        self.prefixes.retain(|_, ps| !ps.sweep(now, pw, gm));
        let memory_ms = (p.repeat_offenders.memory_secs as i64).saturating_mul(1000);
        let clock = self.clock_ms;
        self.offences
            .retain(|_, o| o.last_ms.saturating_add(memory_ms) > clock);
        self.suppressed.retain(|_, until| *until > clock);
        self.batches.sweep(clock);
        self.dnsbl.entries.retain(|_, e| e.until > now);
    }
}

/// Entries of `map` that cover `addr`, narrowest first.
pub(super) fn covering(map: &BTreeMap<IpNet, Ban>, addr: IpAddr) -> Vec<&Ban> {
    // One lookup per possible prefix length, narrowest first: the DNSBL zone asks this for
    // every query, and a scan of 100,000 bans per answer is what made it slow.
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (0..=max)
        .rev()
        .filter_map(|len| IpNet::new(addr, len).ok().and_then(|n| map.get(&n.trunc())))
        .collect()
}
