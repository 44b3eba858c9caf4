//! Applying one flush of connection verdicts: each agent batch counted once (see [`dedup`]),
//! each verdict into its address's counters and into its prefixes at every level, then every
//! touched key assessed by the rules.
//!
//! [`dedup`]: super::dedup

use super::counters::{member_of, truncate, AUTH_FAILURES, BAD, NEUTRAL, REJECTS};
use super::rules::{self, Decision};
use super::{BanChange, BatchId, Observation, ReputationState};
use ipnet::IpNet;
use std::net::IpAddr;

/// Verdicts whose addresses are looked up together before they are counted: independent
/// lookups the processor overlaps, where one at a time each waits for its own cache misses.
const WARM_AHEAD: usize = 16;

impl ReputationState {
    /// Applies one flush, then evaluates the policies for every key it touched.
    pub(super) fn observe(
        &mut self,
        index: u64,
        hosts: &[String],
        batches: &[BatchId],
        obs: &[Observation],
    ) -> Vec<BanChange> {
        let host_bits: Vec<u64> = hosts.iter().map(|h| self.host_bit(h)).collect();
        let clock = self.clock_ms;
        // Per batch: its host bit, or None if it was counted before.
        let fresh: Vec<Option<u64>> = batches
            .iter()
            .map(|b| {
                let name = hosts.get(b.host as usize)?;
                let bit = *host_bits.get(b.host as usize)?;
                self.batches
                    .first_time(name, b.session, b.seq, clock)
                    .then_some(bit)
            })
            .collect();
        let now = self.now_secs();
        // Collected, then sorted: the keys are judged in address order, each once.
        let mut touched_addrs = Vec::with_capacity(obs.len());
        let mut touched_prefixes = Vec::with_capacity(obs.len());
        for chunk in obs.chunks(WARM_AHEAD) {
            self.addrs.warm(chunk.iter().map(|o| o.addr));
            for o in chunk {
                self.count(o, &fresh, now, &mut touched_addrs, &mut touched_prefixes);
            }
        }
        touched_addrs.sort_unstable();
        touched_addrs.dedup();
        touched_prefixes.sort_unstable();
        touched_prefixes.dedup();
        // A key whose decision is made already would be refused by `decide`: it is not judged
        // (and its decision text not written) again.
        let mut decisions: Vec<Decision> = touched_addrs
            .into_iter()
            .filter(|a| !self.is_settled(&IpNet::from(*a)))
            .filter_map(|a| rules::address::decide(self, a, now))
            .collect();
        decisions.extend(
            touched_prefixes
                .into_iter()
                .filter(|p| !self.is_settled(p))
                .filter_map(|p| rules::prefix::decide(self, p, now)),
        );
        decisions
            .into_iter()
            .filter_map(|d| self.decide(index, d))
            .collect()
    }

    /// Counts one verdict, if its batch is counted for the first time.
    fn count(
        &mut self,
        o: &Observation,
        fresh: &[Option<u64>],
        now: u32,
        touched_addrs: &mut Vec<IpAddr>,
        touched_prefixes: &mut Vec<IpNet>,
    ) {
        let Some(Some(bit)) = fresh.get(o.batch as usize).copied() else {
            return;
        };
        let at = o.at.min(now);
        self.count_address(o, bit, at);
        touched_addrs.push(o.addr);
        let dnswl = self.dnsbl.allowlisted(o.addr, now);
        if o.bad > 0 || o.delivered > 0 || dnswl || self.is_name_allowed(o.addr) {
            self.count_prefixes(o, bit, at, touched_prefixes);
        }
    }

    fn count_address(&mut self, o: &Observation, bit: u64, at: u32) {
        let p = &self.policy;
        let (cw, mw, rw, gm) = (
            p.connection_rate.window_secs,
            p.message_rate.window_secs,
            p.rejects.window_secs,
            p.changing_addresses.good_memory_secs,
        );
        let name_ok = o
            .verified_name
            .as_deref()
            .is_some_and(|n| name_allowed(&p.safety.allow_client_names, n));
        let st = self.addrs.entry(o.addr);
        st.hosts |= bit;
        for (lane, n) in [(BAD, o.bad), (NEUTRAL, o.neutral)] {
            if n > 0 {
                st.connections.add_to(lane, at, cw, n);
            }
        }
        for (lane, n) in [(REJECTS, o.rejects), (AUTH_FAILURES, o.auth_failures)] {
            if n > 0 {
                st.refusals.add_to(lane, at, rw, n);
            }
        }
        for (w, win, n) in [
            (&mut st.messages, mw, o.messages),
            (&mut st.good, gm, o.messages),
        ] {
            if n > 0 {
                w.add(at, win, n);
            }
        }
        if name_ok {
            self.named.insert(o.addr);
        }
        if o.bad > 0 {
            if let Some(t) = self.throttles.get_mut(&o.addr) {
                t.bad_since = t.bad_since.saturating_add(o.bad);
            }
        }
    }

    /// Marks the verdict in the address's prefix at every level; adds the prefixes marked to
    /// `touched`.
    fn count_prefixes(&mut self, o: &Observation, bit: u64, at: u32, touched: &mut Vec<IpNet>) {
        let v6 = o.addr.is_ipv6();
        let first = self.policy.changing_addresses.first_len(v6);
        let now = self.now_secs();
        let good =
            o.delivered > 0 || self.is_name_allowed(o.addr) || self.dnsbl.allowlisted(o.addr, now);
        for i in 0.. {
            // By index: the policy is read while the prefixes are written.
            let Some(len) = self.policy.changing_addresses.levels(v6).nth(i) else {
                break;
            };
            let key = truncate(o.addr, len);
            let member: IpAddr = member_of(o.addr, len, first);
            let ps = self.prefixes.entry(key).or_default();
            ps.hosts |= bit;
            if good {
                ps.mark_good(member, at);
            }
            if o.bad > 0 {
                ps.mark_bad(member, at);
            }
            touched.push(key);
        }
    }
}

/// Is `name` one of `allowed` or inside one of them (`mail-x.outlook.com` in `outlook.com`)?
pub fn name_allowed(allowed: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name == "unknown" {
        return false;
    }
    allowed.iter().any(|a| {
        let a = a
            .trim()
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        name == a || name.ends_with(&format!(".{a}"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_match_on_label_boundaries() {
        let allowed = vec!["outlook.com".to_string(), ".google.com".to_string()];
        assert!(super::name_allowed(
            &allowed,
            "mail-db8.eurprd.outbound.protection.OUTLOOK.com"
        ));
        assert!(super::name_allowed(&allowed, "google.com."));
        assert!(!super::name_allowed(&allowed, "evil-outlook.com"));
        assert!(!super::name_allowed(&allowed, "unknown"));
        assert!(!super::name_allowed(&allowed, ""));
    }
}
