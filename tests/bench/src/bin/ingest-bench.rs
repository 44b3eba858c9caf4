//! Ingest benchmark: how many events per second a 3-node loopback cluster absorbs (validated,
//! aggregated, committed through Raft, acknowledged), beside the rate the same load generator
//! reaches against a node that validates and discards what it receives, in one run.
//!
//! `cargo build --release --workspace --bins && ./target/release/ingest-bench`
//! Options: `--seconds N` (per run, default 5), `--streams N` (default 6), `--batch N` (events
//! per batch, default 500), `--window N` (unacknowledged batches per stream, default 8).

use mxrep_node::ingest::{validate_batch, Limits};
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::agent_server::{Agent, AgentServer};
use mxrep_tests::events::{now_ms, quit};
use mxrep_tests::{TestCluster, Tuning};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Options of the benchmark.
#[derive(clap::Parser)]
struct Opts {
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent streams.
    #[arg(long, default_value_t = 6)]
    streams: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Unacknowledged batches per stream.
    #[arg(long, default_value_t = 8)]
    window: u64,
}

/// The baseline: validates each batch like a node does, acknowledges it, keeps nothing.
struct Discard;

type Acks = Pin<Box<dyn Stream<Item = Result<pb::EventAck, Status>> + Send>>;
type Updates = Pin<Box<dyn Stream<Item = Result<pb::BanUpdate, Status>> + Send>>;
type Keys = Pin<Box<dyn Stream<Item = Result<pb::GreylistKeys, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for Discard {
    type ReportEventsStream = Acks;
    type WatchBansStream = Updates;
    type WatchGreylistStream = Keys;

    async fn report_events(
        &self,
        req: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Acks>, Status> {
        let limits = Limits::default();
        let acks = req.into_inner().map(move |b| {
            let b = b?;
            let (good, bad) =
                validate_batch(&b, now_ms(), &limits).map_err(Status::invalid_argument)?;
            Ok(pb::EventAck {
                seq: b.seq,
                accepted: good.len() as u32,
                rejected: bad.len() as u32,
                rejections: bad,
            })
        });
        Ok(Response::new(Box::pin(acks)))
    }

    async fn watch_bans(
        &self,
        _: Request<pb::WatchBansRequest>,
    ) -> Result<Response<Updates>, Status> {
        Err(Status::unimplemented("discard node"))
    }

    async fn check_greylist(
        &self,
        _: Request<pb::GreylistRequest>,
    ) -> Result<Response<pb::GreylistReply>, Status> {
        Err(Status::unimplemented("discard node"))
    }

    async fn watch_greylist(
        &self,
        _: Request<pb::WatchGreylistRequest>,
    ) -> Result<Response<Keys>, Status> {
        Err(Status::unimplemented("discard node"))
    }

    async fn report_sightings(
        &self,
        _: Request<pb::SightingBatch>,
    ) -> Result<Response<pb::SightingAck>, Status> {
        Err(Status::unimplemented("discard node"))
    }

    async fn report_drops(
        &self,
        _: Request<pb::DropCounts>,
    ) -> Result<Response<pb::DropAck>, Status> {
        Err(Status::unimplemented("discard node"))
    }
}

/// One agent-like stream: keeps `window` batches in flight for `secs`; returns events acked.
async fn stream_load(
    api: String,
    host: String,
    secs: u64,
    batch: u64,
    window: u64,
    seed: u64,
) -> u64 {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = pb::agent_client::AgentClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::EventBatch>(window as usize);
    let mut acks = client
        .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let make = |seq: u64| pb::EventBatch {
        seq,
        session: seed + 1,
        traceparent: String::new(),
        mx_host: host.clone(),
        events: (0..batch)
            .map(|i| {
                let n = (seed * 1_000_003 + seq * batch + i).wrapping_mul(2_654_435_761) % 131_072;
                quit(
                    &format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 255, n & 255),
                    now_ms(),
                )
            })
            .collect(),
    };
    let mut seq = 0;
    let mut in_flight = 0;
    let mut acked_events = 0;
    loop {
        while in_flight < window && Instant::now() < deadline {
            seq += 1;
            tx.send(make(seq)).await.expect("send");
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        match acks.message().await {
            Ok(Some(a)) => {
                acked_events += a.accepted as u64;
                in_flight -= 1;
            }
            other => panic!("stream ended: {other:?}"),
        }
    }
    acked_events
}

async fn run_load(apis: Vec<String>, streams: u64, secs: u64, batch: u64, window: u64) -> f64 {
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let api = apis[s as usize % apis.len()].clone();
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let n = stream_load(api, format!("mx{}", s + 1), secs, batch, window, s).await;
            total.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let Opts {
        seconds: secs,
        streams,
        batch,
        window,
    } = clap::Parser::parse();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let discard_addr = listener.local_addr().unwrap().to_string();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServer::new(Discard))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let baseline = rt.block_on(run_load(vec![discard_addr], streams, secs, batch, window));

    let cluster = TestCluster::start(3, Tuning::default());
    cluster.wait_for_leader(3, Duration::from_secs(30));
    let apis: Vec<String> = cluster.nodes.iter().map(|n| n.api.clone()).collect();
    let clustered = rt.block_on(run_load(apis, streams, secs, batch, window));
    let status = cluster.nodes[0].status().expect("status");

    println!(
        "ingest, {streams} streams x {window} batches in flight x {batch} events, {secs} s each:"
    );
    println!("  discarding node (validate + ack):        {baseline:10.0} events/s");
    println!(
        "  3-node cluster (aggregate, Raft, ack):   {clustered:10.0} events/s   (ratio {:.2})",
        clustered / baseline
    );
    println!(
        "  cluster log after the run: {} entries, tracking {} addresses",
        status["last_log_index"], status["tracked_addresses"]
    );
}
