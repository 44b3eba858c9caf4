//! The Raft type configuration of mxrep: what a log entry carries, what a member is.

use crate::state::{Request, Response};
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A member of the cluster: where its peers and its clients reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MxNode {
    /// Address of the peer service (Raft, forwarded writes).
    pub peer_addr: String,
    /// Address of the API (agents, mxrepctl); empty when not known.
    pub api_addr: String,
}

impl std::fmt::Display for MxNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer={} api={}", self.peer_addr, self.api_addr)
    }
}

/// Node ids are small positive integers chosen by the operator (`--id`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// mxrep's Raft: entries carry state-machine `Request`s; snapshots are bytes in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = MxNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MxNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MxNode>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, MxNode>;
