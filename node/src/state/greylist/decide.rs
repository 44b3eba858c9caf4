//! The greylisting answer to one policy request, read from applied state at the node's clock;
//! it says which sighting (if any) the cluster should remember. Pure: no I/O, time passed in.
//!
//! Skipped: clients on the prefix allowlist or with an allowlisted verified name, networks that
//! passed often enough (auto-allowlist), and — when the policy greylists only suspicious clients —
//! clients with delivery history, no bad verdict and a verified name.

use super::Sighting;
use crate::state::counters::truncate;
use crate::state::observe::name_allowed;
use crate::state::ReputationState;
use ipnet::IpNet;
use mxrep_common::triplet::triplet_key;
use std::net::IpAddr;

/// One policy request, as greylisting sees it.
#[derive(Debug, Clone)]
pub struct GreyQuery<'a> {
    pub addr: IpAddr,
    /// Postfix's verified `client_name` ("unknown" when not verified).
    pub client_name: &'a str,
    pub sender: &'a str,
    pub recipient: &'a str,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreyAnswer {
    /// Greylisting is off.
    Disabled,
    /// Let it through; why.
    Pass(String),
    /// Refuse temporarily for `remaining_secs`; why.
    Defer { remaining_secs: u32, reason: String },
}

impl ReputationState {
    /// The answer to `q` at wall-clock second `now`, and the sighting to propose.
    pub fn greylist_check(&self, q: &GreyQuery<'_>, now: u32) -> (GreyAnswer, Option<Sighting>) {
        let p = &self.policy.greylist;
        if !p.enabled {
            return (GreyAnswer::Disabled, None);
        }
        let len = if q.addr.is_ipv4() {
            p.ipv4_prefix_len
        } else {
            p.ipv6_prefix_len
        };
        let network = truncate(q.addr, len);
        let pass = |why: &str| (GreyAnswer::Pass(why.to_string()), None);
        if self.is_allowed(&IpNet::from(q.addr))
            || self.is_name_allowed(q.addr)
            || name_allowed(&self.policy.safety.allow_client_names, q.client_name)
            || self.dnsbl.allowlisted(q.addr, now)
        {
            return pass("allowlisted");
        }
        if self.greylist.is_allowlisted(&network, now) {
            return pass("passed greylisting often enough");
        }
        if p.only_suspicious && !self.is_suspicious(q, now) {
            return pass("not suspicious");
        }
        let key = triplet_key(&network, q.sender, q.recipient);
        let sighting = Some(Sighting {
            triplet: key,
            network,
        });
        match self.greylist.triplets.get(&key) {
            Some(t) if t.passed > 0 => (GreyAnswer::Pass("passed before".into()), sighting),
            Some(t) if now <= t.first.saturating_add(p.retry_window_secs) => {
                let ready = t.first.saturating_add(p.delay_secs);
                if now >= ready {
                    (GreyAnswer::Pass("retried after the delay".into()), sighting)
                } else {
                    let left = ready - now;
                    (
                        GreyAnswer::Defer {
                            remaining_secs: left,
                            reason: format!("retry in {left} s"),
                        },
                        None,
                    )
                }
            }
            _ => (
                GreyAnswer::Defer {
                    remaining_secs: p.delay_secs,
                    reason: format!("first delivery attempt, retry in {} s", p.delay_secs),
                },
                sighting,
            ),
        }
    }

    /// No delivery history, any bad verdict lately, any DNSBL points, or no verified client name.
    fn is_suspicious(&self, q: &GreyQuery<'_>, now: u32) -> bool {
        let verified = (!q.client_name.is_empty() && q.client_name != "unknown")
            || self.dnsbl.verified_name(q.addr, now).is_some();
        let dnsbl_points = self
            .dnsbl
            .entries
            .get(&q.addr)
            .is_some_and(|e| e.until > now && e.score > 0);
        if dnsbl_points {
            return true;
        }
        let p = &self.policy;
        let Some(st) = self.addrs.get(q.addr) else {
            return true;
        };
        let delivered = st.good.sum(now, p.changing_addresses.good_memory_secs) > 0;
        let bad = st.connections.sum_of(
            crate::state::counters::BAD,
            now,
            p.rejects.window_secs.max(p.connection_rate.window_secs),
        ) > 0;
        !delivered || bad || !verified
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Policy, Request};

    fn state(f: impl FnOnce(&mut Policy)) -> ReputationState {
        let mut p = Policy::default();
        p.greylist.enabled = true;
        f(&mut p);
        let mut s = ReputationState::default();
        s.apply(
            1,
            &Request {
                now_ms: 1_000,
                command: Command::SetPolicy(Box::new(p)),
            },
        );
        s
    }

    fn q<'a>(addr: &str, sender: &'a str) -> GreyQuery<'a> {
        GreyQuery {
            addr: addr.parse().unwrap(),
            client_name: "unknown",
            sender,
            recipient: "u@mx.test",
        }
    }

    #[test]
    fn first_defer_then_pass_from_another_address_of_the_network() {
        let mut s = state(|_| {});
        let now = 1_800_000_000u32;
        let (a, sight) = s.greylist_check(&q("192.0.2.10", "news-17@list.test"), now);
        assert!(
            matches!(
                a,
                GreyAnswer::Defer {
                    remaining_secs: 300,
                    ..
                }
            ),
            "{a:?}"
        );
        s.greylist
            .apply(&s.policy.greylist.clone(), &[sight.unwrap()], now);
        let (a, sight) = s.greylist_check(&q("192.0.2.99", "news-18@list.test"), now + 100);
        assert_eq!(
            a,
            GreyAnswer::Defer {
                remaining_secs: 200,
                reason: "retry in 200 s".into()
            }
        );
        assert!(sight.is_none(), "a retry too early changes nothing");
        let (a, sight) = s.greylist_check(&q("192.0.2.99", "news-19@list.test"), now + 301);
        assert_eq!(a, GreyAnswer::Pass("retried after the delay".into()));
        assert!(sight.is_some());
        // Another network starts over.
        let (a, _) = s.greylist_check(&q("198.51.100.1", "news-19@list.test"), now + 302);
        assert!(matches!(a, GreyAnswer::Defer { .. }));
    }

    #[test]
    fn off_allowlisted_and_only_suspicious() {
        let s = ReputationState::default();
        assert_eq!(
            s.greylist_check(&q("192.0.2.1", "a@b"), 10).0,
            GreyAnswer::Disabled
        );
        let s = state(|p| p.safety.allow_client_names = vec!["outlook.com".into()]);
        let mut query = q("192.0.2.1", "a@b");
        query.client_name = "mail-eur.outbound.protection.outlook.com";
        assert!(matches!(
            s.greylist_check(&query, 10).0,
            GreyAnswer::Pass(_)
        ));
        let s = state(|p| p.greylist.only_suspicious = true);
        // Unknown client: suspicious, greylisted.
        assert!(matches!(
            s.greylist_check(&q("192.0.2.1", "a@b"), 10).0,
            GreyAnswer::Defer { .. }
        ));
    }
}
