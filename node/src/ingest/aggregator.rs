//! Edge aggregation: sums the events this node receives for a short flush interval into per-key
//! deltas, keyed by (MX host, address, second), and proposes them as ONE `Observe` entry.
//!
//! Submissions arrive on a bounded channel: when the cluster is slow, senders wait, which is how
//! the agents' streams feel backpressure instead of the node buffering without bound. Each
//! submission is answered once the entry holding its events is committed (or the write failed).

use super::validate::{Delta, ValidEvent};
use crate::raft::Cluster;
use crate::state::{Command, Observation};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Events from one MX host, and where to say whether they were committed.
pub struct Submission {
    pub mx_host: String,
    pub events: Vec<ValidEvent>,
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
struct Pending {
    hosts: Vec<String>,
    deltas: BTreeMap<(u16, IpAddr, u32), Observation>,
    waiters: Vec<oneshot::Sender<Result<u64, String>>>,
}

impl Pending {
    fn add(&mut self, s: Submission) {
        let host = match self.hosts.iter().position(|h| *h == s.mx_host) {
            Some(i) => i,
            None => {
                self.hosts.push(s.mx_host);
                self.hosts.len() - 1
            }
        } as u16;
        for e in s.events {
            let o = self
                .deltas
                .entry((host, e.addr, e.at))
                .or_insert_with(|| Observation::new(e.addr, host, e.at));
            let field = match e.delta {
                Delta::Connect => &mut o.connects,
                Delta::NoMail => &mut o.no_mail,
                Delta::Reject => &mut o.rejects,
                Delta::Greylisted => &mut o.greylisted,
                Delta::AuthFailure => &mut o.auth_failures,
                Delta::Accepted => &mut o.accepted,
                Delta::ProtocolError => &mut o.protocol_errors,
                Delta::Nothing => continue,
            };
            *field = field.saturating_add(1);
        }
        self.waiters.push(s.done);
    }
}

async fn run(cluster: Cluster, cfg: AggregatorConfig, mut rx: mpsc::Receiver<Submission>) {
    while let Some(first) = rx.recv().await {
        let mut p = Pending::default();
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
            let cmd = Command::Observe {
                hosts: p.hosts,
                observations: p.deltas.into_values().collect(),
            };
            cluster
                .write(cmd)
                .await
                .map(|(index, _)| index)
                .map_err(|e| e.to_string())
        };
        for w in p.waiters {
            let _ = w.send(result.clone());
        }
    }
}
