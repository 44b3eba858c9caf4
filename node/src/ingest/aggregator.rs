//! Edge aggregation: sums the events this node receives into per-key deltas, keyed by (MX host,
//! address, second), and proposes them as ONE `Observe` entry — group commit: with no entry in
//! flight, what arrived is proposed at once (an event at rest waits for no timer); while one is
//! being written, everything arriving meanwhile is gathered into the next, which is proposed the
//! moment the write ends (or when it holds `max_keys` keys and the write has ended).
//!
//! Decisions overtake bulk counting: a batch holding evidence against a sender (a bad
//! connection, a rejected recipient, a failed login) is gathered apart and proposed before the
//! delivered traffic gathered meanwhile, so under a flood of good mail a ban waits for at most
//! one bulk entry, not a queue of them.
//!
//! Submissions arrive on two bounded channels, one for batches with evidence and one for the
//! rest (an agent sends the two kinds on separate streams, so the bulk channel being full never
//! holds up a decisive batch). When the cluster is slow, senders wait, which is how the agents'
//! streams feel backpressure instead of the node buffering without bound. Each submission is
//! answered once the entry holding its events is committed (or the write failed).

use super::validate::{ValidEvent, VerdictDelta};
use crate::metrics::node;
use crate::raft::Cluster;
use crate::state::{BatchId, Command, Observation};
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1::Verdict;
use std::net::IpAddr;
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
    /// Bulk submissions that may wait for the aggregator before senders are held back.
    pub queue: usize,
    /// The same for submissions with evidence.
    pub urgent_queue: usize,
    /// Distinct keys in one entry before it is flushed early.
    pub max_keys: usize,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            queue: 256,
            urgent_queue: 64,
            max_keys: 10_000,
        }
    }
}

/// Handle for submitting events to this node's aggregator.
#[derive(Clone)]
pub struct Aggregator {
    /// Submissions with evidence against a sender.
    urgent: mpsc::Sender<Submission>,
    /// Everything else.
    bulk: mpsc::Sender<Submission>,
}

impl Aggregator {
    /// Starts the aggregation task for `cluster`.
    pub fn start(cluster: Cluster, cfg: AggregatorConfig) -> Self {
        let (urgent, urgent_rx) = mpsc::channel(cfg.urgent_queue);
        let (bulk, bulk_rx) = mpsc::channel(cfg.queue);
        tokio::spawn(run(cluster, cfg, urgent_rx, bulk_rx));
        Self { urgent, bulk }
    }

    /// Queues a submission in its channel, waiting while that channel is full.
    pub async fn submit(&self, s: Submission) -> Result<(), String> {
        let channel = if s.is_urgent() {
            &self.urgent
        } else {
            &self.bulk
        };
        channel
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
    /// One per (batch, address, second), in that order: a batch stays separable, so a copy of
    /// it sent again after a failover can be skipped whole on apply.
    deltas: Vec<Observation>,
    waiters: Vec<oneshot::Sender<Result<u64, String>>>,
    /// The first traced batch's context: the entry joins that batch's trace.
    traceparent: String,
}

impl Submission {
    /// Does this batch carry evidence that may decide a ban?
    fn is_urgent(&self) -> bool {
        self.events.iter().any(|e| {
            e.verdict.as_ref().is_some_and(|v| {
                !matches!(v.verdict, Verdict::Delivered | Verdict::Neutral)
                    || v.rejects > 0
                    || v.auth_failures > 0
            })
        })
    }
}

impl Flush {
    fn is_full(&self, max_keys: usize) -> bool {
        self.deltas.len() >= max_keys || self.hosts.len() >= u16::MAX as usize
    }

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
        // A batch's verdicts in (address, second) order, its arrival order among equals (the
        // first verified name stays): summed into one delta per key as the run of equals ends.
        let mut events: Vec<(IpAddr, u32, VerdictDelta)> = s
            .events
            .into_iter()
            .filter_map(|e| Some((e.addr, e.at, e.verdict?)))
            .collect();
        events.sort_by_key(|(addr, at, _)| (*addr, *at));
        let first = self.deltas.len();
        for (addr, at, v) in events {
            let same = self.deltas[first..]
                .last()
                .is_some_and(|o| o.addr == addr && o.at == at);
            if !same {
                self.deltas.push(Observation::new(addr, batch, at));
            }
            let o = self.deltas.last_mut().expect("pushed above");
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

async fn run(
    cluster: Cluster,
    cfg: AggregatorConfig,
    mut urgent_rx: mpsc::Receiver<Submission>,
    mut bulk_rx: mpsc::Receiver<Submission>,
) {
    let (mut urgent, mut bulk) = (Flush::default(), Flush::default());
    let mut in_flight: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        // A full flush waits for the write in flight before taking more; evidence is taken first.
        tokio::select! {
            biased;
            s = urgent_rx.recv(), if !urgent.is_full(cfg.max_keys) => match s {
                Some(s) => urgent.add(s),
                None => break,
            },
            s = bulk_rx.recv(), if !bulk.is_full(cfg.max_keys) => match s {
                Some(s) => bulk.add(s),
                None => break,
            },
            _ = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
            }
        }
        if in_flight.is_none() {
            let next = match (urgent.waiters.is_empty(), bulk.waiters.is_empty()) {
                (false, _) => std::mem::take(&mut urgent),
                (true, false) => std::mem::take(&mut bulk),
                (true, true) => continue,
            };
            in_flight = Some(tokio::spawn(write(cluster.clone(), next)));
        }
    }
    if let Some(h) = in_flight {
        let _ = h.await;
    }
    for rest in [urgent, bulk] {
        if !rest.waiters.is_empty() {
            write(cluster.clone(), rest).await;
        }
    }
}

/// Proposes one flush and answers its waiters.
async fn write(cluster: Cluster, p: Flush) {
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
            observations: p.deltas,
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

#[cfg(test)]
mod tests {
    use super::{Flush, Submission, ValidEvent, VerdictDelta};
    use mxrep_proto::v1::Verdict;

    fn event(addr: &str, at: u32, verdict: Verdict, name: Option<&str>) -> ValidEvent {
        ValidEvent {
            addr: addr.parse().unwrap(),
            at,
            verdict: Some(VerdictDelta {
                verdict,
                messages: u32::from(verdict == Verdict::Delivered),
                rejects: 0,
                auth_failures: 0,
                verified_name: name.map(str::to_string),
            }),
        }
    }

    fn submission(seq: u64, events: Vec<ValidEvent>) -> Submission {
        Submission {
            mx_host: "mx1".into(),
            session: 7,
            seq,
            events,
            traceparent: String::new(),
            done: tokio::sync::oneshot::channel().0,
        }
    }

    #[test]
    fn a_batch_is_summed_per_address_and_second_in_key_order_and_batches_stay_apart() {
        let mut f = Flush::default();
        f.add(submission(
            1,
            vec![
                event("192.0.2.9", 10, Verdict::Delivered, Some("first.example")),
                event("192.0.2.1", 10, Verdict::Bad, None),
                event("192.0.2.9", 10, Verdict::Delivered, Some("second.example")),
                event("192.0.2.9", 9, Verdict::Neutral, None),
                ValidEvent {
                    addr: "192.0.2.1".parse().unwrap(),
                    at: 10,
                    verdict: None,
                },
                event("192.0.2.1", 10, Verdict::Bad, None),
            ],
        ));
        f.add(submission(
            2,
            vec![event("192.0.2.1", 10, Verdict::Bad, None)],
        ));
        let keys: Vec<(u32, String, u32)> = f
            .deltas
            .iter()
            .map(|o| (o.batch, o.addr.to_string(), o.at))
            .collect();
        let want = [
            (0, "192.0.2.1", 10),
            (0, "192.0.2.9", 9),
            (0, "192.0.2.9", 10),
            (1, "192.0.2.1", 10),
        ];
        let want: Vec<(u32, String, u32)> = want
            .iter()
            .map(|(b, a, t)| (*b, a.to_string(), *t))
            .collect();
        assert_eq!(keys, want);
        assert_eq!(f.deltas[0].bad, 2);
        assert_eq!(f.deltas[1].neutral, 1);
        let delivered = &f.deltas[2];
        assert_eq!((delivered.delivered, delivered.messages), (2, 2));
        assert_eq!(delivered.verified_name.as_deref(), Some("first.example"));
        assert_eq!(f.deltas[3].bad, 1);
        assert_eq!(f.batches.len(), 2);
    }
}
