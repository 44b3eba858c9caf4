//! The uplink: events from the sources to the cluster, in batches (at most 500 events or 20 ms),
//! over one long-lived `ReportEvents` stream with acknowledgements.
//!
//! Sources call [`Uplink::push`], which never blocks: events wait in a bounded queue, and when
//! it is full the oldest are dropped and counted. A batch leaves the agent's hands only when the
//! cluster acknowledges it; on any failure the unacknowledged batches are sent again first, as
//! the same batches (session and sequence number), to the next cluster address after a backoff
//! with jitter — so the cluster, which remembers the batches it applied, counts each once.

use crate::metrics::agent as metrics;
use mxrep_common::lock::MutexExt as _;
use mxrep_common::telemetry::instruments::kv;
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1 as pb;
use pb::agent_client::AgentClient;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Tuning of the uplink.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    pub cluster: Vec<String>,
    pub mx_host: String,
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub max_delay: Duration,
    /// Unacknowledged batches on the stream.
    pub window: usize,
}

impl UplinkConfig {
    pub fn new(cluster: Vec<String>, mx_host: String) -> Self {
        Self {
            cluster,
            mx_host,
            queue_capacity: 100_000,
            max_batch: 500,
            max_delay: Duration::from_millis(20),
            window: 16,
        }
    }
}

/// Counters an operator (and a test) can read.
#[derive(Debug, Default)]
pub struct UplinkStats {
    pub pushed: AtomicU64,
    pub dropped: AtomicU64,
    pub acked: AtomicU64,
    pub refused: AtomicU64,
    pub reconnects: AtomicU64,
}

struct Shared {
    /// Random per uplink: with the batch's seq it names a batch for exactly-once counting.
    session: u64,
    /// Sequence number of the last batch made.
    next_seq: AtomicU64,
    /// Batches sent but not acknowledged when their stream failed, oldest first.
    unacked: Mutex<VecDeque<Batch>>,
    queue: Mutex<VecDeque<pb::Event>>,
    ready: Notify,
    stats: UplinkStats,
    capacity: usize,
}

impl Shared {
    fn take(&self, max: usize) -> Vec<pb::Event> {
        let mut q = self.queue.locked();
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    fn len(&self) -> usize {
        self.queue.locked().len()
    }
}

/// A batch made from the queue: sent, then kept until acknowledged.
struct Batch {
    seq: u64,
    events: Vec<pb::Event>,
    /// The trace context of its `uplink.batch` span (empty: not traced), sent again with it.
    traceparent: String,
    /// Open from the first send to the acknowledgement (closed if the stream fails).
    span: Option<tracing::Span>,
}

impl Batch {
    fn to_pb(&self, shared: &Shared, mx_host: &str) -> pb::EventBatch {
        pb::EventBatch {
            seq: self.seq,
            session: shared.session,
            mx_host: mx_host.to_string(),
            events: self.events.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}

/// Handle used by the sources.
#[derive(Clone)]
pub struct Uplink {
    shared: Arc<Shared>,
}

impl Uplink {
    /// Starts the uplink task.
    pub fn start(cfg: UplinkConfig) -> Self {
        let shared = Arc::new(Shared {
            session: rand::random::<u64>().max(1),
            next_seq: AtomicU64::new(0),
            unacked: Mutex::new(VecDeque::new()),
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            stats: UplinkStats::default(),
            capacity: cfg.queue_capacity,
        });
        tokio::spawn(run(cfg, shared.clone()));
        Self { shared }
    }

    /// Queues an event; never blocks. When the queue is full the oldest event is dropped.
    pub fn push(&self, e: pb::Event) {
        {
            let mut q = self.shared.queue.locked();
            if q.len() >= self.shared.capacity {
                q.pop_front();
                self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics().uplink_events.add(1, &[kv("outcome", "dropped")]);
            }
            q.push_back(e);
        }
        self.shared.stats.pushed.fetch_add(1, Ordering::Relaxed);
        metrics().uplink_events.add(1, &[kv("outcome", "queued")]);
        self.shared.ready.notify_one();
    }

    pub fn stats(&self) -> &UplinkStats {
        &self.shared.stats
    }

    /// Events waiting to be sent (not counting those on the wire).
    pub fn queued(&self) -> usize {
        self.shared.len()
    }
}

async fn run(cfg: UplinkConfig, shared: Arc<Shared>) {
    mxrep_common::backoff::reconnect_forever("event uplink", &cfg.cluster, |addr| {
        let (cfg, shared, addr) = (&cfg, &shared, addr.to_string());
        async move {
            let r = session(cfg, &addr, shared).await;
            if r.is_err() {
                shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                metrics().uplink_reconnects.add(1, &[]);
            }
            r
        }
    })
    .await
}

/// One stream to one node, until it fails.
async fn session(cfg: &UplinkConfig, addr: &str, shared: &Arc<Shared>) -> Result<(), String> {
    let ch = mxrep_common::endpoint::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut client = AgentClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::EventBatch>(cfg.window);
    let mut acks = client
        .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("stream refused: {}", s.message()))?
        .into_inner();
    tracing::info!("uplink connected to {addr}");
    // Batches a failed stream left unacknowledged go first, with the same sequence numbers, so
    // the cluster counts each once even if the first copy was committed.
    let mut in_flight: VecDeque<Batch> = std::mem::take(&mut *shared.unacked.locked());
    for b in &in_flight {
        metrics().uplink_batches.add(1, &[kv("attempt", "resent")]);
        if tx.send(b.to_pb(shared, &cfg.mx_host)).await.is_err() {
            *shared.unacked.locked() = in_flight;
            return Err("the stream closed".into());
        }
    }
    let result = loop {
        let can_send = in_flight.len() < cfg.window;
        tokio::select! {
            ack = acks.message() => match ack {
                Ok(Some(a)) => {
                    match in_flight.front() {
                        Some(b) if b.seq == a.seq => { in_flight.pop_front(); }
                        _ => break Err(format!("acknowledgement for unknown batch {}", a.seq)),
                    }
                    shared.stats.acked.fetch_add(a.accepted as u64, Ordering::Relaxed);
                    shared.stats.refused.fetch_add(a.rejected as u64, Ordering::Relaxed);
                    let events = &metrics().uplink_events;
                    events.add(a.accepted.into(), &[kv("outcome", "acknowledged")]);
                    events.add(a.rejected.into(), &[kv("outcome", "refused")]);
                    for r in a.rejections.iter().take(5) {
                        tracing::warn!("cluster refused an event of batch {}: {}", a.seq, r.reason);
                    }
                }
                Ok(None) => break Err("the node closed the stream".into()),
                Err(s) => break Err(format!("stream failed: {}", s.message())),
            },
            _ = shared.ready.notified(), if can_send => {
                // Nothing in flight: send at once, so a decisive event at rest waits for no one.
                // Otherwise gather for at most max_delay, or until a full batch.
                if shared.len() < cfg.max_batch && !in_flight.is_empty() {
                    tokio::time::sleep(cfg.max_delay).await;
                }
                let events = shared.take(cfg.max_batch);
                if events.is_empty() {
                    continue;
                }
                if shared.len() > 0 {
                    shared.ready.notify_one();
                }
                let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
                let span = tracing::info_span!("uplink.batch", seq, events = events.len(), mx_host = %cfg.mx_host);
                let b = Batch { seq, events, traceparent: propagate::traceparent(&span), span: Some(span) };
                let batch = b.to_pb(shared, &cfg.mx_host);
                in_flight.push_back(b);
                metrics().uplink_batches.add(1, &[kv("attempt", "first")]);
                if tx.send(batch).await.is_err() {
                    break Err("the stream closed".into());
                }
            }
        }
    };
    // Whatever was not acknowledged is sent again, as the same batches, on the next stream.
    in_flight.iter_mut().for_each(|b| b.span = None);
    *shared.unacked.locked() = in_flight;
    result
}
