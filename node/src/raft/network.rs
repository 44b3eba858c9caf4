//! The Raft network, client side: openraft's RPCs sent to peers over tonic (the `Peer` service).
//!
//! One tonic `Channel` per peer address, created lazily and kept for the life of the process, so
//! heartbeats and replication reuse one HTTP/2 connection. Every call is bounded by openraft's
//! time-to-live for it; a peer that cannot be reached is reported as `Unreachable`, so openraft
//! backs off instead of hammering it.

use super::append_budget::AppendBudgets;
use super::codec;
use super::types::{MxNode, NodeId, TypeConfig};
use mxrep_common::lock::MutexExt as _;
use mxrep_proto::v1::peer_client::PeerClient;
use mxrep_proto::v1::{RaftMessage, SnapshotChunk};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Shared pool of peer channels, keyed by peer address.
#[derive(Clone, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl PeerChannels {
    /// A client for the peer service at `addr`, reusing the pooled connection.
    pub fn client(&self, addr: &str) -> Result<PeerClient<Channel>, tonic::transport::Error> {
        let mut map = self.channels.locked();
        let ch = match map.get(addr) {
            Some(ch) => ch.clone(),
            None => {
                // Raft has its own timeouts: pings only keep idle connections alive here.
                let ch = mxrep_common::endpoint::endpoint(addr)?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(20))
                    .connect_lazy();
                map.insert(addr.to_string(), ch.clone());
                ch
            }
        };
        Ok(PeerClient::new(ch).max_decoding_message_size(64 << 20))
    }
}

/// The factory openraft asks for a connection to each peer.
#[derive(Clone, Default)]
pub struct PeerNetwork {
    pub channels: PeerChannels,
    /// Bytes of entries each peer is sent per AppendEntries.
    pub budgets: AppendBudgets,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &MxNode) -> Self::Network {
        PeerConnection {
            target,
            client: self
                .channels
                .client(&node.peer_addr)
                .map_err(|e| e.to_string()),
            budgets: self.budgets.clone(),
        }
    }
}

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
    client: Result<PeerClient<Channel>, String>,
    budgets: AppendBudgets,
}

/// An AppendEntries on its way: unless it is answered, it counts as timed out against the peer's
/// budget when dropped (openraft drops the call when the heartbeat interval has passed).
struct InFlight<'a> {
    budgets: &'a AppendBudgets,
    peer: NodeId,
    sent: usize,
    started: Instant,
    answered: bool,
}

impl InFlight<'_> {
    /// The peer could not be reached at all: that says nothing of how much it takes in.
    fn unreachable(mut self) {
        self.answered = true;
    }

    fn answered(mut self, limit: Duration) {
        self.answered = true;
        self.budgets
            .answered(self.peer, self.sent, self.started.elapsed(), limit);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.budgets.timed_out(self.peer, self.sent);
        }
    }
}

/// Error raised while talking to a peer, before openraft's own error types apply.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    #[error("peer call failed: {0}")]
    Failed(String),
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, MxNode, RaftError<NodeId, E>>>;

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, MxNode, RaftError<NodeId, E>> {
        match &self {
            CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&self)),
            CallError::Failed(_) => RPCError::Network(NetworkError::new(&self)),
        }
    }
}

fn status_error(s: tonic::Status) -> CallError {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => CallError::Unreachable(s.to_string()),
        _ => CallError::Failed(s.to_string()),
    }
}

/// Decodes a peer's answer: `Ok(resp)` or the remote Raft error.
fn decode<T: DeserializeOwned, E: DeserializeOwned + std::error::Error>(
    target: NodeId,
    msg: RaftMessage,
) -> RpcResult<T, E> {
    let res: Result<T, RaftError<NodeId, E>> = codec::decode(&msg.payload)
        .map_err(|e| CallError::Failed(format!("bad answer from peer: {e}")).into_rpc())?;
    res.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

fn encode<T: Serialize>(value: &T) -> Result<RaftMessage, CallError> {
    codec::encode(value)
        .map(|payload| RaftMessage { payload })
        .map_err(|e| CallError::Failed(e.to_string()))
}

impl PeerConnection {
    fn client(&self) -> Result<PeerClient<Channel>, CallError> {
        self.client.clone().map_err(CallError::Unreachable)
    }
}

/// Runs a call bounded by `ttl`.
async fn bounded<T>(
    ttl: Duration,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(ttl, fut).await {
        Err(_) => Err(CallError::Failed(format!("no answer within {ttl:?}"))),
        Ok(Err(s)) => Err(status_error(s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let whole = rpc.entries.len();
        if whole > 1 {
            let sizes = rpc
                .entries
                .iter()
                .map(|e| codec::encoded_len(e).unwrap_or(usize::MAX));
            rpc.entries.truncate(self.budgets.take(self.target, sizes));
        }
        let last_sent = rpc.entries.last().map(|e| e.log_id);
        let partial = rpc.entries.len() < whole;
        let req = encode(&rpc).map_err(CallError::into_rpc)?;
        let mut c = self.client().map_err(CallError::into_rpc)?;
        let in_flight = InFlight {
            budgets: &self.budgets,
            peer: self.target,
            sent: req.payload.len(),
            started: Instant::now(),
            answered: false,
        };
        let msg = match bounded(option.hard_ttl(), c.append_entries(req)).await {
            Ok(msg) => {
                in_flight.answered(option.hard_ttl());
                msg
            }
            Err(e @ CallError::Unreachable(_)) => {
                in_flight.unreachable();
                return Err(e.into_rpc());
            }
            Err(e) => return Err(e.into_rpc()),
        };
        match decode(self.target, msg)? {
            AppendEntriesResponse::Success if partial => {
                Ok(AppendEntriesResponse::PartialSuccess(last_sent))
            }
            answer => Ok(answer),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let chunk = (|| -> Result<SnapshotChunk, CallError> {
            Ok(SnapshotChunk {
                vote: encode(&rpc.vote)?.payload,
                meta: encode(&rpc.meta)?.payload,
                offset: rpc.offset,
                data: rpc.data,
                done: rpc.done,
            })
        })()
        .map_err(CallError::into_rpc)?;
        let mut c = self.client().map_err(CallError::into_rpc)?;
        let msg = bounded(option.hard_ttl(), c.install_snapshot(chunk))
            .await
            .map_err(CallError::into_rpc)?;
        decode(self.target, msg)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        let req = encode(&rpc).map_err(CallError::into_rpc)?;
        let mut c = self.client().map_err(CallError::into_rpc)?;
        let msg = bounded(option.hard_ttl(), c.vote(req))
            .await
            .map_err(CallError::into_rpc)?;
        decode(self.target, msg)
    }
}
