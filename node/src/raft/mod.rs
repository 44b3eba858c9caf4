//! The Raft layer of mxrep: types, the sled log store, the state-machine store, the network
//! (client and server halves of the `Peer` service), and the cluster handle that writes through
//! whichever node is leader.
//!
//! The decisions themselves are made by the pure `crate::state` module; this layer only orders,
//! stores and replicates the entries that feed it.

// openraft's error types are large and its traits fix them as return types.
#![allow(clippy::result_large_err)]

pub mod append_budget;
pub mod apply_effects;
pub mod ban_feed;
pub mod bootstrap;
pub mod cluster;
pub mod codec;
pub mod election_gate;
pub mod greylist_feed;
pub mod join;
pub mod log_store;
pub mod network;
pub mod peer_service;
pub mod recent_entries;
pub mod scale_down;
pub mod state_store;
pub mod types;

pub use cluster::{Cluster, ClusterOp, ClusterOpResult, WriteError};
pub use types::{MxNode, NodeId, Raft, TypeConfig};
