//! Which prefix lengths the ban set holds, so that "is this key inside a ban?" looks up only
//! the lengths some ban has — one or two in practice (addresses and /24s) — instead of every
//! possible supernet (33 for IPv4, 129 for IPv6). Every connection verdict asks it once for its
//! address and once per prefix level.
//!
//! Derived, not agreed: skipped in snapshots and equal in every comparison. A new or restored
//! state does not know its lengths; [`BanLengths::known`] is false until the next entry's apply
//! rebuilds them, and until then a caller looks up every length.

use ipnet::IpNet;

/// IPv4 lengths 0..=32 come first, then IPv6 lengths 0..=128.
const SLOTS: usize = 33 + 129;

/// Number of bans of each prefix length, per family.
#[derive(Debug, Clone, Default)]
pub struct BanLengths {
    /// Bans per slot (see [`SLOTS`]); empty while unknown.
    counts: Vec<u32>,
}

impl PartialEq for BanLengths {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for BanLengths {}

fn slot(key: &IpNet, len: u8) -> usize {
    match key {
        IpNet::V4(_) => len as usize,
        IpNet::V6(_) => 33 + len as usize,
    }
}

impl BanLengths {
    /// Are the counts there (false in a new or restored state until [`BanLengths::rebuild`])?
    pub fn known(&self) -> bool {
        !self.counts.is_empty()
    }

    /// Counts the prefixes of every ban held.
    pub fn rebuild<'a>(&mut self, bans: impl Iterator<Item = &'a IpNet>) {
        self.counts = vec![0; SLOTS];
        for p in bans {
            self.counts[slot(p, p.prefix_len())] += 1;
        }
    }

    /// A ban of `prefix` was added (not replaced).
    pub fn added(&mut self, prefix: &IpNet) {
        if let Some(c) = self.counts.get_mut(slot(prefix, prefix.prefix_len())) {
            *c += 1;
        }
    }

    /// A ban of `prefix` was removed.
    pub fn removed(&mut self, prefix: &IpNet) {
        if let Some(c) = self.counts.get_mut(slot(prefix, prefix.prefix_len())) {
            *c = c.saturating_sub(1);
        }
    }

    /// The lengths from `key`'s own down to 0, narrowest first, at which a ban may cover `key`:
    /// only lengths some ban has when the counts are known, every length otherwise.
    pub fn covering(&self, key: &IpNet) -> impl Iterator<Item = u8> + '_ {
        let key = *key;
        (0..=key.prefix_len())
            .rev()
            .filter(move |len| self.counts.get(slot(&key, *len)).is_none_or(|c| *c > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::BanLengths;
    use ipnet::IpNet;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn only_lengths_with_bans_are_looked_up_once_known() {
        let mut l = BanLengths::default();
        let key = net("192.0.2.7/32");
        assert_eq!(l.covering(&key).count(), 33, "unknown: every length");
        l.rebuild([net("198.51.100.0/24"), net("2001:db8::/48")].iter());
        assert_eq!(l.covering(&key).collect::<Vec<_>>(), vec![24]);
        l.added(&net("203.0.113.9/32"));
        l.added(&net("10.0.0.0/8"));
        assert_eq!(l.covering(&key).collect::<Vec<_>>(), vec![32, 24, 8]);
        assert_eq!(l.covering(&net("10.0.0.0/16")).collect::<Vec<_>>(), vec![8]);
        l.removed(&net("198.51.100.0/24"));
        assert_eq!(l.covering(&key).collect::<Vec<_>>(), vec![32, 8]);
        let v6 = net("2001:db8::1/128");
        assert_eq!(l.covering(&v6).collect::<Vec<_>>(), vec![48]);
    }
}
