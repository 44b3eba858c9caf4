//! DNS list verdicts, as replicated data: each address is looked up once per TTL for the whole
//! cluster (by the node that first ingests it, `crate::dns`) and the raw answers enter the log;
//! here they are scored with the replicated policy — so every node scores alike — and a score at
//! or above the threshold becomes a ban of the address for at most the listing's TTL, with the
//! lists named in its evidence. A negative score (DNSWL) is good evidence: the address is not
//! greylisted and counts as delivering in its prefixes. A lookup also carries the address's
//! forward-confirmed reverse DNS name (when the policy asks for it): a name under
//! `safety.allow_client_names` allowlists the address as Postfix's verified `client_name` does,
//! and a verified name makes a client less suspicious to greylisting.
//!
//! A list that fails its RFC 5782 probe, or answers a list error, scores nothing: a broken or
//! wildcarded list must never cause a wave of bans.
//!
//! - this file: the cache, list health, scoring;
//! - [`site`]: postscreen's `domain=filter*weight` syntax.

pub mod site;

use super::observe::name_allowed;
use super::policy::ListingAction;
use super::rules::Decision;
use super::{BanAction, BanChange, Evidence, ReputationState};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use site::{Code, Site};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// What one list answered for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub zone: String,
    /// The A records returned (empty: not listed).
    pub codes: Vec<Ipv4Addr>,
    /// The TXT record, if the list gave one.
    pub text: String,
}

/// The answers of every list for one address, and how long they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub addr: IpAddr,
    pub answers: Vec<Answer>,
    pub ttl_secs: u32,
    /// Its forward-confirmed reverse DNS name, when looked up and confirmed.
    pub verified_name: Option<String>,
}

/// A list's RFC 5782 probe result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHealth {
    pub zone: String,
    pub healthy: bool,
    /// Why it fails (empty when healthy).
    pub reason: String,
}

/// The scored verdict of one address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsEntry {
    pub score: i32,
    /// The lists that listed it, with their text.
    pub listed_by: Vec<(String, String)>,
    /// Cluster second until which it holds.
    pub until: u32,
    /// Forward-confirmed reverse DNS name (empty: none, or not looked up).
    pub name: String,
}

/// Every address's verdict and every failing list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsblState {
    pub entries: BTreeMap<IpAddr, DnsEntry>,
    /// Lists out of scoring, and why.
    pub failing: BTreeMap<String, String>,
    /// Answers that were list errors (127.255.255.x, outside 127/8), ignored.
    pub list_errors: u64,
}

impl DnsblState {
    /// Is `addr`'s verdict fresh at `now`?
    pub fn fresh(&self, addr: IpAddr, now: u32) -> bool {
        self.entries.get(&addr).is_some_and(|e| e.until > now)
    }

    /// `addr`'s forward-confirmed name, if a fresh lookup confirmed one.
    pub fn verified_name(&self, addr: IpAddr, now: u32) -> Option<&str> {
        self.entries
            .get(&addr)
            .filter(|e| e.until > now && !e.name.is_empty())
            .map(|e| e.name.as_str())
    }

    /// Is `addr` on an allowlist (a negative score) at `now`?
    pub fn allowlisted(&self, addr: IpAddr, now: u32) -> bool {
        self.entries
            .get(&addr)
            .is_some_and(|e| e.until > now && e.score < 0)
    }
}

impl ReputationState {
    /// Applies looked-up answers; returns the bans they decided.
    pub(super) fn apply_dnsbl(&mut self, index: u64, lookups: &[Lookup]) -> Vec<BanChange> {
        let now = self.now_secs();
        let p = self.policy.dnsbl.clone();
        let sites: Vec<Site> = p.sites.iter().filter_map(|s| Site::parse(s).ok()).collect();
        let mut out = vec![];
        for l in lookups {
            let mut entry = DnsEntry {
                until: now.saturating_add(l.ttl_secs.clamp(60, p.max_cache_secs.max(60))),
                name: l.verified_name.clone().unwrap_or_default(),
                ..Default::default()
            };
            if name_allowed(&self.policy.safety.allow_client_names, &entry.name) {
                self.named.insert(l.addr);
            }
            for a in &l.answers {
                let Some(site) = sites.iter().find(|s| s.zone == a.zone) else {
                    continue;
                };
                if self.dnsbl.failing.contains_key(&a.zone) {
                    continue;
                }
                let codes: Vec<Code> = a.codes.iter().map(|c| site.classify(*c)).collect();
                if codes.contains(&Code::ListError) {
                    self.dnsbl.list_errors += 1;
                    continue;
                }
                if codes.contains(&Code::Listed) {
                    self.activity.dnsbl_hit(self.clock_ms, &a.zone);
                    entry.score += site.weight;
                    entry.listed_by.push((a.zone.clone(), a.text.clone()));
                }
            }
            let (score, ttl) = (entry.score, l.ttl_secs);
            let listed: Vec<String> = entry
                .listed_by
                .iter()
                .filter(|_| score > 0)
                .map(|(z, _)| z.clone())
                .collect();
            let text = entry
                .listed_by
                .iter()
                .map(|(_, t)| t.as_str())
                .find(|t| !t.is_empty())
                .unwrap_or("")
                .to_string();
            self.dnsbl.entries.insert(l.addr, entry);
            if p.threshold > 0 && score >= p.threshold && !listed.is_empty() {
                let d = Decision {
                    key: IpNet::from(l.addr),
                    reason: format!(
                        "Service unavailable; client [{}] blocked using {}{}",
                        l.addr,
                        listed.join(", "),
                        if text.is_empty() {
                            String::new()
                        } else {
                            format!(": {text}")
                        }
                    ),
                    base_secs: (ttl as u64).clamp(60, p.max_ban_secs.max(60)),
                    evidence: vec![Evidence {
                        rule: "dnsbl".into(),
                        counter: format!("DNSBL score (threshold {})", p.threshold),
                        count: score as u64,
                        window_secs: ttl as u64,
                        mx_hosts: listed,
                    }],
                    action: match p.action {
                        ListingAction::Reject => BanAction::Reject,
                        ListingAction::Drop => BanAction::Drop,
                    },
                };
                out.extend(self.decide(index, d));
            }
        }
        out
    }

    /// Takes failing lists out of scoring, and healed ones back in.
    pub(super) fn apply_list_health(&mut self, health: &[ListHealth]) {
        for h in health {
            if h.healthy {
                self.dnsbl.failing.remove(&h.zone);
            } else {
                self.dnsbl.failing.insert(h.zone.clone(), h.reason.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Policy, Request};

    fn state() -> ReputationState {
        let mut p = Policy::default();
        p.dnsbl.sites = vec![
            "zen.example=127.0.0.[2..11]*3".into(),
            "bl.example*2".into(),
            "wl.example=127.0.[0..255].[2..3]*-2".into(),
        ];
        p.dnsbl.threshold = 3;
        let mut s = ReputationState::default();
        s.apply(
            1,
            &Request {
                now_ms: 1_800_000_000_000,
                command: Command::SetPolicy(Box::new(p)),
            },
        );
        s
    }

    fn lookup(addr: &str, answers: &[(&str, &str)]) -> Lookup {
        Lookup {
            addr: addr.parse().unwrap(),
            answers: answers
                .iter()
                .map(|(z, c)| Answer {
                    zone: z.to_string(),
                    codes: vec![c.parse().unwrap()],
                    text: format!("see {z}"),
                })
                .collect(),
            ttl_secs: 900,
            verified_name: None,
        }
    }

    fn run(s: &mut ReputationState, l: Lookup) -> usize {
        s.apply(
            2,
            &Request {
                now_ms: 1_800_000_001_000,
                command: Command::Dnsbl(vec![l]),
            },
        )
        .changes
        .len()
    }

    #[test]
    fn scores_ban_at_the_threshold_for_the_ttl() {
        let mut s = state();
        assert_eq!(
            run(&mut s, lookup("192.0.2.1", &[("bl.example", "127.0.0.2")])),
            0,
            "2 < 3"
        );
        assert_eq!(
            run(&mut s, lookup("192.0.2.2", &[("zen.example", "127.0.0.4")])),
            1
        );
        let b = &s.bans[&"192.0.2.2/32".parse().unwrap()];
        assert!(
            b.reason
                .starts_with("Service unavailable; client [192.0.2.2] blocked using zen.example"),
            "{}",
            b.reason
        );
        assert_eq!(b.expires_ms - b.created_ms, 900_000);
        assert_eq!(b.evidence[0].rule, "dnsbl");
        // zen's PBL range is not selected by the filter.
        assert_eq!(
            run(
                &mut s,
                lookup("192.0.2.3", &[("zen.example", "127.0.0.12")])
            ),
            0
        );
    }

    #[test]
    fn list_errors_and_failing_lists_never_ban() {
        let mut s = state();
        assert_eq!(
            run(
                &mut s,
                lookup("192.0.2.4", &[("zen.example", "127.255.255.254")])
            ),
            0
        );
        assert_eq!(s.dnsbl.list_errors, 1);
        s.apply(
            3,
            &Request {
                now_ms: 1_800_000_002_000,
                command: Command::ListHealth(vec![ListHealth {
                    zone: "zen.example".into(),
                    healthy: false,
                    reason: "127.0.0.1 listed (wildcard)".into(),
                }]),
            },
        );
        assert_eq!(
            run(&mut s, lookup("192.0.2.5", &[("zen.example", "127.0.0.2")])),
            0
        );
        assert!(s.dnsbl.failing.contains_key("zen.example"));
    }

    #[test]
    fn an_allowlist_listing_is_good_evidence() {
        let mut s = state();
        run(
            &mut s,
            lookup("198.51.100.7", &[("wl.example", "127.0.15.3")]),
        );
        assert!(s
            .dnsbl
            .allowlisted("198.51.100.7".parse().unwrap(), s.now_secs()));
        // Listed on both sides: the weights add up (-2 + 3 = 1 < 3), neither ban nor allowlist.
        let both = [("wl.example", "127.0.15.3"), ("zen.example", "127.0.0.2")];
        run(&mut s, lookup("198.51.100.8", &both));
        assert!(s.bans.is_empty());
        assert!(!s
            .dnsbl
            .allowlisted("198.51.100.8".parse().unwrap(), s.now_secs()));
    }
}
