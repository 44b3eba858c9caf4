//! What a Raft entry carries (`Request`) and what applying it returns (`Response`).

use super::{BanChange, BanSource};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A state-machine command, as proposed by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Carries time forward, so bans expire identically on every node.
    Tick,
    /// Ban (or extend the ban of) a canonical prefix for `duration_ms` from the entry's time.
    Ban {
        prefix: IpNet,
        duration_ms: u64,
        reason: String,
        source: BanSource,
    },
    /// Lift the ban of exactly this prefix.
    Unban { prefix: IpNet },
}

/// One application entry of the Raft log: a command and the leader's time stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unix milliseconds, stamped by the leader when it proposed the entry.
    pub now_ms: i64,
    pub command: Command,
}

/// The outcome of applying one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The ban-set version after the entry.
    pub version: u64,
    /// What the entry changed, in order.
    pub changes: Vec<BanChange>,
}
