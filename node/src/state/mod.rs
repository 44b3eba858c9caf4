//! The replicated state machine of mxrep: a pure, deterministic module with no I/O.
//!
//! `ReputationState::apply(index, request)` is the only way state changes. It depends on nothing
//! but its inputs: "now" is the time the leader stamped on the entry (kept monotone here, so a
//! leader with a slower clock can never move time backwards), never the clock at apply time. Bans
//! expire on apply, driven by the leader's periodic tick entries. Every map is ordered, so every
//! node that applies the same log holds byte-for-byte the same state.
//!
//! The Raft layer (`crate::raft`) stores and replicates the entries; this module decides.

mod ban;
mod command;
mod prefix;

pub use ban::{Ban, BanChange, BanChangeKind, BanSource};
pub use command::{Command, Request, Response};
pub use prefix::{parse_address, parse_prefix, PrefixError};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything the cluster agrees on, as of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationState {
    /// Cluster time in unix milliseconds: the largest time stamped on any applied entry.
    pub clock_ms: i64,
    /// Log index of the last change of the ban set (0: never changed).
    pub version: u64,
    /// Active bans by canonical prefix.
    pub bans: BTreeMap<IpNet, Ban>,
}

impl ReputationState {
    /// Applies one committed entry at log `index` and says what changed.
    pub fn apply(&mut self, index: u64, request: &Request) -> Response {
        self.clock_ms = self.clock_ms.max(request.now_ms);
        let mut changes = self.expire();
        match &request.command {
            Command::Tick => {}
            Command::Ban {
                prefix,
                duration_ms,
                reason,
                source,
            } => changes.extend(self.ban(index, *prefix, *duration_ms, reason, *source)),
            Command::Unban { prefix } => {
                if let Some(ban) = self.bans.remove(prefix) {
                    changes.push(BanChange {
                        kind: BanChangeKind::Removed,
                        ban,
                    });
                }
            }
        }
        if !changes.is_empty() {
            self.version = index;
        }
        Response {
            version: self.version,
            changes,
        }
    }

    /// Bans that cover `addr`, narrowest first.
    pub fn bans_covering(&self, addr: IpAddr) -> Vec<&Ban> {
        let mut found: Vec<&Ban> = self
            .bans
            .values()
            .filter(|b| b.prefix.contains(&addr))
            .collect();
        found.sort_by_key(|b| std::cmp::Reverse(b.prefix.prefix_len()));
        found
    }

    fn ban(
        &mut self,
        index: u64,
        prefix: IpNet,
        duration_ms: u64,
        reason: &str,
        source: BanSource,
    ) -> Option<BanChange> {
        let expires_ms = self
            .clock_ms
            .saturating_add(i64::try_from(duration_ms).unwrap_or(i64::MAX));
        if expires_ms <= self.clock_ms {
            return None;
        }
        match self.bans.get_mut(&prefix) {
            Some(existing) => {
                if expires_ms <= existing.expires_ms && existing.reason == reason {
                    return None;
                }
                existing.expires_ms = existing.expires_ms.max(expires_ms);
                existing.reason = reason.to_string();
                existing.source = source;
                existing.version = index;
                Some(BanChange {
                    kind: BanChangeKind::Extended,
                    ban: existing.clone(),
                })
            }
            None => {
                let ban = Ban {
                    prefix,
                    reason: reason.to_string(),
                    source,
                    created_ms: self.clock_ms,
                    expires_ms,
                    version: index,
                };
                self.bans.insert(prefix, ban.clone());
                Some(BanChange {
                    kind: BanChangeKind::Added,
                    ban,
                })
            }
        }
    }

    /// Removes every ban whose expiry is at or before the cluster clock.
    fn expire(&mut self) -> Vec<BanChange> {
        let now = self.clock_ms;
        let expired: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| b.expires_ms <= now)
            .map(|b| b.prefix)
            .collect();
        expired
            .into_iter()
            .filter_map(|p| self.bans.remove(&p))
            .map(|ban| BanChange {
                kind: BanChangeKind::Expired,
                ban,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
