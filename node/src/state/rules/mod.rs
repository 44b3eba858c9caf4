//! The policies: from counts to decisions. Each rule reads the counters of one key at the
//! cluster's "now" and gives an [`Assessment`]: how far the key is from its limit, in words an
//! operator reads in `mxrepctl ip show`, and, at the limit, a [`Decision`] with its evidence.
//! Good evidence (deliveries, an allowlisted verified name) only ever raises limits.
//!
//! - [`address`]: rejected recipients, auth failures, message rate, connection rate;
//! - [`prefix`]: the changing-addresses rule, weighing bad-only against delivering members.

pub mod address;
pub mod prefix;

use super::{BanAction, Evidence};
use ipnet::IpNet;

/// A rule's verdict on one key, before the safety limits and escalation.
#[derive(Debug, Clone)]
pub struct Decision {
    pub key: IpNet,
    pub reason: String,
    /// Length of a first offence (or of the temporary refusal).
    pub base_secs: u64,
    pub evidence: Vec<Evidence>,
    pub action: BanAction,
}

/// One rule's view of one key.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub rule: &'static str,
    pub key: IpNet,
    /// Where the key stands, e.g. "2 of 5 rejected recipients in 10 min".
    pub text: String,
    pub decision: Option<Decision>,
}

/// A duration as operators write it.
pub fn human(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
