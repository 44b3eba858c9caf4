//! The `Agent` gRPC service: events up from MX hosts, the ban list down to them.
//!
//! `WatchBans` is served from this node's applied state: a snapshot of the ban set, then every
//! change in log order as it is applied. Event ingestion (`ReportEvents`) arrives with the
//! reputation engine; until then the node says so plainly instead of dropping events.

use super::convert::ban_to_pb;
use crate::raft::Cluster;
use crate::state::BanChangeKind;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::agent_server::Agent;
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

pub struct AgentService {
    cluster: Cluster,
}

impl AgentService {
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster }
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

#[tonic::async_trait]
impl Agent for AgentService {
    type ReportEventsStream = BoxStream<pb::EventAck>;
    type WatchBansStream = BoxStream<pb::BanUpdate>;

    async fn report_events(
        &self,
        _req: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::ReportEventsStream>, Status> {
        Err(Status::unimplemented(
            "event ingestion is not available in this version of mxrep-node",
        ))
    }

    async fn watch_bans(
        &self,
        req: Request<pb::WatchBansRequest>,
    ) -> Result<Response<Self::WatchBansStream>, Status> {
        let from = req.into_inner().from_version;
        // Subscribe before reading the snapshot so no change falls between the two.
        let mut changes = self.cluster.subscribe_changes();
        let snapshot = {
            let a = self.cluster.state.read().unwrap_or_else(|p| p.into_inner());
            pb::BanSnapshot {
                version: a.state.version,
                bans: a.state.bans.values().map(ban_to_pb).collect(),
            }
        };
        let start = snapshot.version;
        let stream = async_stream(move |tx| async move {
            if from != start {
                let first = pb::BanUpdate {
                    group: 0,
                    update: Some(pb::ban_update::Update::Snapshot(snapshot)),
                };
                if tx.send(Ok(first)).await.is_err() {
                    return;
                }
            }
            loop {
                match changes.recv().await {
                    Ok((index, resp)) if index > start => {
                        for c in resp.changes {
                            let u = pb::BanUpdate {
                                group: 0,
                                update: Some(pb::ban_update::Update::Change(pb::BanChange {
                                    version: index,
                                    kind: change_kind(c.kind) as i32,
                                    ban: Some(ban_to_pb(&c.ban)),
                                })),
                            };
                            if tx.send(Ok(u)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watcher fell {n} changes behind; reconnect to resync"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a bounded channel.
fn async_stream<T, F, Fut>(f: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
