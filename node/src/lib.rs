//! mxrep-node: a member of the mxrep reputation cluster, and the `mxrepctl` admin client.
//!
//! # Layout
//! The tree follows the data:
//! - [`state`]: the replicated state machine, pure and deterministic (no I/O, no clock): verdict
//!   counters, the rules that weigh them, bans and their safety limits;
//! - [`raft`]: openraft wiring: sled log store, state-machine store and snapshots, the peer
//!   network over tonic, cluster formation, and writes forwarded to the leader;
//! - [`ingest`]: events in: validation and edge aggregation into one Raft entry per flush;
//! - [`api`]: the gRPC services on the API port (admin, agent, health, reflection);
//! - [`dns`]: DNS list lookups and probes at the edge, their answers proposed as data;
//! - [`metrics`]: what the node counts and measures, for Prometheus and OTLP;
//! - [`replay`]: the engine run offline over connection verdicts ("what would mxrep do?");
//! - [`tls_accept`]: mutual TLS on both ports, certificates read again when their files change;
//! - [`config`], [`data_dir`], [`server`]: the process around them;
//! - [`ctl`]: `mxrepctl`, one file per command.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod ctl;
pub mod data_dir;
pub mod dns;
pub mod ingest;
pub mod metrics;
pub mod raft;
pub mod replay;
pub mod server;
pub mod state;
pub mod tls_accept;
