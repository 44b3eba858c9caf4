//! The `Agent` gRPC service: events up from MX hosts, the ban list down to them.
//!
//! `ReportEvents` validates each batch, hands the good events to this node's aggregator, and
//! acknowledges the batch, in order, once they are committed; a slow cluster holds the stream back
//! (bounded queues all the way), it never buffers without bound. `WatchBans` is served from this
//! node's applied state: a snapshot of the ban set, or — when the agent already holds a version
//! this node still has the history for — only the changes after it, then every change as applied.

use super::convert::ban_to_pb;
use crate::ingest::{validate_batch, Aggregator, Limits, Submission};
use crate::raft::Cluster;
use crate::state::{BanChange, BanChangeKind};
use mxrep_common::clock::unix_ms;
use mxrep_common::lock::RwLockExt as _;
use mxrep_common::shutdown::Shutdown;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::agent_server::Agent;
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Batches of one stream that may await their commit at once.
const IN_FLIGHT_BATCHES: usize = 64;

/// The `Agent` service of one node.
pub struct AgentService {
    /// This node's view of the cluster: applied state and the change feed.
    cluster: Cluster,
    /// Where valid events go to be summed into the next Raft entry.
    aggregator: Aggregator,
    /// Bounds every batch is checked against.
    limits: Limits,
    /// Fired when the node stops: every open stream ends, so the server can drain.
    shutdown: Shutdown,
}

impl AgentService {
    pub fn new(cluster: Cluster, aggregator: Aggregator, shutdown: Shutdown) -> Self {
        Self {
            cluster,
            aggregator,
            limits: Limits::default(),
            shutdown,
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn change_kind(k: BanChangeKind) -> pb::BanChangeKind {
    match k {
        BanChangeKind::Added => pb::BanChangeKind::Added,
        BanChangeKind::Extended => pb::BanChangeKind::Extended,
        BanChangeKind::Removed => pb::BanChangeKind::Removed,
        BanChangeKind::Expired => pb::BanChangeKind::Expired,
    }
}

fn change_update(version: u64, c: &BanChange) -> pb::BanUpdate {
    pb::BanUpdate {
        group: 0,
        update: Some(pb::ban_update::Update::Change(pb::BanChange {
            version,
            kind: change_kind(c.kind) as i32,
            ban: Some(ban_to_pb(&c.ban)),
        })),
    }
}

/// A batch waiting for its commit, in stream order.
struct Pending {
    seq: u64,
    accepted: u32,
    rejected: u32,
    rejections: Vec<pb::EventRejection>,
    committed: Option<oneshot::Receiver<Result<u64, String>>>,
}

#[tonic::async_trait]
impl Agent for AgentService {
    type ReportEventsStream = BoxStream<pb::EventAck>;
    type WatchBansStream = BoxStream<pb::BanUpdate>;

    async fn report_events(
        &self,
        req: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::ReportEventsStream>, Status> {
        let mut incoming = req.into_inner();
        let (ack_tx, ack_rx) = mpsc::channel::<Result<pb::EventAck, Status>>(IN_FLIGHT_BATCHES);
        let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(IN_FLIGHT_BATCHES);
        let aggregator = self.aggregator.clone();
        let limits = self.limits.clone();

        // Reader: validates and submits, held back when the aggregator or the acker is full.
        let reader_acks = ack_tx.clone();
        let stopping = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    m = incoming.message() => m,
                    _ = stopping.clone().wait() => {
                        let _ = reader_acks.send(Err(Status::unavailable("the node is stopping"))).await;
                        return;
                    }
                };
                let batch = match next {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(s) => {
                        tracing::debug!("event stream ended: {s}");
                        return;
                    }
                };
                let pending = match validate_batch(&batch, unix_ms(), &limits) {
                    Err(reason) => Pending {
                        seq: batch.seq,
                        accepted: 0,
                        rejected: batch.events.len() as u32,
                        rejections: vec![pb::EventRejection {
                            index: u32::MAX,
                            reason: format!("whole batch refused: {reason}"),
                        }],
                        committed: None,
                    },
                    Ok((good, bad)) => {
                        let accepted = good.len() as u32;
                        let committed = if good.is_empty() {
                            None
                        } else {
                            let (done, rx) = oneshot::channel();
                            let sub = Submission {
                                mx_host: batch.mx_host.trim().to_string(),
                                session: batch.session,
                                seq: batch.seq,
                                events: good,
                                done,
                            };
                            if let Err(e) = aggregator.submit(sub).await {
                                let _ = reader_acks.send(Err(Status::unavailable(e))).await;
                                return;
                            }
                            Some(rx)
                        };
                        Pending {
                            seq: batch.seq,
                            accepted,
                            rejected: bad.len() as u32,
                            rejections: bad,
                            committed,
                        }
                    }
                };
                if pending_tx.send(pending).await.is_err() {
                    return;
                }
            }
        });

        // Acker: answers batches in order, once committed.
        tokio::spawn(async move {
            while let Some(p) = pending_rx.recv().await {
                if let Some(rx) = p.committed {
                    match rx.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            let _ = ack_tx
                                .send(Err(Status::unavailable(format!(
                                    "events of batch {} not committed: {e}",
                                    p.seq
                                ))))
                                .await;
                            return;
                        }
                        Err(_) => return,
                    }
                }
                let ack = pb::EventAck {
                    seq: p.seq,
                    accepted: p.accepted,
                    rejected: p.rejected,
                    rejections: p.rejections,
                };
                if ack_tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(ack_rx),
        )))
    }

    async fn watch_bans(
        &self,
        req: Request<pb::WatchBansRequest>,
    ) -> Result<Response<Self::WatchBansStream>, Status> {
        let from = req.into_inner().from_version;
        // Subscribe before reading so no change falls between the read and the live feed.
        let mut live = self.cluster.subscribe_changes();
        let (first, mut sent) = {
            let a = self.cluster.state.read_locked();
            let version = a.state.version;
            let resumed = (from > 0 && from <= version)
                .then(|| a.history.since(from))
                .flatten();
            match resumed {
                Some(changes) => (
                    changes
                        .iter()
                        .map(|(v, c)| change_update(*v, c))
                        .collect::<Vec<_>>(),
                    version,
                ),
                None => (
                    vec![pb::BanUpdate {
                        group: 0,
                        update: Some(pb::ban_update::Update::Snapshot(pb::BanSnapshot {
                            version,
                            bans: a.state.bans.values().map(ban_to_pb).collect(),
                        })),
                    }],
                    version,
                ),
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let stopping = self.shutdown.clone();
        tokio::spawn(async move {
            for u in first {
                if tx.send(Ok(u)).await.is_err() {
                    return;
                }
            }
            loop {
                let next = tokio::select! {
                    n = live.recv() => n,
                    _ = stopping.clone().wait() => {
                        let _ = tx.send(Err(Status::unavailable("the node is stopping"))).await;
                        return;
                    }
                };
                match next {
                    Ok((index, resp)) if index > sent => {
                        for c in &resp.changes {
                            if tx.send(Ok(change_update(index, c))).await.is_err() {
                                return;
                            }
                        }
                        sent = index;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watcher fell {n} changes behind; resume from version {sent}"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
