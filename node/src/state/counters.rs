//! What the state machine counts: per address and per prefix, in sliding windows.
//!
//! Addresses are kept in two ordered maps keyed by the address as an integer (IPv4 in 4 bytes,
//! IPv6 in 16), so a tracked address costs its counters and little else. Counters that fall out
//! of every window are evicted, so memory follows the active set, not history.

use super::window::Window;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Counters of one address, cluster-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrStats {
    pub connects: Window,
    pub accepted: Window,
    pub rejects: Window,
    pub auth_failures: Window,
    /// MX hosts (by index in the state's host table, 63 = "any other") that reported it.
    pub hosts: u64,
}

/// Counters of one prefix: which of its addresses showed bad signals, and when last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixStats {
    /// Address → time (s) of its last bad signal. Capped; the oldest go first.
    pub bad: BTreeMap<IpAddr, u32>,
    pub hosts: u64,
}

impl PrefixStats {
    /// Distinct addresses with a bad signal in the window ending at `now`.
    pub fn distinct_bad(&self, now: u32, window: u32) -> u32 {
        self.bad.values().filter(|t| **t + window > now).count() as u32
    }

    /// Records a bad signal from `addr` at `t`, keeping at most `cap` addresses.
    pub fn mark_bad(&mut self, addr: IpAddr, t: u32, cap: usize) {
        let e = self.bad.entry(addr).or_insert(t);
        *e = (*e).max(t);
        while self.bad.len() > cap {
            let oldest = self
                .bad
                .iter()
                .min_by_key(|(a, t)| (**t, **a))
                .map(|(a, _)| *a);
            match oldest {
                Some(a) => self.bad.remove(&a),
                None => break,
            };
        }
    }
}

/// Address → counters, split by family to keep keys small.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrTable {
    v4: BTreeMap<u32, AddrStats>,
    v6: BTreeMap<u128, AddrStats>,
}

impl AddrTable {
    pub fn get(&self, a: IpAddr) -> Option<&AddrStats> {
        match a {
            IpAddr::V4(x) => self.v4.get(&u32::from(x)),
            IpAddr::V6(x) => self.v6.get(&u128::from(x)),
        }
    }

    pub fn entry(&mut self, a: IpAddr) -> &mut AddrStats {
        match a {
            IpAddr::V4(x) => self.v4.entry(u32::from(x)).or_default(),
            IpAddr::V6(x) => self.v6.entry(u128::from(x)).or_default(),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
    }

    /// Keeps the addresses for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&AddrStats) -> bool) {
        self.v4.retain(|_, s| keep(s));
        self.v6.retain(|_, s| keep(s));
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &AddrStats)> {
        self.v4
            .iter()
            .map(|(k, v)| (IpAddr::V4(Ipv4Addr::from(*k)), v))
            .chain(
                self.v6
                    .iter()
                    .map(|(k, v)| (IpAddr::V6(Ipv6Addr::from(*k)), v)),
            )
    }
}

/// The prefix of `addr` at the policy's lengths.
pub fn prefix_of(addr: IpAddr, v4_len: u8, v6_len: u8) -> IpNet {
    let len = match addr {
        IpAddr::V4(_) => v4_len,
        IpAddr::V6(_) => v6_len,
    };
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
}
