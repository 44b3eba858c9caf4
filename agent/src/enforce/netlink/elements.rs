//! Set elements on the wire: an address is one element; a prefix in an interval set is two, the
//! first address and the address just past the last one flagged as the interval's end (none
//! when the range reaches the top of the address space), as the kernel keeps it. Adding,
//! deleting, and reading them back from a dump.

use super::wire::{self, msg, Attrs, Batch, NLM_F_CREATE};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const LIST_TABLE: u16 = 1;
const LIST_SET: u16 = 2;
const LIST_ELEMENTS: u16 = 3;
const LIST_ELEM: u16 = 1;
const ELEM_KEY: u16 = 1;
const ELEM_FLAGS: u16 = 3;
const ELEM_TIMEOUT: u16 = 4;
const ELEM_EXPIRATION: u16 = 5;
const DATA_VALUE: u16 = 1;
const INTERVAL_END: u32 = 1;

/// Most elements in one message: an attribute's length is 16 bits, and an IPv6 element takes
/// about 40 bytes.
pub const ELEMS_PER_MESSAGE: usize = 1000;

/// One set element: a key, its timeout, and whether it closes an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub key: Vec<u8>,
    pub timeout_ms: u64,
    pub interval_end: bool,
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl Elem {
    /// A single address in a timeout-only set.
    pub fn address(addr: IpAddr, timeout_ms: u64) -> Self {
        Self {
            key: octets(addr),
            timeout_ms,
            interval_end: false,
        }
    }

    /// The elements of `net` in an interval set.
    pub fn prefix(net: &IpNet, timeout_ms: u64) -> Vec<Self> {
        let end = match net {
            IpNet::V4(n) => u32::from(n.broadcast())
                .checked_add(1)
                .map(|e| Ipv4Addr::from(e).octets().to_vec()),
            IpNet::V6(n) => u128::from(n.broadcast())
                .checked_add(1)
                .map(|e| Ipv6Addr::from(e).octets().to_vec()),
        };
        let mut v = vec![Self::address(net.network(), timeout_ms)];
        v.extend(end.map(|key| Self {
            key,
            timeout_ms,
            interval_end: true,
        }));
        v
    }

    /// The elements of `net` in its set: one for a host entry of a timeout-only set, the
    /// interval's two otherwise.
    pub fn of(net: &IpNet, interval: bool, timeout_ms: u64) -> Vec<Self> {
        match interval {
            false => vec![Self::address(net.addr(), timeout_ms)],
            true => Self::prefix(net, timeout_ms),
        }
    }
}

/// The `LIST_ELEMENTS` payload of `elems`; timeouts only when `with_timeout` (additions).
fn element_list(elems: &[Elem], with_timeout: bool) -> Attrs {
    let mut list = Attrs::new();
    for e in elems {
        let mut a = Attrs::new().nested(ELEM_KEY, Attrs::new().bytes(DATA_VALUE, &e.key));
        if e.interval_end {
            a = a.u32(ELEM_FLAGS, INTERVAL_END);
        } else if with_timeout {
            // The kernel keeps the timeout on the interval's start; an end carries none.
            a = a.u64(ELEM_TIMEOUT, e.timeout_ms);
        }
        list = list.nested(LIST_ELEM, a);
    }
    list
}

fn push(b: &mut Batch, kind: u16, table: &str, set: &str, elems: &[Elem]) {
    for chunk in elems.chunks(ELEMS_PER_MESSAGE) {
        let attrs = Attrs::new()
            .str(LIST_TABLE, table)
            .str(LIST_SET, set)
            .nested(LIST_ELEMENTS, element_list(chunk, kind == msg::NEWSETELEM));
        let flags = if kind == msg::NEWSETELEM {
            NLM_F_CREATE
        } else {
            0
        };
        b.push(kind, flags, attrs);
    }
}

/// Adds `elems` to `set` (an element already there is no error).
pub fn add(b: &mut Batch, table: &str, set: &str, elems: &[Elem]) {
    push(b, msg::NEWSETELEM, table, set, elems);
}

/// Deletes `elems` from `set` (they must be there: add them first to make sure).
pub fn delete(b: &mut Batch, table: &str, set: &str, elems: &[Elem]) {
    push(b, msg::DELSETELEM, table, set, elems);
}

/// The dump request for `set`'s elements.
pub fn dump_request(table: &str, set: &str) -> Attrs {
    Attrs::new().str(LIST_TABLE, table).str(LIST_SET, set)
}

/// One element read back: key, interval end or not, milliseconds left (None: no timeout),
/// packets its counter saw (None: no counter).
type ReadElem = (Vec<u8>, bool, Option<u64>, Option<u64>);

const ELEM_EXPR: u16 = 7;
const ELEM_EXPRESSIONS: u16 = 10;

/// The packets of a counter expression (`NFTA_EXPR_NAME` "counter", data `PACKETS`).
fn counter_packets(expr: &[u8]) -> Option<u64> {
    (wire::as_str(wire::find(expr, 1)?) == "counter")
        .then(|| {
            wire::find(expr, 2)
                .and_then(|d| wire::find(d, 2))
                .and_then(wire::as_u64)
        })
        .flatten()
}

fn read_elements(body: &[u8]) -> Vec<ReadElem> {
    let Some(attrs) = body.get(4..) else {
        return vec![];
    };
    let Some(list) = wire::find(attrs, LIST_ELEMENTS) else {
        return vec![];
    };
    wire::attrs(list)
        .into_iter()
        .filter_map(|(_, e)| {
            let key = wire::find(wire::find(e, ELEM_KEY)?, DATA_VALUE)?.to_vec();
            let end = wire::find(e, ELEM_FLAGS)
                .and_then(wire::as_u32)
                .is_some_and(|f| f & INTERVAL_END != 0);
            let left = wire::find(e, ELEM_EXPIRATION).and_then(wire::as_u64);
            let single = wire::find(e, ELEM_EXPR).and_then(counter_packets);
            let listed = wire::find(e, ELEM_EXPRESSIONS).and_then(|l| {
                wire::attrs(l)
                    .into_iter()
                    .find_map(|(_, x)| counter_packets(x))
            });
            Some((key, end, left, single.or(listed)))
        })
        .collect()
}

fn to_u128(key: &[u8]) -> Option<(u128, u8)> {
    match key.len() {
        4 => Some((u32::from_be_bytes(key.try_into().ok()?) as u128, 32)),
        16 => Some((u128::from_be_bytes(key.try_into().ok()?), 128)),
        _ => None,
    }
}

fn net_of(start: u128, len: u8, bits: u8) -> Option<IpNet> {
    match bits {
        32 => IpNet::new(IpAddr::V4(Ipv4Addr::from(start as u32)), len).ok(),
        _ => IpNet::new(IpAddr::V6(Ipv6Addr::from(start)), len).ok(),
    }
}

/// The last address of the aligned block of 2^`log` addresses at `start`.
fn block_last(start: u128, log: u32) -> Option<u128> {
    match log {
        128 => (start == 0).then_some(u128::MAX),
        _ => start.checked_add((1u128 << log) - 1),
    }
}

/// The CIDR prefixes that exactly cover `[start, end]` (inclusive) in a `bits`-bit space.
fn cover(mut start: u128, end: u128, bits: u8) -> Vec<IpNet> {
    let mut out = vec![];
    loop {
        let mut log = start.trailing_zeros().min(bits as u32);
        while log > 0 && block_last(start, log).is_none_or(|l| l > end) {
            log -= 1;
        }
        let last = block_last(start, log).unwrap_or(start);
        out.extend(net_of(start, bits - log as u8, bits));
        if last >= end {
            return out;
        }
        start = last + 1;
    }
}

/// What one entry of a set holds, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    /// Seconds left, rounded up (None: no timeout).
    pub secs_left: Option<u64>,
    /// Packets its counter saw (None: the set counts nothing per element).
    pub packets: Option<u64>,
}

/// The entries in the bodies of a dump of a set (an `interval` set or not), as prefixes. An
/// interval's start (which holds the timeout and the counter) is paired with the first end
/// above it, or runs to the top of the address space.
pub fn parse_entries(bodies: &[Vec<u8>], interval: bool) -> BTreeMap<IpNet, EntryInfo> {
    let mut starts = BTreeMap::new();
    let mut ends = std::collections::BTreeSet::new();
    let mut bits = 32;
    for (key, end, left, packets) in bodies.iter().flat_map(|b| read_elements(b)) {
        let Some((k, b)) = to_u128(&key) else {
            continue;
        };
        bits = b;
        let info = EntryInfo {
            secs_left: left.map(|ms| ms.div_ceil(1000)),
            packets,
        };
        match end {
            true => ends.insert(k),
            false => starts.insert(k, info).is_none(),
        };
    }
    let top = if bits == 32 {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    let mut out = BTreeMap::new();
    for (&s, &info) in &starts {
        let last = match (
            interval,
            s.checked_add(1).and_then(|n| ends.range(n..).next()),
        ) {
            (false, _) => s,
            (true, Some(&e)) => e - 1,
            (true, None) => top,
        };
        for n in cover(s, last, bits) {
            out.insert(n, info);
        }
    }
    out
}

/// The elements in the bodies of a set dump with seconds left (see [`parse_entries`]).
pub fn parse_dump(bodies: &[Vec<u8>], interval: bool) -> BTreeMap<IpNet, Option<u64>> {
    parse_entries(bodies, interval)
        .into_iter()
        .map(|(n, i)| (n, i.secs_left))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(elems: &[(Vec<u8>, bool, Option<u64>)]) -> Vec<u8> {
        let mut list = Attrs::new();
        for (k, end, left) in elems {
            let counter = Attrs::new()
                .str(1, "counter")
                .nested(2, Attrs::new().u64(1, 4000).u64(2, 7));
            let mut a = Attrs::new().nested(ELEM_KEY, Attrs::new().bytes(DATA_VALUE, k));
            if *end {
                a = a.u32(ELEM_FLAGS, INTERVAL_END);
            }
            if let Some(ms) = left {
                a = a
                    .u64(ELEM_TIMEOUT, 600_000)
                    .u64(ELEM_EXPIRATION, *ms)
                    .nested(ELEM_EXPR, counter.clone());
            }
            list = list.nested(LIST_ELEM, a);
        }
        let mut b = vec![1, 0, 0, 0];
        b.extend(
            Attrs::new()
                .str(1, "t")
                .str(2, "s")
                .nested(LIST_ELEMENTS, list)
                .0,
        );
        b
    }

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_intervals_read_back_as_prefixes() {
        let a = Elem::address("192.0.2.7".parse().unwrap(), 0).key;
        let b = body(&[(a, false, Some(59_001))]);
        assert_eq!(
            parse_dump(&[b], false),
            BTreeMap::from([(n("192.0.2.7/32"), Some(60))])
        );

        // Dumps list interval ends before starts, highest first: order must not matter.
        let mut els = vec![];
        for (p, ms) in [("198.51.100.0/24", 1_000), ("203.0.113.128/25", 2_500)] {
            for e in Elem::prefix(&n(p), 0).into_iter().rev() {
                els.push((e.key, e.interval_end, (!e.interval_end).then_some(ms)));
            }
        }
        els.reverse();
        let got = parse_dump(&[body(&els)], true);
        assert_eq!(
            got,
            BTreeMap::from([
                (n("198.51.100.0/24"), Some(1)),
                (n("203.0.113.128/25"), Some(3))
            ])
        );
    }

    #[test]
    fn a_range_to_the_top_has_no_end_element() {
        let top = n("255.255.0.0/16");
        let els = Elem::prefix(&top, 0);
        assert_eq!(els.len(), 1);
        let b = body(&[(els[0].key.clone(), false, None)]);
        assert_eq!(parse_dump(&[b], true), BTreeMap::from([(top, None)]));
    }

    #[test]
    fn covers_split_ranges_into_cidrs() {
        assert_eq!(cover(0, 0xff, 32), vec![n("0.0.0.0/24")]);
        assert_eq!(cover(1, 2, 32), vec![n("0.0.0.1/32"), n("0.0.0.2/32")]);
        assert_eq!(cover(0, u32::MAX as u128, 32), vec![n("0.0.0.0/0")]);
        assert_eq!(cover(0, u128::MAX, 128), vec![n("::/0")]);
    }
}
