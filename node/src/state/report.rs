//! What the cluster knows about one address, for `mxrepctl ip show`: its counters, its prefix's
//! counters, what covers it (bans, allowlist, suppression), in a form the API renders.

use super::counters::prefix_of;
use super::{covering, Ban, ReputationState};
use ipnet::IpNet;
use std::net::IpAddr;

/// One counter as shown to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterReport {
    pub name: String,
    pub count: u64,
    pub window_secs: u64,
    pub limit: u64,
}

/// Everything about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressReport {
    pub address: IpAddr,
    pub counters: Vec<CounterReport>,
    pub mx_hosts: Vec<String>,
    pub prefix: IpNet,
    pub prefix_counters: Vec<CounterReport>,
    pub prefix_mx_hosts: Vec<String>,
    pub bans: Vec<Ban>,
    pub observed: Vec<Ban>,
    pub allowlisted: bool,
    pub suppressed_until_ms: Option<i64>,
    pub offences: u32,
}

impl ReputationState {
    /// Builds the report for `addr` at the cluster's current time.
    pub fn report(&self, addr: IpAddr) -> AddressReport {
        let now = (self.clock_ms.max(0) / 1000) as u32;
        let p = &self.policy;
        let c = |name: &str, count: u32, w: u32, limit: u32| CounterReport {
            name: name.into(),
            count: count as u64,
            window_secs: w as u64,
            limit: limit as u64,
        };
        let (counters, mx_hosts) = match self.addrs.get(addr) {
            Some(st) => (
                vec![
                    c(
                        "new connections",
                        st.connects.sum(now, p.connection_rate.window_secs),
                        p.connection_rate.window_secs,
                        p.connection_rate.max_connections,
                    ),
                    c(
                        "accepted messages",
                        st.accepted.sum(now, p.message_rate.window_secs),
                        p.message_rate.window_secs,
                        p.message_rate.max_messages,
                    ),
                    c(
                        "rejected recipients",
                        st.rejects.sum(now, p.rejects.window_secs),
                        p.rejects.window_secs,
                        p.rejects.max_rejects,
                    ),
                    c(
                        "SASL authentication failures",
                        st.auth_failures.sum(now, p.rejects.window_secs),
                        p.rejects.window_secs,
                        p.rejects.max_auth_failures,
                    ),
                ],
                self.host_names(st.hosts),
            ),
            None => (vec![], vec![]),
        };
        let ca = &p.changing_addresses;
        let prefix = prefix_of(addr, ca.ipv4_prefix_len, ca.ipv6_prefix_len);
        let (prefix_counters, prefix_mx_hosts) = match self.prefixes.get(&prefix) {
            Some(ps) => (
                vec![c(
                    "distinct addresses with bad signals",
                    ps.distinct_bad(now, ca.window_secs),
                    ca.window_secs,
                    ca.distinct_addresses,
                )],
                self.host_names(ps.hosts),
            ),
            None => (vec![], vec![]),
        };
        let key = IpNet::from(addr);
        AddressReport {
            address: addr,
            counters,
            mx_hosts,
            prefix,
            prefix_counters,
            prefix_mx_hosts,
            bans: covering(&self.bans, addr).into_iter().cloned().collect(),
            observed: covering(&self.observed, addr)
                .into_iter()
                .cloned()
                .collect(),
            allowlisted: self.is_allowed(&key),
            suppressed_until_ms: [key, prefix]
                .iter()
                .filter_map(|k| self.suppressed.get(k).copied())
                .max(),
            offences: self.offences.get(&key).map(|o| o.count).unwrap_or(0),
        }
    }
}
