//! Sightings the agent answered itself, sent to the cluster to remember: gathered for up to
//! [`GATHER`] (or [`MAX_BATCH`] of them) and sent as one `ReportSightings`. The queue is bounded
//! and a failed report is dropped and counted, never retried into a backlog: a triplet the
//! cluster missed is deferred again on its retry, as a greylister that lost its database does.

use mxrep_proto::v1 as pb;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long sightings are gathered into one report.
const GATHER: Duration = Duration::from_millis(20);
/// Most sightings in one report (the node accepts up to 20,000).
const MAX_BATCH: usize = 5_000;
/// Sightings that may wait.
const QUEUE: usize = 100_000;
/// Longest a report waits for the node.
const REPORT_DEADLINE: Duration = Duration::from_secs(2);

/// Sightings lost: the queue was full, or the report failed.
#[derive(Debug, Default)]
pub struct ReportStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// Handle for queuing sightings.
pub struct SightingReporter {
    tx: mpsc::Sender<pb::GreylistSighting>,
    pub stats: Arc<ReportStats>,
}

impl SightingReporter {
    /// Starts reporting to `nodes` (in turn, moving on after a failure).
    pub fn start(nodes: Vec<String>, mx_host: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(ReportStats::default());
        tokio::spawn(run(nodes, mx_host, rx, stats.clone()));
        Self { tx, stats }
    }

    pub fn push(&self, triplet: u64, network: String) {
        let s = pb::GreylistSighting { triplet, network };
        if self.tx.try_send(s).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run(
    nodes: Vec<String>,
    mx_host: String,
    mut rx: mpsc::Receiver<pb::GreylistSighting>,
    stats: Arc<ReportStats>,
) {
    let mut node = 0usize;
    let mut channel = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + GATHER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                _ => break,
            }
        }
        let n = batch.len() as u64;
        let Some(addr) = nodes.get(node % nodes.len().max(1)) else {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
            continue;
        };
        let ch = match &channel {
            Some(ch) => ch,
            None => match mxrep_common::endpoint::endpoint(addr) {
                Ok(e) => channel.insert(e.connect_lazy()),
                Err(_) => {
                    node = node.wrapping_add(1);
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let report = pb::SightingBatch {
            sightings: batch,
            mx_host: mx_host.clone(),
        };
        let mut client = pb::agent_client::AgentClient::new(ch.clone());
        let call = client.report_sightings(report);
        match tokio::time::timeout(REPORT_DEADLINE, call).await {
            Ok(Ok(_)) => {
                stats.sent.fetch_add(n, Ordering::Relaxed);
            }
            failed => {
                let why = match failed {
                    Ok(Err(s)) => s.message().to_string(),
                    _ => format!("no answer within {REPORT_DEADLINE:?}"),
                };
                let lost = stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
                tracing::warn!("greylisting: {n} sightings not reported to {addr}: {why} ({lost} lost so far; their retries are deferred again)");
                node = node.wrapping_add(1);
                channel = None;
            }
        }
    }
}
