//! Counters of one prefix at one level: which members (addresses, or the narrowest prefixes
//! inside a wider one) were bad and when last, and which delivered and when last — what the
//! changing-addresses rule weighs.
//!
//! Every verdict marks its member in its prefix, so a side is a small sorted array of integer
//! keys (where ordered maps of `IpAddr` were a tenth of the ingest profile, and a tree node for
//! an IPv6 /64 seen once) trimmed to its newest members in batches. Snapshots hold the
//! address → time maps they always held.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most members weighed per side (the newest); a full good side can only protect.
pub const MEMBER_CAP: usize = 64;
/// Members a side holds before it is trimmed back to its newest [`MEMBER_CAP`]: trimming in
/// batches rather than with a scan for the oldest on every insert once full.
const MEMBER_HOLD: usize = 2 * MEMBER_CAP;

/// Counters of one prefix at one level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixStats {
    /// Member → time (s) of its last bad connection. Capped; the oldest go first.
    bad: Members,
    /// Member → time (s) of its last delivery (or allowlisted name). Capped likewise.
    good: Members,
    /// MX hosts (bits of the state's host table) that reported a member.
    pub hosts: u64,
}

/// One side of a prefix: member → cluster second of its last mark, sorted by member. A member is
/// kept as its address as an integer, high and low halves (a prefix's members are all of its
/// family, recorded beside them), in one small array: a lookup is a binary search over a few
/// cache lines, and a prefix seen once costs one 24-byte element, not a tree node.
#[derive(Debug, Clone, Default)]
struct Members {
    /// The members are IPv6 addresses (or prefixes).
    v6: bool,
    times: Vec<(Key, u32)>,
}

/// A member's address as an integer, high half first (so the order is the integer's).
type Key = [u64; 2];

/// The same members, whatever family a side emptied by a sweep last held.
impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        self.times == other.times
    }
}

impl Eq for Members {}

fn key(a: IpAddr) -> Key {
    let x = match a {
        IpAddr::V4(x) => u32::from(x) as u128,
        IpAddr::V6(x) => u128::from(x),
    };
    [(x >> 64) as u64, x as u64]
}

fn address(k: Key, v6: bool) -> IpAddr {
    let x = ((k[0] as u128) << 64) | k[1] as u128;
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Integer order within one family is address order: the bytes of the address map.
        s.collect_map(self.times.iter().map(|(k, t)| (address(*k, self.v6), *t)))
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let by_address = BTreeMap::<IpAddr, u32>::deserialize(d)?;
        let v6 = by_address.keys().next().is_some_and(IpAddr::is_ipv6);
        let mut times: Vec<(Key, u32)> = by_address.into_iter().map(|(a, t)| (key(a), t)).collect();
        // Sorted already unless the families were mixed (no state writes that).
        times.sort_unstable();
        times.dedup_by_key(|(k, _)| *k);
        Ok(Members { v6, times })
    }
}

impl Members {
    fn time_of(&self, k: &Key) -> Option<u32> {
        let i = self.times.binary_search_by(|(m, _)| m.cmp(k)).ok()?;
        Some(self.times[i].1)
    }

    /// Records `member` at `t` (its latest time kept). A side full at the hold is first cut
    /// back to its newest [`MEMBER_CAP`]: what it drops could not be among the newest after.
    fn mark(&mut self, member: IpAddr, t: u32) {
        self.v6 = member.is_ipv6();
        let k = key(member);
        match self.times.binary_search_by(|(m, _)| m.cmp(&k)) {
            Ok(i) => self.times[i].1 = self.times[i].1.max(t),
            Err(mut i) => {
                if self.times.len() >= MEMBER_HOLD {
                    let from = self.newest_from();
                    self.times.retain(|(m, t)| (*t, *m) >= from);
                    // The trim moved the members: search the place again, only then.
                    i = self.times.partition_point(|(m, _)| *m < k);
                } else if self.times.capacity() == 0 {
                    // A prefix seen once holds one element, not the four a first push makes.
                    self.times.reserve_exact(1);
                }
                self.times.insert(i, (k, t));
            }
        }
    }

    /// Forgets members last marked outside `keep`; gives room back once most are gone.
    fn sweep(&mut self, keep: impl Fn(u32) -> bool) {
        self.times.retain(|(_, t)| keep(*t));
        if self.times.capacity() > 2 * self.times.len() + 4 {
            self.times.shrink_to_fit();
        }
    }

    /// The oldest (time, member) among the newest [`MEMBER_CAP`]: members at or after it are
    /// weighed. Among equal times the higher addresses are the newer.
    fn newest_from(&self) -> (u32, Key) {
        if self.times.len() <= MEMBER_CAP {
            return (0, [0, 0]);
        }
        let mut all: Vec<(u32, Key)> = self.times.iter().map(|(m, t)| (*t, *m)).collect();
        let k = all.len() - MEMBER_CAP;
        *all.select_nth_unstable(k).1
    }
}

impl PrefixStats {
    /// (bad-only members in the window, members that delivered within the good memory), among
    /// the newest [`MEMBER_CAP`] of each side.
    pub fn weigh(&self, now: u32, window: u32, memory: u32) -> (u32, u32) {
        let (bad_from, good_from) = (self.bad.newest_from(), self.good.newest_from());
        let good = |m: Key, t: u32| (t, m) >= good_from && t + memory > now;
        let b = self
            .bad
            .times
            .iter()
            .filter(|(m, t)| (*t, *m) >= bad_from && *t + window > now)
            .filter(|(m, _)| !self.good.time_of(m).is_some_and(|t| good(*m, t)))
            .count() as u32;
        let g = self.good.times.iter().filter(|(m, t)| good(*m, *t)).count() as u32;
        (b, g)
    }

    /// Records a bad connection of `member` at `t`.
    pub fn mark_bad(&mut self, member: IpAddr, t: u32) {
        self.bad.mark(member, t);
    }

    /// Records a delivery of `member` at `t`.
    pub fn mark_good(&mut self, member: IpAddr, t: u32) {
        self.good.mark(member, t);
    }

    /// Forgets what no window holds any more; true when nothing is left.
    pub fn sweep(&mut self, now: u32, window: u32, memory: u32) -> bool {
        self.bad.sweep(|t| t + window > now);
        self.good.sweep(|t| t + memory > now);
        self.bad.times.is_empty() && self.good.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::{PrefixStats, MEMBER_CAP};
    use std::collections::BTreeMap;
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
        assert!(ps.bad.times.len() <= 2 * MEMBER_CAP, "{:?}", ps.bad);
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

    #[test]
    fn snapshots_hold_the_address_maps_they_always_held() {
        #[derive(serde::Serialize)]
        struct Before {
            bad: BTreeMap<IpAddr, u32>,
            good: BTreeMap<IpAddr, u32>,
            hosts: u64,
        }
        for members in [
            vec!["192.0.2.9", "192.0.2.1", "192.0.2.200"],
            vec!["2001:db8::9", "2001:db8:ffff::1", "2001:db8::1"],
        ] {
            let mut ps = PrefixStats {
                hosts: 3,
                ..Default::default()
            };
            let mut before = Before {
                bad: BTreeMap::new(),
                good: BTreeMap::new(),
                hosts: 3,
            };
            for (i, m) in members.iter().enumerate() {
                let a: IpAddr = m.parse().unwrap();
                ps.mark_bad(a, 100 + i as u32);
                before.bad.insert(a, 100 + i as u32);
            }
            ps.mark_good(members[0].parse().unwrap(), 7);
            before.good.insert(members[0].parse().unwrap(), 7);
            let bytes = postcard::to_allocvec(&ps).unwrap();
            assert_eq!(bytes, postcard::to_allocvec(&before).unwrap());
            let back: PrefixStats = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, ps);
            assert_eq!(postcard::to_allocvec(&back).unwrap(), bytes);
        }
    }
}
