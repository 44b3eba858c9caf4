//! Restart benchmark: a node holding many tracked addresses and bans is stopped (SIGTERM) and
//! started again; how long until it serves again — its state loaded from the last snapshot, the
//! log after it replayed, a leader known and a new write committed — and how much memory the
//! process holds per tracked address.
//!
//! `cargo build --release --workspace --bins && ./target/release/restart-bench`
//! Options: `--addresses N` (default 1,000,000), `--bans N` (default 100,000), `--restarts N`
//! (default 2), `--snapshot-every N` (Raft entries, default 10,000).
//!
//! A one-node cluster (every node of a bigger one loads and replays the same way). Addresses
//! arrive as delivering connections through the agents' API, 500 a batch; bans through the admin
//! API, one Raft entry each (operator bans), so snapshots are taken along the way (every 10,000
//! entries, the default) and the log after the last one is replayed at restart.

use mxrep_proto::v1 as pb;
use mxrep_tests::events::{accepted, now_ms};
use mxrep_tests::faults::rss_bytes;
use mxrep_tests::{wait_until, NodeProc, Tuning};
use std::time::{Duration, Instant};

/// Options of the benchmark.
#[derive(clap::Parser)]
struct Opts {
    /// Distinct addresses the node tracks.
    #[arg(long, default_value_t = 1_000_000)]
    addresses: u64,
    /// Bans it holds.
    #[arg(long, default_value_t = 100_000)]
    bans: u64,
    /// Restarts measured.
    #[arg(long, default_value_t = 2)]
    restarts: usize,
    /// Raft entries between snapshots (the node's default is 10,000); a large value leaves the
    /// whole history in the log, replayed at restart.
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
}

const LIMIT: Duration = Duration::from_secs(600);

/// The n-th tracked address: 10.0.0.0/8, in order.
fn address(n: u64) -> String {
    format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)
}

/// The n-th banned address: 172.16.0.0/12, in order.
fn banned(n: u64) -> String {
    format!("172.{}.{}.{}", 16 + (n >> 16), (n >> 8) & 255, n & 255)
}

/// Sends one delivering connection from each of `count` addresses, on 4 streams.
async fn load_addresses(api: &str, count: u64) {
    let per_stream = count.div_ceil(4);
    let tasks: Vec<_> = (0..4u64)
        .map(|s| {
            let api = api.to_string();
            tokio::spawn(async move {
                let (from, to) = (s * per_stream, ((s + 1) * per_stream).min(count));
                let ch = mxrep_common::endpoint::connect(&api)
                    .await
                    .expect("connect");
                let mut client = pb::agent_client::AgentClient::new(ch);
                let (tx, rx) = tokio::sync::mpsc::channel(8);
                let mut acks = client
                    .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .expect("stream")
                    .into_inner();
                let batches: Vec<(u64, u64)> = (from..to)
                    .step_by(500)
                    .map(|b| (b, (b + 500).min(to)))
                    .collect();
                let sender = tokio::spawn(async move {
                    for (seq, (a, b)) in batches.into_iter().enumerate() {
                        let events = (a..b).map(|n| accepted(&address(n), now_ms())).collect();
                        let batch = pb::EventBatch {
                            seq: seq as u64 + 1,
                            session: s + 1,
                            mx_host: format!("mx{s}"),
                            events,
                            traceparent: String::new(),
                        };
                        if tx.send(batch).await.is_err() {
                            return;
                        }
                    }
                });
                let mut acked = 0u64;
                while acked < to - from {
                    let a = acks.message().await.expect("ack").expect("stream open");
                    assert_eq!(a.rejected, 0, "refused: {:?}", a.rejections);
                    acked += a.accepted as u64;
                }
                sender.await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("load stream");
    }
}

/// Bans `count` addresses through the admin API, 64 at a time.
async fn load_bans(api: &str, count: u64) {
    let ch = mxrep_common::endpoint::connect(api).await.expect("connect");
    let tasks: Vec<_> = (0..64u64)
        .map(|w| {
            let mut client = pb::admin_client::AdminClient::new(ch.clone());
            tokio::spawn(async move {
                for n in (w..count).step_by(64) {
                    client
                        .ban(pb::BanRequest {
                            prefix: banned(n),
                            duration_seconds: 7 * 86_400,
                            reason: "restart-bench".into(),
                            force: false,
                        })
                        .await
                        .expect("ban");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("ban task");
    }
}

/// One operator ban, committed.
async fn ban_one(api: &str, prefix: &str) {
    let ch = mxrep_common::endpoint::connect(api).await.expect("connect");
    pb::admin_client::AdminClient::new(ch)
        .ban(pb::BanRequest {
            prefix: prefix.into(),
            duration_seconds: 3600,
            reason: "restart-bench".into(),
            force: false,
        })
        .await
        .expect("ban after restart");
}

fn main() {
    let Opts {
        addresses,
        bans,
        restarts,
        snapshot_every,
    } = clap::Parser::parse();
    let dir = tempfile::tempdir().expect("tempdir");
    let tuning = Tuning {
        snapshot_logs_since_last: snapshot_every,
        ..Tuning::default()
    };
    let mut node = NodeProc::new(dir.path(), 1, None, &tuning);
    node.peers = Some(format!("1={}", node.peer));
    node.start();
    wait_until(LIMIT, "the node to lead", || {
        node.status()?["leader_id"].as_u64()
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let t = Instant::now();
    rt.block_on(load_addresses(&node.api, addresses));
    println!(
        "{addresses} addresses sent and committed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    rt.block_on(load_bans(&node.api, bans));
    println!(
        "{bans} bans committed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let full = |s: &serde_json::Value| {
        s["tracked_addresses"].as_u64() >= Some(addresses) && s["ban_count"].as_u64() >= Some(bans)
    };
    let s = wait_until(LIMIT, "the state to hold everything", || {
        node.status().filter(full)
    });
    let rss = rss_bytes(node.pid().expect("running"));
    println!(
        "before the stop: {} addresses, {} bans, log index {}, snapshot at {}; RSS {:.0} MiB ({:.0} bytes per tracked address, bans included)",
        s["tracked_addresses"], s["ban_count"], s["last_log_index"], s["snapshot_index"],
        rss as f64 / 1048576.0, rss as f64 / addresses as f64
    );

    for round in 1..=restarts {
        node.stop();
        let t = Instant::now();
        node.start();
        let s = wait_until(LIMIT, "the node to serve its whole state again", || {
            node.status()
                .filter(|s| full(s) && s["leader_id"].as_u64().is_some())
        });
        let loaded = t.elapsed();
        rt.block_on(ban_one(&node.api, &format!("192.0.2.{round}")));
        let written = t.elapsed();
        let rss = rss_bytes(node.pid().expect("running"));
        println!(
            "restart {round}: serving with {} addresses and {} bans after {:.2} s, a new ban committed after {:.2} s (entries replayed after the snapshot: {}); RSS {:.0} MiB = {:.0} bytes per tracked address",
            s["tracked_addresses"], s["ban_count"], loaded.as_secs_f64(), written.as_secs_f64(),
            s["last_log_index"].as_u64().unwrap_or(0).saturating_sub(s["snapshot_index"].as_u64().unwrap_or(0)),
            rss as f64 / 1048576.0, rss as f64 / addresses as f64
        );
    }
}
