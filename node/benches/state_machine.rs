//! How fast the state machine applies events: `Observe` entries of 1,000 per-address deltas
//! (one connection and one rejected recipient each, so every rule is evaluated), spread over
//! 198.18.0.0/15, on a state that already tracks 100,000 addresses.
//!
//! `cargo bench -p mxrep-node --bench state_machine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mxrep_node::state::{BatchId, Command, Observation, ReputationState, Request};
use std::net::{IpAddr, Ipv4Addr};

const T0: i64 = 1_800_000_000_000;

fn addr(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (n % 131_072),
    ))
}

fn entry(start: u32, n: u32, now_ms: i64) -> Request {
    let observations = (start..start + n)
        .map(|i| Observation {
            bad: 1,
            rejects: 1,
            ..Observation::new(
                addr(i.wrapping_mul(2_654_435_761)),
                i % 3,
                (now_ms / 1000) as u32,
            )
        })
        .collect();
    Request {
        now_ms,
        command: Command::Observe {
            hosts: vec!["mx1".into(), "mx2".into(), "mx3".into()],
            batches: (0..3)
                .map(|host| BatchId {
                    host,
                    session: 0,
                    seq: 0,
                })
                .collect(),
            observations,
        },
    }
}

fn warm_state() -> ReputationState {
    let mut s = ReputationState::default();
    for k in 0..100 {
        s.apply(k + 1, &entry(k as u32 * 1000, 1000, T0));
    }
    s
}

fn bench(c: &mut Criterion) {
    let base = warm_state();
    let entries: Vec<Request> = (0..10)
        .map(|k| entry(500_000 + k * 1000, 1000, T0 + 1000))
        .collect();
    let mut g = c.benchmark_group("state_machine");
    // Two events (connect + reject) per delta.
    g.throughput(Throughput::Elements(2 * 1000 * entries.len() as u64));
    g.bench_function("apply 10 Observe entries x 1000 deltas", |b| {
        b.iter_batched(
            || base.clone(),
            |mut s| {
                for (i, e) in entries.iter().enumerate() {
                    s.apply(1000 + i as u64, e);
                }
                s
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
