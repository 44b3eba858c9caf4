//! The `Agent` gRPC service: events up from MX hosts, the ban list down to them.
//!
//! `ReportEvents` is the ingest stream (`crate::ingest::stream`). `WatchBans` follows this node's
//! ban feed (`crate::raft::ban_feed`): a snapshot of the ban set, or — when the agent already
//! holds a version this node still has the history for — only the changes after it, then every
//! change as applied. Both end when the node stops. Greylisting (`CheckGreylist`, `WatchGreylist`,
//! `ReportSightings`) is `super::greylist`.

use super::convert::ban_to_pb;
use crate::ingest::proposer::Proposer;
use crate::ingest::{Aggregator, Limits};
use crate::raft::ban_feed::Start;
use crate::raft::Cluster;
use crate::state::greylist::Sighting;
use crate::state::Command;
use crate::state::{BanChange, BanChangeKind};
use mxrep_common::shutdown::Shutdown;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::agent_server::Agent;
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

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
    /// Where greylisting sightings go to be proposed in the background.
    sightings: Proposer<Sighting>,
}

impl AgentService {
    pub fn new(cluster: Cluster, aggregator: Aggregator, shutdown: Shutdown) -> Self {
        Self {
            sightings: Proposer::start(cluster.clone(), "greylisting sightings", Command::Greylist),
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

fn change_update(version: u64, c: &BanChange, traceparent: &str) -> pb::BanUpdate {
    pb::BanUpdate {
        group: 0,
        update: Some(pb::ban_update::Update::Change(pb::BanChange {
            version,
            kind: change_kind(c.kind) as i32,
            ban: Some(ban_to_pb(&c.ban)),
            traceparent: traceparent.to_string(),
        })),
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    type ReportEventsStream = BoxStream<pb::EventAck>;
    type WatchBansStream = BoxStream<pb::BanUpdate>;
    type WatchGreylistStream = BoxStream<pb::GreylistKeys>;

    async fn report_events(
        &self,
        req: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::ReportEventsStream>, Status> {
        let acks = crate::ingest::stream::serve(
            req.into_inner(),
            self.aggregator.clone(),
            self.limits.clone(),
            self.shutdown.clone(),
        );
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(acks),
        )))
    }

    async fn watch_bans(
        &self,
        req: Request<pb::WatchBansRequest>,
    ) -> Result<Response<Self::WatchBansStream>, Status> {
        let from = req.into_inner().from_version;
        let sub = self.cluster.subscribe_bans(from);
        let first: Vec<pb::BanUpdate> = match sub.start {
            Start::Resume(changes) => changes
                .iter()
                .map(|(v, c)| change_update(*v, c, ""))
                .collect(),
            Start::Snapshot { version, bans } => vec![pb::BanUpdate {
                group: 0,
                update: Some(pb::ban_update::Update::Snapshot(pb::BanSnapshot {
                    version,
                    bans: bans.iter().map(ban_to_pb).collect(),
                })),
            }],
        };
        let (mut live, mut sent) = (sub.live, sub.version);
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
                    Ok(p) if p.index > sent => {
                        for c in &p.response.changes {
                            let update = change_update(p.index, c, &p.traceparent);
                            if tx.send(Ok(update)).await.is_err() {
                                return;
                            }
                        }
                        sent = p.index;
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

    async fn check_greylist(
        &self,
        req: Request<pb::GreylistRequest>,
    ) -> Result<Response<pb::GreylistReply>, Status> {
        let reply = super::greylist::check(&self.cluster, &self.sightings, req.get_ref())?;
        let answer = match reply.action() {
            pb::GreylistAction::Defer => "defer",
            pb::GreylistAction::Pass => "pass",
            _ => "disabled",
        };
        crate::metrics::node()
            .greylist_checks
            .add(1, &[crate::metrics::kv("answer", answer)]);
        Ok(Response::new(reply))
    }

    async fn watch_greylist(
        &self,
        _req: Request<pb::WatchGreylistRequest>,
    ) -> Result<Response<Self::WatchGreylistStream>, Status> {
        let rx = super::greylist::watch(&self.cluster, self.shutdown.clone());
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn report_sightings(
        &self,
        req: Request<pb::SightingBatch>,
    ) -> Result<Response<pb::SightingAck>, Status> {
        let accepted = super::greylist::report(&self.sightings, req.into_inner())?;
        Ok(Response::new(pb::SightingAck { accepted }))
    }

    async fn report_drops(
        &self,
        req: Request<pb::DropCounts>,
    ) -> Result<Response<pb::DropAck>, Status> {
        super::report::record_drops(&self.cluster, req.into_inner())
            .await
            .map(Response::new)
    }
}
