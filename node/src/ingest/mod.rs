//! Events in: validation of what agents send, and edge aggregation into Raft entries.
//!
//! An agent's batch is checked event by event ([`validate`]); the good events go to this node's
//! [`aggregator`], which sums them for a short flush interval into per-key deltas and proposes
//! them as ONE `Observe` entry (through the leader, wherever it is). Raw events never become Raft
//! entries one by one. The agent is acknowledged once the entry holding its events is committed.

pub mod aggregator;
pub mod proposer;
pub mod stream;
pub mod validate;

pub use aggregator::{Aggregator, AggregatorConfig, Submission};
pub use validate::{validate_batch, Limits, ValidEvent};
