//! What a Raft entry carries (`Request`) and what applying it returns (`Response`).

use super::dnsbl::{ListHealth, Lookup};
use super::greylist::Sighting;
use super::policy::Policy;
use super::{BanChange, BanSource};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The agent batch some observations came from: counted once, however often it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchId {
    /// Index into the entry's `hosts`.
    pub host: u16,
    /// The agent process's random session (0: the sender asks for no deduplication).
    pub session: u64,
    /// The batch's sequence number within the session.
    pub seq: u64,
}

/// The connection verdicts of one address from one agent batch, at one second of event time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub addr: IpAddr,
    /// Index into the entry's `batches`.
    pub batch: u32,
    /// Event time, whole seconds since the epoch.
    pub at: u32,
    /// Connections that delivered at least one message.
    pub delivered: u32,
    /// Connections with only temporary refusals, or a recipient check without mail.
    pub neutral: u32,
    /// Connections that failed: auth, protocol, relay, rejected recipients only, connect-and-quit.
    pub bad: u32,
    /// Messages accepted.
    pub messages: u32,
    /// Permanently rejected recipients in connections that delivered nothing.
    pub rejects: u32,
    pub auth_failures: u32,
    /// Postfix's forward-confirmed client name, when one was verified.
    pub verified_name: Option<String>,
}

impl Observation {
    /// No counts yet for `addr` from batch `batch` at second `at`.
    pub fn new(addr: IpAddr, batch: u32, at: u32) -> Self {
        Self {
            addr,
            batch,
            at,
            delivered: 0,
            neutral: 0,
            bad: 0,
            messages: 0,
            rejects: 0,
            auth_failures: 0,
            verified_name: None,
        }
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
    /// One flush of aggregated connection verdicts from the cluster's nodes.
    Observe {
        hosts: Vec<String>,
        batches: Vec<BatchId>,
        observations: Vec<Observation>,
    },
    /// Replace the policy document (validated before it is proposed).
    SetPolicy(Box<Policy>),
    /// Add or remove an operator allowlist entry.
    Allow { prefix: IpNet, add: bool },
    /// Leave observe-only mode.
    ClearObserveOnly,
    /// Greylisting triplets seen by the policy services of the fleet.
    Greylist(Vec<Sighting>),
    /// DNS list answers for addresses, looked up once for the cluster.
    Dnsbl(Vec<Lookup>),
    /// RFC 5782 probe results of the DNS lists.
    ListHealth(Vec<ListHealth>),
    /// An administrative write, with who asked: recorded in the audit trail, then applied.
    Audited {
        actor: String,
        command: Box<Command>,
    },
    /// A line for the audit trail about a change that is not a command (membership).
    AuditNote(String),
    /// Connection attempts an agent's nftables rules dropped since its last report.
    RecordDrops(super::activity::DropReport),
    /// `command`, with the W3C trace context of the request that proposed it. The state machine
    /// applies `command` and ignores the context; the edge uses it to join the decision's trace.
    Traced {
        traceparent: String,
        command: Box<Command>,
    },
    /// [`Command::RecordDrops`] counted once: a report an agent sends again (its acknowledgement
    /// lost) carries the same agent session and sequence number and is skipped. Appended last,
    /// so entries written before it existed still read.
    RecordDropsOnce {
        session: u64,
        seq: u64,
        report: super::activity::DropReport,
    },
}

impl Command {
    /// The trace context this command carries, if any.
    pub fn traceparent(&self) -> Option<&str> {
        match self {
            Command::Traced { traceparent, .. } => Some(traceparent),
            Command::Audited { command, .. } => command.traceparent(),
            _ => None,
        }
    }

    /// The command without its trace context (what the state machine applies).
    pub fn untraced(&self) -> &Command {
        match self {
            Command::Traced { command, .. } => command.untraced(),
            other => other,
        }
    }

    /// `command`, carrying `traceparent` unless it is empty.
    pub fn traced(traceparent: String, command: Command) -> Command {
        if traceparent.is_empty() {
            command
        } else {
            Command::Traced {
                traceparent,
                command: Box::new(command),
            }
        }
    }
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
