//! The Raft network, server side: the `Peer` gRPC service on the peer port.
//!
//! It hands openraft's RPCs to the local `Raft`, runs operations that followers forward to this
//! node as leader, and answers `Hello` so the node that initialises the cluster can learn who is
//! there. Payloads are openraft's types in the [`codec`](super::codec) encoding; a malformed one is refused with
//! `InvalidArgument`, never a panic.

use super::cluster::{Cluster, ClusterOp};
use super::codec;
use super::log_store::SledLogStore;
use super::types::{NodeId, TypeConfig};
use mxrep_proto::v1::peer_server::Peer;
use mxrep_proto::v1::{HelloRequest, HelloResponse, RaftMessage, SnapshotChunk};
use openraft::raft::InstallSnapshotRequest;
use serde::{de::DeserializeOwned, Serialize};
use tonic::{Request, Response, Status};

/// The `Peer` service of one node.
pub struct PeerService {
    pub cluster: Cluster,
    pub log: SledLogStore,
    pub id: NodeId,
    pub api_addr: String,
    pub peer_addr: String,
}

fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    codec::decode(bytes).map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    codec::encode(value)
        .map(|payload| Response::new(RaftMessage { payload }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = parse(&req.into_inner().payload, "append-entries request")?;
        reply(&self.cluster.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = parse(&req.into_inner().payload, "vote request")?;
        reply(&self.cluster.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotChunk>,
    ) -> Result<Response<RaftMessage>, Status> {
        let c = req.into_inner();
        let rpc = InstallSnapshotRequest::<TypeConfig> {
            vote: parse(&c.vote, "snapshot vote")?,
            meta: parse(&c.meta, "snapshot meta")?,
            offset: c.offset,
            data: c.data,
            done: c.done,
        };
        reply(&self.cluster.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let op: ClusterOp = parse(&req.into_inner().payload, "forwarded operation")?;
        reply(&self.cluster.execute_local(op).await)
    }

    async fn hello(&self, _req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        Ok(Response::new(HelloResponse {
            id: self.id,
            api_addr: self.api_addr.clone(),
            peer_addr: self.peer_addr.clone(),
            initialized: self.log.has_state(),
        }))
    }
}
