//! What a Raft entry carries (`Request`) and what applying it returns (`Response`).

use super::policy::Policy;
use super::{BanChange, BanSource};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The deltas of one flush for one address, from one MX host, at one second of event time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub addr: IpAddr,
    /// Index into the entry's `hosts`.
    pub host: u16,
    /// Event time, whole seconds since the epoch.
    pub at: u32,
    pub connects: u32,
    /// Connections that ended without delivering a message.
    pub no_mail: u32,
    /// Rejected recipients, greylisting excluded.
    pub rejects: u32,
    pub greylisted: u32,
    pub auth_failures: u32,
    pub accepted: u32,
    pub protocol_errors: u32,
}

impl Observation {
    /// No counts yet for `addr`, reported by host index `host`, at second `at`.
    pub fn new(addr: IpAddr, host: u16, at: u32) -> Self {
        Self {
            addr,
            host,
            at,
            connects: 0,
            no_mail: 0,
            rejects: 0,
            greylisted: 0,
            auth_failures: 0,
            accepted: 0,
            protocol_errors: 0,
        }
    }

    /// Does this delta carry a signal that counts against the address's prefix?
    pub fn is_bad(&self) -> bool {
        self.rejects + self.auth_failures + self.protocol_errors + self.no_mail > 0
    }
}

/// A state-machine command, as proposed by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Carries time forward, so windows rotate and bans expire identically on every node.
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
    /// One flush of aggregated events from the cluster's nodes.
    Observe {
        hosts: Vec<String>,
        observations: Vec<Observation>,
    },
    /// Replace the policy document (validated before it is proposed).
    SetPolicy(Box<Policy>),
    /// Add or remove an operator allowlist entry.
    Allow { prefix: IpNet, add: bool },
    /// Leave observe-only mode.
    ClearObserveOnly,
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
    /// What the entry changed in the enforced ban set, in order.
    pub changes: Vec<BanChange>,
}
