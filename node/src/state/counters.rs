//! What the state machine counts: per address and per prefix, in sliding windows.
//!
//! Addresses are kept in an [`AddrTable`] (hashed by the address as an integer), so a tracked
//! address costs its counters and little else. Counters that fall out of every window are
//! evicted, so memory follows the active set, not history.

use super::window::{PairWindow, Window};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub use super::addr_table::AddrTable;
pub use super::prefix_stats::{PrefixStats, MEMBER_CAP};

/// What is counted, by name: the names evidence and `ip show` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterName {
    BadConnections,
    NeutralConnections,
    RejectedRecipients,
    AuthFailures,
    Messages,
    DeliveredRecently,
    BadOnlyMembers,
    DeliveringMembers,
}

impl CounterName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadConnections => "bad connections (not mail)",
            Self::NeutralConnections => "neutral connections (temporary refusals only)",
            Self::RejectedRecipients => "rejected recipients (nothing delivered)",
            Self::AuthFailures => "SASL authentication failures",
            Self::Messages => "accepted messages",
            Self::DeliveredRecently => "messages delivered (good memory)",
            Self::BadOnlyMembers => "bad-only addresses",
            Self::DeliveringMembers => "delivering addresses",
        }
    }
}

/// Counters of one address, cluster-wide. Kept small: a busy cluster tracks millions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrStats {
    /// Connections in the connection-rate window: bad ones (lane [`BAD`]) and neutral ones
    /// (lane [`NEUTRAL`], shown, not judged).
    pub connections: PairWindow,
    /// In the rejects window: permanently rejected recipients of connections that delivered
    /// nothing (lane [`REJECTS`]) and SASL failures (lane [`AUTH_FAILURES`]).
    pub refusals: PairWindow,
    /// Accepted messages, in the message-rate window.
    pub messages: Window,
    /// Accepted messages over the good memory (24 h by default): the address's credit.
    pub good: Window,
    /// MX hosts (by index in the state's host table, 63 = "any other") that reported it.
    pub hosts: u64,
}

/// Lanes of [`AddrStats::connections`].
pub const BAD: usize = 0;
pub const NEUTRAL: usize = 1;
/// Lanes of [`AddrStats::refusals`].
pub const REJECTS: usize = 0;
pub const AUTH_FAILURES: usize = 1;

/// The connection-rate rule's temporary refusal of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    /// Cluster second it was refused.
    pub at: u32,
    /// Bad connections counted since.
    pub bad_since: u32,
}

/// `addr`'s member key in its prefix of length `len`: the address itself at the narrowest
/// level (`first`), else the narrowest prefix holding it.
pub fn member_of(addr: IpAddr, len: u8, first: u8) -> IpAddr {
    if len >= first {
        addr
    } else {
        truncate(addr, first).addr()
    }
}

/// The prefix of `addr` of length `len`.
pub fn truncate(addr: IpAddr, len: u8) -> IpNet {
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
}

/// The prefix of `addr` at the policy's lengths.
pub fn prefix_of(addr: IpAddr, v4_len: u8, v6_len: u8) -> IpNet {
    let len = match addr {
        IpAddr::V4(_) => v4_len,
        IpAddr::V6(_) => v6_len,
    };
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
}
