//! Edge aggregation: sums the events this node receives for a short flush interval into per-key
//! deltas, keyed by (MX host, address, second), and proposes them as ONE `Observe` entry.
//!
//! Submissions arrive on a bounded channel: when the cluster is slow, senders wait, which is how
//! the agents' streams feel backpressure instead of the node buffering without bound. Each
//! submission is answered once the entry holding its events is committed (or the write failed).

use super::validate::ValidEvent;
use crate::metrics::node;
use crate::raft::Cluster;
use crate::state::{BatchId, Command, Observation};
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1::Verdict;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

/// Events from one agent batch, and where to say whether they were committed.
pub struct Submission {
    pub mx_host: String,
    /// The agent's session and the batch's sequence number: counted once however often sent.
    pub session: u64,
    pub seq: u64,
    pub events: Vec<ValidEvent>,
    /// The trace context of the batch's `ingest.batch` span (empty: not traced).
    pub traceparent: String,
    pub done: oneshot::Sender<Result<u64, String>>,
}

/// Tuning of the aggregator.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    pub flush_interval: Duration,
    /// Submissions that may wait for the aggregator before senders are held back.
    pub queue: usize,
    /// Distinct keys in one entry before it is flushed early.
    pub max_keys: usize,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(50),
            queue: 256,
            max_keys: 50_000,
        }
    }
}

/// Handle for submitting events to this node's aggregator.
#[derive(Clone)]
pub struct Aggregator {
    tx: mpsc::Sender<Submission>,
}

impl Aggregator {
    /// Starts the aggregation task for `cluster`.
    pub fn start(cluster: Cluster, cfg: AggregatorConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue);
        tokio::spawn(run(cluster, cfg, rx));
        Self { tx }
    }

    /// Queues a submission, waiting while the queue is full.
    pub async fn submit(&self, s: Submission) -> Result<(), String> {
        self.tx
            .send(s)
            .await
            .map_err(|_| "the node is shutting down".to_string())
    }
}

/// One flush being gathered.
#[derive(Default)]
struct Flush {
    hosts: Vec<String>,
    batches: Vec<BatchId>,
    /// Keyed by (batch, address, second): a batch stays separable, so a copy of it sent again
    /// after a failover can be skipped whole on apply.
    deltas: BTreeMap<(u32, IpAddr, u32), Observation>,
    waiters: Vec<oneshot::Sender<Result<u64, String>>>,
    /// The first traced batch's context: the entry joins that batch's trace.
    traceparent: String,
}

impl Flush {
    fn add(&mut self, s: Submission) {
        let host = match self.hosts.iter().position(|h| *h == s.mx_host) {
            Some(i) => i,
            None => {
                self.hosts.push(s.mx_host);
                self.hosts.len() - 1
            }
        } as u16;
        let batch = self.batches.len() as u32;
        self.batches.push(BatchId {
            host,
            session: s.session,
            seq: s.seq,
        });
        for e in s.events {
            let Some(v) = e.verdict else { continue };
            let o = self
                .deltas
                .entry((batch, e.addr, e.at))
                .or_insert_with(|| Observation::new(e.addr, batch, e.at));
            let n = match v.verdict {
                Verdict::Delivered => &mut o.delivered,
                Verdict::Neutral => &mut o.neutral,
                _ => &mut o.bad,
            };
            *n = n.saturating_add(1);
            o.messages = o.messages.saturating_add(v.messages);
            o.rejects = o.rejects.saturating_add(v.rejects);
            o.auth_failures = o.auth_failures.saturating_add(v.auth_failures);
            if o.verified_name.is_none() {
                o.verified_name = v.verified_name;
            }
        }
        self.waiters.push(s.done);
        if self.traceparent.is_empty() {
            self.traceparent = s.traceparent;
        }
    }
}

async fn run(cluster: Cluster, cfg: AggregatorConfig, mut rx: mpsc::Receiver<Submission>) {
    while let Some(first) = rx.recv().await {
        let mut p = Flush::default();
        p.add(first);
        let deadline = tokio::time::Instant::now() + cfg.flush_interval;
        while p.deltas.len() < cfg.max_keys && p.hosts.len() < u16::MAX as usize {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => p.add(s),
                Ok(None) | Err(_) => break,
            }
        }
        let result = if p.deltas.is_empty() {
            Ok(0)
        } else {
            let span = tracing::info_span!(
                "raft.write",
                batches = p.batches.len(),
                addresses = p.deltas.len()
            );
            propagate::set_parent(&span, &p.traceparent);
            let cmd = Command::Observe {
                hosts: p.hosts,
                batches: p.batches,
                observations: p.deltas.into_values().collect(),
            };
            let started = std::time::Instant::now();
            let written = cluster
                .write(Command::traced(propagate::traceparent(&span), cmd))
                .instrument(span)
                .await
                .map(|(index, _)| index)
                .map_err(|e| e.to_string());
            node()
                .write_duration
                .record(started.elapsed().as_secs_f64(), &[]);
            written
        };
        for w in p.waiters {
            let _ = w.send(result.clone());
        }
    }
}
