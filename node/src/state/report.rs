//! What the cluster knows about one address, for `mxrepctl ip show`: its verdict counters, its
//! prefixes' weighing at every level, how far each rule is from a ban, and what covers it
//! (bans, allowlists, suppression), in a form the API renders.

use super::counters::{truncate, CounterName, AUTH_FAILURES, BAD, NEUTRAL, REJECTS};
use super::dnsbl::DnsEntry;
use super::greylist::GreyClient;
use super::lifecycle::covering;
use super::rules;
use super::{Ban, ReputationState};
use ipnet::IpNet;
use std::net::IpAddr;

/// One counter as shown to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterReport {
    pub name: String,
    pub count: u64,
    pub window_secs: u64,
    /// 0: shown for information, no rule bans on it alone.
    pub limit: u64,
}

/// How far one rule is from a ban of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDistance {
    pub rule: String,
    pub key: IpNet,
    pub text: String,
    pub would_ban: bool,
}

impl From<rules::Assessment> for RuleDistance {
    fn from(a: rules::Assessment) -> Self {
        Self {
            rule: a.rule.into(),
            key: a.key,
            text: a.text,
            would_ban: a.decision.is_some(),
        }
    }
}

/// Everything about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressReport {
    pub address: IpAddr,
    pub counters: Vec<CounterReport>,
    pub mx_hosts: Vec<String>,
    /// The narrowest prefix counted.
    pub prefix: IpNet,
    pub prefix_counters: Vec<CounterReport>,
    pub prefix_mx_hosts: Vec<String>,
    pub distances: Vec<RuleDistance>,
    pub bans: Vec<Ban>,
    pub observed: Vec<Ban>,
    pub allowlisted: bool,
    pub suppressed_until_ms: Option<i64>,
    pub offences: u32,
    /// The greylisting of its client network, if it was ever greylisted.
    pub greylist: Option<(IpNet, GreyClient)>,
    /// Its DNS verdict (list score, listings, verified name), if it was looked up.
    pub dns: Option<DnsEntry>,
}

impl ReputationState {
    /// The report for a prefix: its counters if it is a counted level, how far the prefix rule
    /// is from banning it, and the bans covering it or inside it.
    pub fn prefix_report(&self, net: IpNet) -> AddressReport {
        let now = self.now_secs();
        let ca = &self.policy.changing_addresses;
        let (prefix_counters, prefix_mx_hosts) = match self.prefixes.get(&net) {
            Some(ps) => {
                let (b, g) = ps.weigh(now, ca.window_secs, ca.good_memory_secs);
                let c = |name: CounterName, count: u32, w: u32, limit: u32| CounterReport {
                    name: name.as_str().into(),
                    count: count as u64,
                    window_secs: w as u64,
                    limit: limit as u64,
                };
                (
                    vec![
                        c(
                            CounterName::BadOnlyMembers,
                            b,
                            ca.window_secs,
                            ca.distinct_addresses,
                        ),
                        c(CounterName::DeliveringMembers, g, ca.good_memory_secs, 0),
                    ],
                    self.host_names(ps.hosts),
                )
            }
            None => (vec![], vec![]),
        };
        let distances = rules::prefix::assess(self, net, now)
            .into_iter()
            .map(RuleDistance::from)
            .collect();
        let related = |b: &&Ban| b.prefix.contains(&net) || net.contains(&b.prefix);
        let mut bans: Vec<Ban> = self.bans.values().filter(related).cloned().collect();
        bans.sort_by_key(|b| b.prefix.prefix_len());
        AddressReport {
            address: net.addr(),
            counters: vec![],
            mx_hosts: vec![],
            prefix: net,
            prefix_counters,
            prefix_mx_hosts,
            distances,
            bans,
            observed: self.observed.values().filter(related).cloned().collect(),
            allowlisted: self.is_allowed(&net),
            suppressed_until_ms: self.suppressed.get(&net).copied(),
            offences: self.offences.get(&net).map(|o| o.count).unwrap_or(0),
            greylist: None,
            dns: None,
        }
    }

    /// Builds the report for `addr` at the cluster's current time.
    pub fn report(&self, addr: IpAddr) -> AddressReport {
        let now = self.now_secs();
        let p = &self.policy;
        let ca = &p.changing_addresses;
        let c = |name: CounterName, count: u32, w: u32, limit: u32| CounterReport {
            name: name.as_str().into(),
            count: count as u64,
            window_secs: w as u64,
            limit: limit as u64,
        };
        let (cw, rw, mw, gm) = (
            p.connection_rate.window_secs,
            p.rejects.window_secs,
            p.message_rate.window_secs,
            ca.good_memory_secs,
        );
        let (counters, mx_hosts) = match self.addrs.get(addr) {
            Some(st) => (
                vec![
                    c(
                        CounterName::BadConnections,
                        st.connections.sum_of(BAD, now, cw),
                        cw,
                        p.connection_rate.max_connections,
                    ),
                    c(
                        CounterName::NeutralConnections,
                        st.connections.sum_of(NEUTRAL, now, cw),
                        rw,
                        0,
                    ),
                    c(
                        CounterName::Messages,
                        st.messages.sum(now, mw),
                        mw,
                        p.message_rate.max_messages,
                    ),
                    c(CounterName::DeliveredRecently, st.good.sum(now, gm), gm, 0),
                    c(
                        CounterName::RejectedRecipients,
                        st.refusals.sum_of(REJECTS, now, rw),
                        rw,
                        p.rejects.max_rejects,
                    ),
                    c(
                        CounterName::AuthFailures,
                        st.refusals.sum_of(AUTH_FAILURES, now, rw),
                        rw,
                        p.rejects.max_auth_failures,
                    ),
                ],
                self.host_names(st.hosts),
            ),
            None => (vec![], vec![]),
        };
        let v6 = addr.is_ipv6();
        let prefix = truncate(addr, ca.levels(v6).next().unwrap_or(24));
        let (prefix_counters, prefix_mx_hosts) = match self.prefixes.get(&prefix) {
            Some(ps) => {
                let (b, g) = ps.weigh(now, ca.window_secs, gm);
                (
                    vec![
                        c(
                            CounterName::BadOnlyMembers,
                            b,
                            ca.window_secs,
                            ca.distinct_addresses,
                        ),
                        c(CounterName::DeliveringMembers, g, gm, 0),
                    ],
                    self.host_names(ps.hosts),
                )
            }
            None => (vec![], vec![]),
        };
        let mut assessments = rules::address::assess(self, addr, now);
        assessments.extend(
            ca.levels(v6)
                .filter_map(|len| rules::prefix::assess(self, truncate(addr, len), now)),
        );
        let distances = assessments.into_iter().map(RuleDistance::from).collect();
        let key = IpNet::from(addr);
        AddressReport {
            address: addr,
            counters,
            mx_hosts,
            prefix,
            prefix_counters,
            prefix_mx_hosts,
            distances,
            bans: self.bans_covering(addr).into_iter().cloned().collect(),
            observed: covering(&self.observed, addr)
                .into_iter()
                .cloned()
                .collect(),
            allowlisted: self.is_allowed(&key) || self.is_name_allowed(addr),
            suppressed_until_ms: [key, prefix]
                .iter()
                .filter_map(|k| self.suppressed.get(k).copied())
                .max(),
            offences: self.offences.get(&key).map(|o| o.count).unwrap_or(0),
            greylist: {
                let g = &self.policy.greylist;
                let len = if v6 {
                    g.ipv6_prefix_len
                } else {
                    g.ipv4_prefix_len
                };
                let net = truncate(addr, len);
                self.greylist.clients.get(&net).map(|c| (net, c.clone()))
            },
            dns: self.dnsbl.entries.get(&addr).cloned(),
        }
    }
}
