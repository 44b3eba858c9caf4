//! The uplink: events from the sources to the cluster, in batches (at most 500 events or 20 ms),
//! over long-lived `ReportEvents` streams with acknowledgements.
//!
//! Two lanes, each its own stream: events that may decide a ban ([`priority::is_decisive`])
//! travel in the decisive lane, delivered traffic in the bulk lane — under a flood of good mail a
//! ban decision does not queue behind a window of bulk batches, here or on the node.
//!
//! Sources call [`Uplink::push`], which never blocks: events wait in a bounded queue, and when
//! it is full the oldest are dropped and counted. A batch leaves the agent's hands only when the
//! cluster acknowledges it; on any failure the unacknowledged batches are sent again first, as
//! the same batches (lane session and sequence number), to the next cluster address after a
//! backoff with jitter — so the cluster, which remembers the batches it applied, counts each once.
//!
//! Layout: `lane` (a queue, its session and unacknowledged batches), `stream` (one lane's stream
//! and its reconnect loop), `priority` (which events are decisive).

mod lane;
pub mod priority;
mod stream;

use lane::Lane;
use mxrep_proto::v1 as pb;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Tuning of the uplink.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// Cluster API addresses, tried in turn.
    pub cluster: Vec<String>,
    /// This MX host's name, sent with every batch.
    pub mx_host: String,
    /// Events each lane's queue holds before the oldest is dropped.
    pub queue_capacity: usize,
    /// Most events in one batch.
    pub max_batch: usize,
    /// Longest a batch gathers while another is in flight.
    pub max_delay: Duration,
    /// Unacknowledged batches on a lane's stream.
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

/// Counters an operator (and a test) can read, over both lanes.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Events queued by the sources.
    pub pushed: AtomicU64,
    /// Events dropped from a full queue.
    pub dropped: AtomicU64,
    /// Events the cluster acknowledged as committed.
    pub acked: AtomicU64,
    /// Events the cluster refused as invalid.
    pub refused: AtomicU64,
    /// Streams that failed and were started again.
    pub reconnects: AtomicU64,
}

impl UplinkStats {
    /// "N read, N acknowledged, N refused by the cluster, N dropped (queue full)", for logs.
    pub fn summary(&self) -> String {
        format!(
            "{} read, {} acknowledged, {} refused by the cluster, {} dropped (queue full)",
            self.pushed.load(Ordering::Relaxed),
            self.acked.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Handle used by the sources.
#[derive(Clone)]
pub struct Uplink {
    /// Evidence against senders.
    decisive: Arc<Lane>,
    /// Everything else.
    bulk: Arc<Lane>,
    stats: Arc<UplinkStats>,
}

impl Uplink {
    /// Starts both lanes' tasks.
    pub fn start(cfg: UplinkConfig) -> Self {
        let stats = Arc::new(UplinkStats::default());
        let cfg = Arc::new(cfg);
        let lane = |name| Arc::new(Lane::new(name, cfg.queue_capacity, stats.clone()));
        let (decisive, bulk) = (lane("decisive"), lane("bulk"));
        tokio::spawn(stream::run(cfg.clone(), decisive.clone()));
        tokio::spawn(stream::run(cfg, bulk.clone()));
        Self {
            decisive,
            bulk,
            stats,
        }
    }

    /// Queues an event in its lane; never blocks. When the lane's queue is full its oldest event
    /// is dropped and counted.
    pub fn push(&self, e: pb::Event) {
        if priority::is_decisive(&e) {
            self.decisive.push(e)
        } else {
            self.bulk.push(e)
        }
    }

    pub fn stats(&self) -> &UplinkStats {
        &self.stats
    }

    /// Waits until every event pushed so far is acknowledged, refused or dropped, up to `limit`;
    /// returns how many were still outstanding (0: all accounted for).
    pub async fn drain(&self, limit: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let s = &self.stats;
            let done = s.acked.load(Ordering::SeqCst)
                + s.refused.load(Ordering::SeqCst)
                + s.dropped.load(Ordering::SeqCst);
            let outstanding = s.pushed.load(Ordering::SeqCst).saturating_sub(done);
            if outstanding == 0 || tokio::time::Instant::now() >= deadline {
                return outstanding;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Events waiting to be sent (not counting those on the wire).
    pub fn queued(&self) -> usize {
        self.decisive.len() + self.bulk.len()
    }
}
