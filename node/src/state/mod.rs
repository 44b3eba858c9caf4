//! The replicated state machine of mxrep: a pure, deterministic module with no I/O.
//!
//! `ReputationState::apply(index, request)` is the only way state changes. It depends on nothing
//! but its inputs: "now" is the time the leader stamped on the entry (kept monotone here, so a
//! leader with a slower clock can never move time backwards), never the clock at apply time.
//! Windows rotate and bans expire on apply, driven by the leader's periodic tick entries. Every
//! map the state's decisions read in order is ordered (the address table, only looked up, is
//! hashed), so every node that applies the same log holds the same state.
//!
//! # Layout
//! - this file: the state, and `apply` dispatching each command;
//! - [`command`]: what an entry carries (`Request`, `Command`, `Observation`) and returns;
//! - [`observe`]: connection verdicts into counters, exactly once per agent batch ([`dedup`]);
//! - [`dnsbl`]: DNS list answers scored with the policy, list health;
//! - [`greylist`]: greylisting triplets for the whole fleet, and the answer to one request;
//! - [`counters`] and [`window`]: what is counted, per address and per prefix level;
//!   [`addr_table`]: the counters of every tracked address; [`prefix_stats`]: of a prefix;
//! - [`rules`]: the policies that turn counts into assessments and decisions;
//! - [`safety`]: what a decision must pass to become a ban (allowlists, breadth, breaker) and
//!   repeat-offender escalation;
//! - [`lifecycle`]: manual bans, unbans, expiry, allowlist changes;
//! - [`manual_guard`]: what a manual ban needs `--force` for;
//! - [`ban`]: the ban record and its changes; [`ban_lengths`]: which prefix lengths hold bans;
//!   [`policy`]: the replicated policy document;
//! - [`prefix`]: addresses and prefixes as operators type them; [`report`]: `ip show`.
//!
//! The Raft layer (`crate::raft`) stores and replicates the entries; this module decides.

pub mod activity;
mod addr_table;
pub mod audit;
mod ban;
mod ban_lengths;
mod command;
pub mod counters;
pub mod dedup;
pub mod dnsbl;
pub mod greylist;
mod lifecycle;
mod manual_guard;
mod observe;
pub mod policy;
mod prefix;
mod prefix_stats;
mod report;
pub mod rules;
mod safety;
pub mod window;

pub use ban::{Ban, BanAction, BanChange, BanChangeKind, BanSource, Evidence};
pub use command::{BatchId, Command, Observation, Request, Response};
pub use policy::Policy;
pub use prefix::{parse_address, parse_prefix, parse_prefix_strict, PrefixError};
pub use report::{AddressReport, CounterReport, RuleDistance};
pub use safety::{ObserveOnly, Offence};

use counters::{AddrTable, PrefixStats};
use dedup::BatchLedger;
use greylist::GreylistTable;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

/// Most MX host names interned; later ones count as "other hosts".
const MAX_HOSTS: usize = 1024;

/// Everything the cluster agrees on, as of the last applied entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationState {
    /// Cluster time in unix milliseconds: the largest time stamped on any applied entry.
    pub clock_ms: i64,
    /// Log index of the last change of the enforced ban set (0: never changed).
    pub version: u64,
    /// Enforced bans (and temporary refusals) by canonical prefix.
    pub bans: BTreeMap<IpNet, Ban>,
    pub policy: Policy,
    /// Operator allowlist (`mxrepctl allow add`), on top of the policy's `safety.allow`.
    pub allow: BTreeSet<IpNet>,
    /// Interned MX host names; the index is the bit in the counters' host masks.
    pub hosts: Vec<String>,
    /// Counters per address.
    pub addrs: AddrTable,
    /// Addresses the connection-rate rule refused temporarily.
    pub throttles: BTreeMap<IpAddr, counters::Throttle>,
    /// Tracked addresses whose verified client name is on the allowlist.
    pub named: BTreeSet<IpAddr>,
    /// Counters per prefix, at every level the policy names.
    pub prefixes: BTreeMap<IpNet, PrefixStats>,
    /// Agent batches already counted.
    pub batches: BatchLedger,
    /// Greylisting triplets and client networks.
    pub greylist: GreylistTable,
    /// DNS list verdicts per address, and the lists out of scoring.
    pub dnsbl: dnsbl::DnsblState,
    /// Automatic bans per key, for repeat-offender escalation.
    pub offences: BTreeMap<IpNet, Offence>,
    /// Keys an operator unbanned: no automatic ban until the time given.
    pub suppressed: BTreeMap<IpNet, i64>,
    /// Creation times of the risky automatic bans in the last minute (the breaker's count).
    pub recent_auto_bans: VecDeque<i64>,
    /// Creation times of all automatic bans in the last minute (the raw volume limit).
    pub recent_all_bans: VecDeque<i64>,
    /// Set while the breaker holds risky automatic bans back.
    pub observe_only: Option<ObserveOnly>,
    /// Decisions taken while in observe-only mode: recorded, not enforced.
    pub observed: BTreeMap<IpNet, Ban>,
    /// Cluster time of the last eviction sweep.
    pub last_sweep_ms: i64,
    /// Administrative writes: who, when, what, what it replaced.
    pub audit: VecDeque<audit::AuditEntry>,
    /// What protection did, hour by hour (`mxrepctl report`).
    #[serde(default)]
    pub activity: activity::Activity,
    /// When the next ban may expire, at the earliest (derived; see [`lifecycle::ExpiryHint`]).
    #[serde(skip)]
    pub ban_expiry: lifecycle::ExpiryHint,
    /// How many bans of each prefix length (derived; see [`ban_lengths`]).
    #[serde(skip)]
    pub ban_lengths: ban_lengths::BanLengths,
}

impl ReputationState {
    /// Applies one committed entry at log `index` and says what changed.
    pub fn apply(&mut self, index: u64, request: &Request) -> Response {
        self.clock_ms = self.clock_ms.max(request.now_ms);
        if !self.ban_lengths.known() {
            self.ban_lengths.rebuild(self.bans.keys());
        }
        let mut changes = self.expire();
        self.sweep_if_due();
        self.recover_if_clear();
        let now = self.now_secs();
        self.greylist.sweep_if_due(&self.policy.greylist, now);
        self.apply_command(index, &request.command, &mut changes);
        self.activity
            .record(self.clock_ms, &request.command, &changes);
        if !changes.is_empty() {
            self.version = index;
        }
        Response {
            version: self.version,
            changes,
        }
    }

    fn apply_command(&mut self, index: u64, command: &Command, changes: &mut Vec<BanChange>) {
        match command {
            Command::Audited { actor, command } => {
                let (action, replaced) = self.describe_change(command);
                let before = changes.len();
                self.apply_command(index, command, changes);
                // A manual ban carries its author, in the set and in the change agents follow.
                for c in &mut changes[before..] {
                    if c.ban.source == BanSource::Manual && c.kind != BanChangeKind::Removed {
                        c.ban.author = actor.clone();
                        if let Some(b) = self.bans.get_mut(&c.ban.prefix) {
                            b.author = actor.clone();
                        }
                    }
                }
                self.record_audit(audit::AuditEntry {
                    at_ms: self.clock_ms,
                    index,
                    actor: actor.clone(),
                    action,
                    replaced,
                });
            }
            Command::Traced { command, .. } => self.apply_command(index, command, changes),
            Command::AuditNote(_) => {}
            Command::RecordDrops(report) => self.activity.drops(self.clock_ms, report),
            Command::RecordDropsOnce {
                session,
                seq,
                report,
            } => {
                if self
                    .batches
                    .first_time(&report.mx_host, *session, *seq, self.clock_ms)
                {
                    self.activity.drops(self.clock_ms, report);
                }
            }
            Command::Tick => {}
            Command::Ban {
                prefix,
                duration_ms,
                reason,
                source,
            } => changes.extend(self.manual_ban(index, *prefix, *duration_ms, reason, *source)),
            Command::Unban { prefix } => changes.extend(self.unban(*prefix)),
            Command::Observe {
                hosts,
                batches,
                observations,
            } => changes.extend(self.observe(index, hosts, batches, observations)),
            Command::SetPolicy(p) => {
                if p.windows() != self.policy.windows()
                    || p.changing_addresses
                        .levels(true)
                        .ne(self.policy.changing_addresses.levels(true))
                    || p.changing_addresses
                        .levels(false)
                        .ne(self.policy.changing_addresses.levels(false))
                {
                    // Buckets are sized by the windows: counts of other sizes would mislead.
                    self.addrs.clear();
                    self.prefixes.clear();
                }
                self.policy = (**p).clone();
            }
            Command::Allow { prefix, add: true } => {
                self.allow.insert(*prefix);
                changes.extend(self.drop_allowed_auto_bans());
            }
            Command::Allow { prefix, add: false } => {
                self.allow.remove(prefix);
            }
            Command::Greylist(sightings) => {
                let now = self.now_secs();
                let (greylisted, passed) =
                    self.greylist.apply(&self.policy.greylist, sightings, now);
                self.activity.greylist(self.clock_ms, greylisted, passed);
            }
            Command::Dnsbl(lookups) => changes.extend(self.apply_dnsbl(index, lookups)),
            Command::ListHealth(health) => self.apply_list_health(health),
            Command::ClearObserveOnly => {
                self.observe_only = None;
                self.recent_auto_bans.clear();
                self.recent_all_bans.clear();
            }
        }
    }

    /// Enforced bans that cover `addr`, narrowest first.
    pub fn bans_covering(&self, addr: IpAddr) -> Vec<&Ban> {
        self.bans_within(&IpNet::from(addr)).collect()
    }

    /// Is `key` equal to, or inside, a ban that drops?
    pub fn is_banned_within(&self, key: &IpNet) -> bool {
        self.bans_within(key).any(Ban::drops)
    }

    /// Bans of `key` and its supernets, narrowest first (a key re-decided is most often banned
    /// itself): one lookup per prefix length that some ban has.
    fn bans_within<'a>(&'a self, key: &IpNet) -> impl Iterator<Item = &'a Ban> + 'a {
        let addr = key.addr();
        self.ban_lengths
            .covering(key)
            .filter_map(move |len| IpNet::new(addr, len).ok())
            .filter_map(|n| self.bans.get(&n.trunc()))
    }

    /// Is the decision on `key` made already — `key` inside a ban that drops (its own or a
    /// supernet's), or recorded as observed while observe-only holds? `decide` would refuse a
    /// new one; this keeps such a key from being judged again (its decision text written) on
    /// every entry that touches it.
    pub fn is_settled(&self, key: &IpNet) -> bool {
        self.is_banned_within(key)
            || (self.observe_only.is_some() && self.observed.contains_key(key))
    }

    /// Is `key` inside an allowlisted prefix?
    pub fn is_allowed(&self, key: &IpNet) -> bool {
        self.allow
            .iter()
            .chain(self.policy.safety.allow.iter())
            .any(|a| a.contains(key))
    }

    /// Is `addr`'s verified client name on the policy's allowlist?
    pub fn is_name_allowed(&self, addr: IpAddr) -> bool {
        self.named.contains(&addr)
    }

    fn now_secs(&self) -> u32 {
        (self.clock_ms.max(0) / 1000).min(u32::MAX as i64) as u32
    }

    /// Bit of host `name` in the host masks, interning it if there is room.
    fn host_bit(&mut self, name: &str) -> u64 {
        let idx = match self.hosts.iter().position(|h| h == name) {
            Some(i) => i,
            None if self.hosts.len() < MAX_HOSTS => {
                self.hosts.push(name.to_string());
                self.hosts.len() - 1
            }
            None => 63,
        };
        1u64 << idx.min(63)
    }

    /// Host names of a mask.
    pub fn host_names(&self, mask: u64) -> Vec<String> {
        let mut out: Vec<String> = (0..63)
            .filter(|i| mask & (1 << i) != 0)
            .filter_map(|i| self.hosts.get(i).cloned())
            .collect();
        if mask & (1 << 63) != 0 {
            out.push("(other hosts)".into());
        }
        out
    }
}

#[cfg(test)]
mod tests;
