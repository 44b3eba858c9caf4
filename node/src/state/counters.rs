//! What the state machine counts: per address and per prefix, in sliding windows.
//!
//! Addresses are kept in two ordered maps keyed by the address as an integer (IPv4 in 4 bytes,
//! IPv6 in 16), so a tracked address costs its counters and little else. Counters that fall out
//! of every window are evicted, so memory follows the active set, not history.

use super::window::{PairWindow, Window};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What is counted, by name: the names evidence and `ip show` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterName {
    BadConnections,
    NeutralConnections,
    RejectedRecipients,
    AuthFailures,
    Messages,
    DeliveredRecently,
    BadOnlyMembers,
    DeliveringMembers,
}

impl CounterName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadConnections => "bad connections (not mail)",
            Self::NeutralConnections => "neutral connections (temporary refusals only)",
            Self::RejectedRecipients => "rejected recipients (nothing delivered)",
            Self::AuthFailures => "SASL authentication failures",
            Self::Messages => "accepted messages",
            Self::DeliveredRecently => "messages delivered (good memory)",
            Self::BadOnlyMembers => "bad-only addresses",
            Self::DeliveringMembers => "delivering addresses",
        }
    }
}

/// Counters of one address, cluster-wide. Kept small: a busy cluster tracks millions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrStats {
    /// Connections in the connection-rate window: bad ones (lane [`BAD`]) and neutral ones
    /// (lane [`NEUTRAL`], shown, not judged).
    pub connections: PairWindow,
    /// In the rejects window: permanently rejected recipients of connections that delivered
    /// nothing (lane [`REJECTS`]) and SASL failures (lane [`AUTH_FAILURES`]).
    pub refusals: PairWindow,
    /// Accepted messages, in the message-rate window.
    pub messages: Window,
    /// Accepted messages over the good memory (24 h by default): the address's credit.
    pub good: Window,
    /// MX hosts (by index in the state's host table, 63 = "any other") that reported it.
    pub hosts: u64,
}

/// Lanes of [`AddrStats::connections`].
pub const BAD: usize = 0;
pub const NEUTRAL: usize = 1;
/// Lanes of [`AddrStats::refusals`].
pub const REJECTS: usize = 0;
pub const AUTH_FAILURES: usize = 1;

/// The connection-rate rule's temporary refusal of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    /// Cluster second it was refused.
    pub at: u32,
    /// Bad connections counted since.
    pub bad_since: u32,
}

/// Counters of one prefix at one level: which members (addresses, or the narrowest prefixes
/// inside a wider one) were bad and when last, and which delivered and when last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixStats {
    /// Member → time (s) of its last bad connection. Capped; the oldest go first.
    pub bad: BTreeMap<IpAddr, u32>,
    /// Member → time (s) of its last delivery (or allowlisted name). Capped likewise.
    pub good: BTreeMap<IpAddr, u32>,
    pub hosts: u64,
}

/// Most members weighed per side (the newest); a full good side can only protect.
pub const MEMBER_CAP: usize = 64;
/// Members a side holds before it is trimmed back to its newest [`MEMBER_CAP`]: trimming in
/// batches rather than with a scan for the oldest on every insert once full.
const MEMBER_HOLD: usize = 2 * MEMBER_CAP;

impl PrefixStats {
    /// (bad-only members in the window, members that delivered within the good memory), among
    /// the newest [`MEMBER_CAP`] of each side.
    pub fn weigh(&self, now: u32, window: u32, memory: u32) -> (u32, u32) {
        let (bad_from, good_from) = (newest_from(&self.bad), newest_from(&self.good));
        let good = |m: &IpAddr, t: u32| (t, *m) >= good_from && t + memory > now;
        let b = self
            .bad
            .iter()
            .filter(|(m, t)| (**t, **m) >= bad_from && **t + window > now)
            .filter(|(m, _)| !self.good.get(m).is_some_and(|t| good(m, *t)))
            .count() as u32;
        let g = self.good.iter().filter(|(m, t)| good(m, **t)).count() as u32;
        (b, g)
    }

    /// Records a bad connection of `member` at `t`.
    pub fn mark_bad(&mut self, member: IpAddr, t: u32) {
        mark(&mut self.bad, member, t);
    }

    /// Records a delivery of `member` at `t`.
    pub fn mark_good(&mut self, member: IpAddr, t: u32) {
        mark(&mut self.good, member, t);
    }

    /// Forgets what no window holds any more; true when nothing is left.
    pub fn sweep(&mut self, now: u32, window: u32, memory: u32) -> bool {
        self.bad.retain(|_, t| *t + window > now);
        self.good.retain(|_, t| *t + memory > now);
        self.bad.is_empty() && self.good.is_empty()
    }
}

/// The oldest (time, member) among a side's newest [`MEMBER_CAP`]: members at or after it are
/// weighed. Among equal times the higher addresses are the newer.
fn newest_from(side: &BTreeMap<IpAddr, u32>) -> (u32, IpAddr) {
    let lowest = (0, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if side.len() <= MEMBER_CAP {
        return lowest;
    }
    let mut all: Vec<(u32, IpAddr)> = side.iter().map(|(m, t)| (*t, *m)).collect();
    let k = all.len() - MEMBER_CAP;
    *all.select_nth_unstable(k).1
}

fn mark(side: &mut BTreeMap<IpAddr, u32>, member: IpAddr, t: u32) {
    let e = side.entry(member).or_insert(t);
    *e = (*e).max(t);
    if side.len() > MEMBER_HOLD {
        let from = newest_from(side);
        side.retain(|m, t| (*t, *m) >= from);
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
    pub fn retain(&mut self, mut keep: impl FnMut(IpAddr, &AddrStats) -> bool) {
        self.v4
            .retain(|k, s| keep(IpAddr::V4(Ipv4Addr::from(*k)), s));
        self.v6
            .retain(|k, s| keep(IpAddr::V6(Ipv6Addr::from(*k)), s));
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

/// `addr`'s member key in its prefix of length `len`: the address itself at the narrowest
/// level (`first`), else the narrowest prefix holding it.
pub fn member_of(addr: IpAddr, len: u8, first: u8) -> IpAddr {
    if len >= first {
        addr
    } else {
        truncate(addr, first).addr()
    }
}

/// The prefix of `addr` of length `len`.
pub fn truncate(addr: IpAddr, len: u8) -> IpNet {
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
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

#[cfg(test)]
mod tests {
    use super::{PrefixStats, MEMBER_CAP};
    use std::net::{IpAddr, Ipv4Addr};

    fn member(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i))
    }

    #[test]
    fn only_the_newest_members_are_weighed_and_the_lists_stay_bounded() {
        let mut ps = PrefixStats::default();
        // 200 bad members, member i last bad at second i; the newest delivered as well.
        for i in 0..200 {
            ps.mark_bad(member(i), 1_000 + i);
        }
        assert!(ps.bad.len() <= 2 * MEMBER_CAP, "{}", ps.bad.len());
        let (bad, good) = ps.weigh(1_300, 600, 86_400);
        assert_eq!((bad, good), (MEMBER_CAP as u32, 0));
        // A member outside the newest 64 that delivers does not count; one inside does, and is
        // then no longer bad-only.
        ps.mark_good(member(10), 1_250);
        ps.mark_good(member(199), 1_250);
        assert_eq!(ps.weigh(1_300, 600, 86_400), (MEMBER_CAP as u32 - 1, 2));
        // Equal times: the higher addresses are the newer.
        let mut ties = PrefixStats::default();
        for i in 0..(MEMBER_CAP as u32 + 5) {
            ties.mark_bad(member(i), 1_000);
        }
        ties.mark_good(member(0), 1_000);
        ties.mark_good(member(MEMBER_CAP as u32 + 4), 1_000);
        // Member 0 is not among the newest 64 bad ones; its delivery is among the newest good.
        assert_eq!(ties.weigh(1_000, 600, 86_400), (MEMBER_CAP as u32 - 1, 2));
    }
}
