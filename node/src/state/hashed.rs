//! What the state's hash maps share: keys chosen by whoever connects (addresses, their
//! prefixes) are hashed with random seeds, so no one can steer them into collisions; a map is
//! written to snapshots in key order, in the form an ordered map of it has, so every node writes
//! the same bytes for the same state and snapshots of the ordered maps they replaced still load;
//! and a map that a sweep left mostly empty gives its memory back.

use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Writes `map` in key order (`serialize_with` of a state field).
pub fn in_key_order<K, V, H, S>(map: &HashMap<K, V, H>, s: S) -> Result<S::Ok, S::Error>
where
    K: Ord + Serialize,
    V: Serialize,
    S: Serializer,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    s.collect_map(entries)
}

/// A map holding a quarter of what it has room for shrinks, so that memory follows the active
/// set after a wave is swept.
pub fn shrink_if_sparse<K: Hash + Eq, V, H: BuildHasher>(map: &mut HashMap<K, V, H>) {
    if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::{in_key_order, shrink_if_sparse};
    use ipnet::IpNet;
    use std::collections::{BTreeMap, HashMap};

    #[derive(serde::Serialize)]
    struct Hashed(#[serde(serialize_with = "in_key_order")] HashMap<IpNet, u32>);

    #[test]
    fn a_hashed_map_writes_the_bytes_of_its_ordered_map_whatever_its_insert_order() {
        let mut nets: Vec<IpNet> = ["192.0.2.0/24", "10.0.0.0/8", "2001:db8::/64", "10.1.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let ordered: BTreeMap<IpNet, u32> = nets.iter().zip(1..).map(|(n, i)| (*n, i)).collect();
        let want = postcard::to_allocvec(&ordered).unwrap();
        for _ in 0..2 {
            let hashed = Hashed(nets.iter().map(|n| (*n, ordered[n])).collect());
            assert_eq!(postcard::to_allocvec(&hashed).unwrap(), want);
            nets.reverse();
        }
        let back: HashMap<IpNet, u32> = postcard::from_bytes(&want).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back[&"10.1.0.0/16".parse::<IpNet>().unwrap()], 4);
    }

    #[test]
    fn a_mostly_emptied_map_gives_memory_back() {
        let mut m: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = m.capacity();
        m.retain(|k, _| *k < 100);
        shrink_if_sparse(&mut m);
        assert!(m.capacity() < full / 8, "{} of {full}", m.capacity());
    }
}
