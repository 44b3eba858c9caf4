//! A ban record, its evidence, and the changes of the ban set that the state machine reports.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Who decided a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BanSource {
    /// An operator, through mxrepctl or the admin API.
    Manual,
    /// A policy of the reputation engine.
    Automatic,
}

/// What the MX hosts do with a listed key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BanAction {
    /// Drop its packets in nftables.
    #[default]
    Drop,
    /// Refuse its mail temporarily through the policy service (450); no packet drop. The
    /// connection-rate rule's first answer.
    Tempfail,
    /// Refuse its mail through the policy service (554 with the reason); no packet drop. What a
    /// DNS list's listing does by default, as postscreen does: a sender listed by mistake gets a
    /// bounce that names the list, not silence.
    Reject,
}

/// What one rule counted when it decided, and which MX hosts contributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub rule: String,
    pub counter: String,
    pub count: u64,
    pub window_secs: u64,
    pub mx_hosts: Vec<String>,
}

/// One ban of an address or prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub prefix: IpNet,
    pub reason: String,
    pub source: BanSource,
    /// Cluster time (unix ms) of the entry that created the ban.
    pub created_ms: i64,
    /// Cluster time (unix ms) at which the ban ends.
    pub expires_ms: i64,
    /// Log index of the last change of this ban.
    pub version: u64,
    /// Repeat-offender level: 0 for a first ban, n for the (n+1)th within the memory window.
    #[serde(default)]
    pub level: u32,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// Drop, or only a temporary refusal.
    #[serde(default)]
    pub action: BanAction,
    /// Who made it: for a manual ban, the admin's certificate subject ("dev" without TLS);
    /// empty for automatic ones (their evidence names the rule).
    #[serde(default)]
    pub author: String,
}

impl Ban {
    /// Does this entry drop packets (as opposed to a temporary refusal)?
    pub fn drops(&self) -> bool {
        self.action == BanAction::Drop
    }

    /// Refuses mail for good (dropped or rejected, not a temporary refusal): what the DNSBL zone
    /// lists.
    pub fn refuses(&self) -> bool {
        self.action != BanAction::Tempfail
    }
}

/// How the ban set changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BanChangeKind {
    Added,
    Extended,
    Removed,
    Expired,
}

/// One change of the ban set, with the ban as it is after (or was before removal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanChange {
    pub kind: BanChangeKind,
    pub ban: Ban,
}
