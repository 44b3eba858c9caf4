//! The mxrep wire contract, `package mxrep.v1`, generated from the `.proto` files beside this crate.
//!
//! Three services share it: `Peer` (node to node: Raft and forwarded writes), `Agent` (MX host to
//! cluster: events up, ban list down) and `Admin` (mxrepctl and SOC tooling).
//!
//! # Layout
//! - `mxrep/v1/types.proto`: bans, their evidence and actions, shared by every service;
//! - `mxrep/v1/agent.proto`: connection verdicts and events, the ban-list stream, greylisting;
//! - `mxrep/v1/admin.proto`: status, bans, `ip show`, policy, allowlist, membership;
//! - `mxrep/v1/peer.proto`: Raft messages and forwarded writes between nodes;
//! - this crate: [`v1`], the generated messages and services, and the descriptor set.

#![allow(clippy::all)]
#![forbid(unsafe_code)]

/// Generated messages and services of `package mxrep.v1`.
pub mod v1 {
    tonic::include_proto!("mxrep.v1");
}

/// Encoded `FileDescriptorSet` of every mxrep `.proto`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mxrep_descriptor.bin"));
