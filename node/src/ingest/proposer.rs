//! Background proposals: things the cluster must remember but nobody waits for (greylisting
//! sightings, DNS list answers) are queued here and proposed as one Raft entry per flush (50 ms).
//! The queue is bounded: when it is full an item is dropped and counted, never waited for.

use crate::raft::Cluster;
use crate::state::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long items are gathered into one entry.
const FLUSH: Duration = Duration::from_millis(50);
/// Items that may wait.
const QUEUE: usize = 100_000;
/// Most items in one entry.
const MAX_ENTRY: usize = 20_000;

/// Handle for queuing items of one kind.
pub struct Proposer<T> {
    tx: mpsc::Sender<T>,
    /// Items dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl<T> Clone for Proposer<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

impl<T: Send + 'static> Proposer<T> {
    /// Starts proposing `entry(items)` for `cluster`; `what` names the items in warnings.
    pub fn start(cluster: Cluster, what: &'static str, entry: fn(Vec<T>) -> Command) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(cluster, rx, what, entry));
        Self {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Queues an item; never waits.
    pub fn push(&self, item: T) {
        if self.tx.try_send(item).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run<T>(
    cluster: Cluster,
    mut rx: mpsc::Receiver<T>,
    what: &'static str,
    entry: fn(Vec<T>) -> Command,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + FLUSH;
        while batch.len() < MAX_ENTRY {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len();
        if let Err(e) = cluster.write(entry(batch)).await {
            tracing::warn!("{n} {what} not recorded: {e}");
        }
    }
}
