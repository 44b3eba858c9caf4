//! Cluster-core benchmark: a real 3-node loopback cluster of `mxrep-node` processes.
//!
//! Measures, in one run:
//! - committed writes per second through the admin API (`Ban`), sent to the leader and, side by
//!   side, to a follower (which forwards to the leader), by a fixed number of concurrent clients;
//! - failover: time from SIGKILL of the leader to the first successful write on a survivor,
//!   over several rounds (median and max).
//!
//! Build and run (release, so the numbers mean something):
//! `cargo build --release --workspace --bins && ./target/release/cluster-bench`
//! Options: `--seconds N` (per throughput run, default 5), `--clients N` (default 32),
//! `--rounds N` (failover rounds, default 5).

use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::BanRequest;
use mxrep_tests::{TestCluster, Tuning};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Options of the benchmark.
#[derive(clap::Parser)]
struct Opts {
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    clients: u64,
    /// Failover rounds.
    #[arg(long, default_value_t = 5)]
    rounds: u64,
}

async fn client(api: &str) -> AdminClient<Channel> {
    let ch = Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    AdminClient::new(ch)
}

/// Address number `n` in 198.18.0.0/15, the benchmarking range.
fn bench_addr(n: u64) -> String {
    format!("198.{}.{}.{}", 18 + (n >> 16) % 2, (n >> 8) & 255, n & 255)
}

/// Runs `clients` concurrent writers against `api` for `secs`; returns committed writes/s.
async fn throughput(api: &str, clients: u64, secs: u64, base: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut cl = client(api).await;
        let done = done.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let n = base + c * 1_000_000 + i;
                i += 1;
                let req = BanRequest {
                    prefix: bench_addr(n),
                    duration_seconds: 3600,
                    reason: "bench".into(),
                    force: false,
                };
                match cl.ban(req).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let e = errors.load(Ordering::Relaxed);
    assert_eq!(e, 0, "{e} writes failed");
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let Opts {
        seconds: secs,
        clients,
        rounds,
    } = clap::Parser::parse();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tuning = Tuning::default();
    let mut cluster = TestCluster::start(3, tuning);
    let limit = Duration::from_secs(30);
    let leader = cluster.wait_for_leader(3, limit);
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap().id;

    let via_leader = rt.block_on(throughput(&cluster.node(leader).api, clients, secs, 0));
    let via_follower = rt.block_on(throughput(
        &cluster.node(follower).api,
        clients,
        secs,
        1 << 40,
    ));
    println!("writes/s, {clients} clients, {secs} s each, 3-node loopback cluster (fsync on every append):");
    println!("  through the leader:   {via_leader:8.0}");
    println!(
        "  through a follower:   {via_follower:8.0}   (ratio follower/leader {:.2})",
        via_follower / via_leader
    );

    let mut failovers = Vec::new();
    for round in 0..rounds {
        let leader = cluster.wait_for_leader(3, limit);
        let survivor = cluster
            .nodes
            .iter()
            .find(|n| n.id != leader)
            .unwrap()
            .api
            .clone();
        let mut cl = rt.block_on(client(&survivor));
        cluster.node_mut(leader).kill();
        let killed = Instant::now();
        let req = BanRequest {
            prefix: bench_addr(100_000 + round),
            duration_seconds: 3600,
            reason: "failover".into(),
            force: false,
        };
        rt.block_on(cl.ban(req)).expect("write after failover");
        let took = killed.elapsed().as_secs_f64() * 1000.0;
        println!(
            "  failover round {}: killed node {leader}, first write after {took:.0} ms",
            round + 1
        );
        failovers.push(took);
        cluster.node_mut(leader).start();
    }
    let max = failovers.iter().cloned().fold(0.0, f64::max);
    println!(
        "failover (SIGKILL of leader -> first committed write), {rounds} rounds: median {:.0} ms, max {max:.0} ms",
        median(&mut failovers)
    );
}
