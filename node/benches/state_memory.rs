//! Bytes of memory per tracked address: applies `Observe` entries that make the state track
//! 1,000,000 distinct addresses (one connection each), and counts the heap the state holds with
//! a counting allocator. Goal: at most 150 bytes per address.
//!
//! `cargo bench -p mxrep-node --bench state_memory`

use mxrep_node::state::{BatchId, Command, Observation, ReputationState, Request};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// What an allocation of `size` bytes costs in glibc's malloc: its size plus an 8-byte header,
/// rounded up to 16, at least 32 — so many small allocations (boxed counters) are charged their
/// real price, not only what was asked for.
fn charged(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(charged(l.size()), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(charged(l.size()), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(charged(n) - charged(l.size()), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const T0: i64 = 1_800_000_000_000;

fn observation(addr: IpAddr, bad: u32) -> Observation {
    Observation {
        neutral: 1 - bad.min(1),
        bad,
        ..Observation::new(addr, 0, (T0 / 1000) as u32)
    }
}

/// Tracks `n` addresses made by `make`; returns heap bytes per address held by the state.
fn per_address(n: u32, make: impl Fn(u32) -> Observation) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let mut s = ReputationState::default();
    for (chunk, start) in (0..n).step_by(10_000).enumerate() {
        let observations = (start..(start + 10_000).min(n)).map(&make).collect();
        let req = Request {
            now_ms: T0,
            command: Command::Observe {
                hosts: vec!["mx1".into()],
                batches: vec![BatchId {
                    host: 0,
                    session: 0,
                    seq: 0,
                }],
                observations,
            },
        };
        s.apply(chunk as u64 + 1, &req);
    }
    assert_eq!(s.addrs.len(), n as usize);
    let held = LIVE.load(Ordering::Relaxed) - before;
    let per = held as f64 / n as f64;
    drop(s);
    per
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = 1_000_000u32;
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    // Addresses arrive in scattered order, as real traffic does: a bijection of 0..2^20.
    let scatter = |i: u32| i.wrapping_mul(2_654_435_761) & 0xF_FFFF;
    let v4 = per_address(n, |i| {
        observation(IpAddr::V4(Ipv4Addr::from(base + scatter(i))), 0)
    });
    let v6 = per_address(n, |i| {
        let a = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap())
            + ((scatter(i) as u128) << 64)
            + 1;
        observation(IpAddr::V6(Ipv6Addr::from(a)), 0)
    });
    // Every address also showing a bad signal: its /24 tracks it for the changing-addresses rule.
    let v4_bad = per_address(n, |i| {
        observation(IpAddr::V4(Ipv4Addr::from(base + scatter(i))), 1)
    });
    // The same for IPv6, each address in a /64 of its own: every level (/64, /56, /48) tracks it.
    let v6_bad = per_address(n, |i| {
        let a = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap())
            + ((scatter(i) as u128) << 64)
            + 1;
        observation(IpAddr::V6(Ipv6Addr::from(a)), 1)
    });
    let v4_seq = per_address(n, |i| observation(IpAddr::V4(Ipv4Addr::from(base + i)), 0));
    // One address past 7/8 of 2^20: the hash table has just doubled to 2^21 buckets, the most
    // room per address it ever holds.
    let past = 917_505;
    let v4_doubled = per_address(past, |i| {
        observation(IpAddr::V4(Ipv4Addr::from(base + scatter(i))), 0)
    });
    println!("state memory, {n} distinct active addresses (goal: at most 150 bytes each):");
    println!("  IPv4, connections only:                      {v4:6.1} bytes/address");
    println!("  IPv6, connections only:                      {v6:6.1} bytes/address");
    println!("  IPv4, every address with a bad signal:       {v4_bad:6.1} bytes/address");
    println!("  IPv6, each in its own /64, with a bad signal: {v6_bad:6.1} bytes/address");
    println!("  IPv4, inserted in ascending order:           {v4_seq:6.1} bytes/address");
    println!("  IPv4, {past} (the table just doubled: worst): {v4_doubled:6.1} bytes/address");
    println!("greylisting triplets (goal: at most 48 bytes each):");
    for n in [1_000_000u64, 10_000_000] {
        println!(
            "  {n:>10} triplets:                        {:6.1} bytes/triplet",
            per_triplet(n)
        );
    }
}

/// Bytes held per triplet once `n` distinct triplets (from 1,000 client networks) were seen.
fn per_triplet(n: u64) -> f64 {
    use mxrep_node::state::greylist::Sighting;
    let before = LIVE.load(Ordering::Relaxed);
    let mut s = ReputationState::default();
    let mut index = 0;
    let chunk = 100_000;
    for start in (0..n).step_by(chunk) {
        let sightings = (start..(start + chunk as u64).min(n))
            .map(|i| Sighting {
                // Keys are hashes: spread over the whole 64-bit space, as xxh3 spreads them.
                triplet: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                network: format!("198.18.{}.0/24", i % 250).parse().unwrap(),
            })
            .collect();
        index += 1;
        s.apply(
            index,
            &Request {
                now_ms: T0,
                command: Command::Greylist(sightings),
            },
        );
    }
    assert_eq!(s.greylist.triplets.len() as u64, n);
    let held = LIVE.load(Ordering::Relaxed) - before;
    drop(s);
    held as f64 / n as f64
}
