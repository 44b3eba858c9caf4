//! Address → counters: the largest table of the state (a busy cluster tracks millions), and the
//! one every connection verdict looks up.
//!
//! Hash maps keyed by the address as an integer, one per family, with each address's counters
//! boxed: a lookup costs a hash and one or two cache misses where an ordered map of a million
//! addresses walked five levels (the ingest profile's largest item), and a bucket stays 16 or 24
//! bytes, so the table's doubling growth keeps a tracked address well under 150 bytes.
//!
//! The hashers are seeded at random per process (addresses are chosen by whoever connects, so a
//! fixed hash could be steered into collisions). Nothing the state decides depends on the order
//! of a hash map: the table is only looked up, counted and swept, and it is written to a
//! snapshot in address order, in the same form as the ordered maps it replaced.

use super::counters::AddrStats;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv6 address as a map key: 8-byte aligned, so a bucket with its box is 24 bytes (a `u128`
/// key would make it 32). Written as the `u128` it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "u128", into = "u128")]
struct V6Key([u64; 2]);

impl From<u128> for V6Key {
    fn from(x: u128) -> Self {
        V6Key([(x >> 64) as u64, x as u64])
    }
}

impl From<V6Key> for u128 {
    fn from(k: V6Key) -> Self {
        ((k.0[0] as u128) << 64) | k.0[1] as u128
    }
}

/// Address → counters, split by family to keep keys small.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrTable {
    /// IPv4 addresses as `u32`.
    #[serde(serialize_with = "in_key_order")]
    v4: HashMap<u32, Box<AddrStats>>,
    /// IPv6 addresses.
    #[serde(serialize_with = "in_key_order")]
    v6: HashMap<V6Key, Box<AddrStats>>,
}

/// Writes a map in key order, so every node writes the same snapshot of the same state.
fn in_key_order<K, S>(map: &HashMap<K, Box<AddrStats>>, s: S) -> Result<S::Ok, S::Error>
where
    K: Ord + Hash + Serialize,
    S: Serializer,
{
    let mut entries: Vec<(&K, &Box<AddrStats>)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    s.collect_map(entries)
}

impl AddrTable {
    pub fn get(&self, a: IpAddr) -> Option<&AddrStats> {
        match a {
            IpAddr::V4(x) => self.v4.get(&u32::from(x)),
            IpAddr::V6(x) => self.v6.get(&V6Key::from(u128::from(x))),
        }
        .map(|b| &**b)
    }

    pub fn entry(&mut self, a: IpAddr) -> &mut AddrStats {
        match a {
            IpAddr::V4(x) => self.v4.entry(u32::from(x)).or_default(),
            IpAddr::V6(x) => self.v6.entry(V6Key::from(u128::from(x))).or_default(),
        }
    }

    /// Looks up `addrs` and reads their counters, changing nothing: brings them into the cache
    /// together, before they are counted one by one. Each lookup is independent of the others,
    /// so the processor waits for their misses at once instead of in turn.
    pub fn warm(&self, addrs: impl Iterator<Item = IpAddr>) {
        let seen = addrs.fold(0u64, |acc, a| acc ^ self.get(a).map_or(0, |s| s.hosts));
        std::hint::black_box(seen);
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.v4 = HashMap::new();
        self.v6 = HashMap::new();
    }

    /// Keeps the addresses for which `keep` is true; gives memory back once most are gone.
    pub fn retain(&mut self, mut keep: impl FnMut(IpAddr, &AddrStats) -> bool) {
        self.v4
            .retain(|k, s| keep(IpAddr::V4(Ipv4Addr::from(*k)), s));
        self.v6
            .retain(|k, s| keep(IpAddr::V6(Ipv6Addr::from(u128::from(*k))), s));
        shrink_if_sparse(&mut self.v4);
        shrink_if_sparse(&mut self.v6);
    }

    /// Every address and its counters, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &AddrStats)> {
        self.v4
            .iter()
            .map(|(k, v)| (IpAddr::V4(Ipv4Addr::from(*k)), &**v))
            .chain(
                self.v6
                    .iter()
                    .map(|(k, v)| (IpAddr::V6(Ipv6Addr::from(u128::from(*k))), &**v)),
            )
    }
}

/// A table that holds a quarter of what it has room for shrinks, so that memory follows the
/// active set after a wave is swept.
fn shrink_if_sparse<K: Hash + Eq>(map: &mut HashMap<K, Box<AddrStats>>) {
    if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::AddrTable;
    use std::net::IpAddr;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A table of `addrs` entered in that order, one of them reported by more hosts.
    fn table(addrs: &[&str]) -> AddrTable {
        let mut t = AddrTable::default();
        for a in addrs {
            t.entry(addr(a)).hosts = 1;
        }
        t.entry(addr("2001:db8::1")).hosts = 5;
        t
    }

    #[test]
    fn snapshots_are_written_in_address_order_and_read_back_equal() {
        let mut addrs = [
            "192.0.2.9",
            "2001:db8::2",
            "192.0.2.1",
            "2001:db8::1",
            "10.0.0.1",
        ];
        let t = table(&addrs);
        let bytes = postcard::to_allocvec(&t).unwrap();
        // Built in another order, the same table writes the same bytes.
        addrs.reverse();
        assert_eq!(postcard::to_allocvec(&table(&addrs)).unwrap(), bytes);
        let back: AddrTable = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.get(addr("2001:db8::1")).unwrap().hosts, 5);
        assert!(back.get(addr("2001:db8::3")).is_none());
    }

    #[test]
    fn the_form_is_that_of_the_ordered_maps_it_replaced() {
        use std::collections::BTreeMap;
        #[derive(serde::Serialize)]
        struct Before {
            v4: BTreeMap<u32, crate::state::counters::AddrStats>,
            v6: BTreeMap<u128, crate::state::counters::AddrStats>,
        }
        let mut t = AddrTable::default();
        let mut before = Before {
            v4: BTreeMap::new(),
            v6: BTreeMap::new(),
        };
        for (i, a) in ["192.0.2.9", "2001:db8::2", "192.0.2.1"].iter().enumerate() {
            t.entry(addr(a)).hosts = i as u64 + 1;
            let st = t.get(addr(a)).unwrap().clone();
            match addr(a) {
                IpAddr::V4(x) => before.v4.insert(u32::from(x), st),
                IpAddr::V6(x) => before.v6.insert(u128::from(x), st),
            };
        }
        assert_eq!(
            postcard::to_allocvec(&t).unwrap(),
            postcard::to_allocvec(&before).unwrap()
        );
    }

    #[test]
    fn sweeping_most_addresses_gives_memory_back() {
        let mut t = AddrTable::default();
        for i in 0..100_000u32 {
            t.entry(IpAddr::from(i.to_be_bytes())).hosts = 1;
        }
        let full = t.v4.capacity();
        t.retain(|a, _| matches!(a, IpAddr::V4(x) if u32::from(x) < 1_000));
        assert_eq!(t.len(), 1_000);
        assert!(t.v4.capacity() < full / 8, "{} of {full}", t.v4.capacity());
    }
}
