//! Greylisting sightings into the log: the policy answers never wait for a commit, so the
//! triplets they saw are queued here and proposed in the background, one Raft entry per flush
//! (50 ms), long before the sender retries (minutes later). The queue is bounded: when it is
//! full a sighting is dropped and counted (the sender is greylisted once more, nothing worse).

use crate::raft::Cluster;
use crate::state::greylist::Sighting;
use crate::state::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long sightings are gathered into one entry.
const FLUSH: Duration = Duration::from_millis(50);
/// Sightings that may wait.
const QUEUE: usize = 100_000;
/// Most sightings in one entry.
const MAX_ENTRY: usize = 20_000;

/// Handle for queuing sightings.
#[derive(Clone)]
pub struct Sightings {
    tx: mpsc::Sender<Sighting>,
    /// Sightings dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl Sightings {
    /// Starts the background proposer for `cluster`.
    pub fn start(cluster: Cluster) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(cluster, rx));
        Self {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Queues a sighting; never waits.
    pub fn push(&self, s: Sighting) {
        if self.tx.try_send(s).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run(cluster: Cluster, mut rx: mpsc::Receiver<Sighting>) {
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
        if let Err(e) = cluster.write(Command::Greylist(batch)).await {
            tracing::warn!("{n} greylisting sightings not recorded: {e}");
        }
    }
}
