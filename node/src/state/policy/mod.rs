//! The policy document: every threshold the engine decides by, replicated so that every node
//! decides alike, changeable at run time (`mxrepctl policy set FILE`, TOML), with the defaults an
//! operator expects from the classic recipes. [`validate`] refuses what makes no sense.

mod validate;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Connection rate per address, across all MX hosts (`iptables -m recent --hitcount 4
/// --seconds 60`), counting only connections that were not mail: delivered and greylisted
/// (neutral) connections are free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionRate {
    pub enabled: bool,
    /// More than this many bad connections in the window: first a temporary refusal.
    pub max_connections: u32,
    pub window_secs: u32,
    /// How long the temporary refusal lasts; more than `max_connections` further bad
    /// connections within it turn it into a ban.
    pub tempfail_secs: u64,
    pub ban_secs: u64,
    /// An address that delivered at least this many messages within
    /// `changing_addresses.good_memory_secs` gets `good_history_factor` times the limits of
    /// this rule and of `rejects` (one delivered message already doubles them).
    pub good_history_messages: u32,
    pub good_history_factor: u32,
}

impl Default for ConnectionRate {
    fn default() -> Self {
        Self {
            enabled: true,
            max_connections: 3,
            window_secs: 60,
            tempfail_secs: 600,
            ban_secs: 600,
            good_history_messages: 10,
            good_history_factor: 5,
        }
    }
}

/// Many addresses of one prefix that were bad and never delivered, clearly outnumbering the
/// ones that delivered: the rotating (snowshoe) spammer. A pool that delivers is not banned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangingAddresses {
    pub enabled: bool,
    /// The narrowest prefix counted; its members are single addresses.
    pub ipv4_prefix_len: u8,
    pub ipv6_prefix_len: u8,
    /// Broader prefixes evidence also aggregates into (never broader than the safety breadth);
    /// their members are the narrowest prefixes inside them (an IPv6 /48's members are /64s).
    pub ipv4_wider_prefix_lens: Vec<u8>,
    pub ipv6_wider_prefix_lens: Vec<u8>,
    /// At least this many bad-only members in the window …
    pub distinct_addresses: u32,
    /// … and at least this many times as many as the members that delivered.
    pub bad_to_good_ratio: u32,
    pub window_secs: u32,
    /// How long a delivery counts for its address and prefixes.
    pub good_memory_secs: u32,
    pub ban_secs: u64,
}

impl Default for ChangingAddresses {
    fn default() -> Self {
        Self {
            enabled: true,
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 64,
            ipv4_wider_prefix_lens: vec![],
            ipv6_wider_prefix_lens: vec![56, 48],
            distinct_addresses: 8,
            bad_to_good_ratio: 4,
            window_secs: 600,
            good_memory_secs: 86400,
            ban_secs: 3600,
        }
    }
}

impl ChangingAddresses {
    /// The narrowest level: the prefix length whose members are addresses.
    pub fn first_len(&self, v6: bool) -> u8 {
        if v6 {
            self.ipv6_prefix_len
        } else {
            self.ipv4_prefix_len
        }
    }

    /// Every prefix length counted for `v6` (or IPv4), narrowest first.
    pub fn levels(&self, v6: bool) -> impl Iterator<Item = u8> + '_ {
        let (first, wider) = if v6 {
            (self.ipv6_prefix_len, &self.ipv6_wider_prefix_lens)
        } else {
            (self.ipv4_prefix_len, &self.ipv4_wider_prefix_lens)
        };
        std::iter::once(first).chain(wider.iter().copied())
    }
}

/// Rejected recipients and SASL failures per address (what fail2ban does per host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rejects {
    pub enabled: bool,
    pub max_rejects: u32,
    pub max_auth_failures: u32,
    pub window_secs: u32,
    pub ban_secs: u64,
}

impl Default for Rejects {
    fn default() -> Self {
        Self {
            enabled: true,
            max_rejects: 5,
            max_auth_failures: 5,
            window_secs: 600,
            ban_secs: 3600,
        }
    }
}

/// Accepted messages per address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageRate {
    pub enabled: bool,
    /// More than this many accepted messages in the window bans.
    pub max_messages: u32,
    pub window_secs: u32,
    pub ban_secs: u64,
}

impl Default for MessageRate {
    fn default() -> Self {
        Self {
            enabled: true,
            max_messages: 500,
            window_secs: 600,
            ban_secs: 600,
        }
    }
}

/// Greylisting for the whole fleet (postgrey's defaults): a first-seen triplet is refused
/// temporarily; a retry after the delay passes, on any MX host, from any address of the client
/// network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Greylist {
    pub enabled: bool,
    pub delay_secs: u32,
    /// A retry counts only within this long of the first attempt.
    pub retry_window_secs: u32,
    /// Triplets unseen this long are forgotten.
    pub max_age_secs: u32,
    /// A client network that passed this many times (one an hour counted) is not greylisted …
    pub auto_allowlist_passes: u32,
    /// … for this long. Passes closer together than `auto_allowlist_spacing_secs` count once.
    pub auto_allowlist_secs: u32,
    pub auto_allowlist_spacing_secs: u32,
    /// Client networks: a retry from another address of the same network passes.
    pub ipv4_prefix_len: u8,
    pub ipv6_prefix_len: u8,
    /// Greylist only suspicious clients (no delivery history, a bad verdict lately, or no
    /// verified client name), as rspamd and Fastmail do; false: every client, as postgrey.
    pub only_suspicious: bool,
}

impl Default for Greylist {
    fn default() -> Self {
        Self {
            enabled: false,
            delay_secs: 300,
            retry_window_secs: 2 * 86400,
            max_age_secs: 35 * 86400,
            auto_allowlist_passes: 5,
            auto_allowlist_secs: 35 * 86400,
            auto_allowlist_spacing_secs: 3600,
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 64,
            only_suspicious: false,
        }
    }
}

/// DNS lists (DNSBL and DNSWL), in postscreen's syntax: `sites = ["zen.example=127.0.0.[2..11]*3",
/// "bl.example*2", "wl.example=127.0.[0..255].[2..3]*-2"]`; a score at or above `threshold` bans
/// the address for at most the listing's TTL (capped by `max_ban_secs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dnsbl {
    pub sites: Vec<String>,
    pub threshold: i32,
    /// A verdict is looked up again after at most this long, whatever the TTL.
    pub max_cache_secs: u32,
    pub max_ban_secs: u64,
    /// Queries a day per list, for the whole cluster (Spamhaus free use: under 300k a day).
    pub daily_budget: u64,
    /// Look up each client's forward-confirmed reverse DNS name too (once per address per TTL
    /// for the cluster), for `safety.allow_client_names` and suspicious-only greylisting when
    /// no policy service reports Postfix's verified `client_name`.
    pub verify_client_names: bool,
    /// What a listing at the threshold does: "reject" (the policy service refuses the mail with
    /// the list's text, as postscreen does; the default) or "drop" (nftables drops the client).
    pub action: ListingAction,
}

/// What a DNS list listing does on the MX hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListingAction {
    #[default]
    Reject,
    Drop,
}

impl Default for Dnsbl {
    fn default() -> Self {
        Self {
            sites: vec![],
            threshold: 1,
            max_cache_secs: 3600,
            max_ban_secs: 86400,
            daily_budget: 100_000,
            verify_client_names: false,
            action: ListingAction::Reject,
        }
    }
}

/// Repeat offenders: each new automatic ban of a key lasts `factor` times the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepeatOffenders {
    pub factor: u32,
    /// Offences older than this are forgotten.
    pub memory_secs: u64,
    pub max_ban_secs: u64,
}

impl Default for RepeatOffenders {
    fn default() -> Self {
        Self {
            factor: 2,
            memory_secs: 7 * 86400,
            max_ban_secs: 7 * 86400,
        }
    }
}

/// Limits that keep a bug or a poisoned feed from locking out the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Safety {
    /// Never banned automatically.
    pub allow: Vec<IpNet>,
    /// Clients whose forward-confirmed name (Postfix's `client_name`, never an unverified PTR)
    /// is one of these or ends in `.` + one of these are never banned automatically, as
    /// postgrey's `whitelist_clients`: `outlook.com`, `google.com`, `amazonses.com`, …
    pub allow_client_names: Vec<String>,
    /// Automatic bans never cover more than this (shortest prefix length allowed).
    pub max_breadth_ipv4: u8,
    pub max_breadth_ipv6: u8,
    /// More new *risky* automatic bans than this in one minute (prefix bans, or bans of keys
    /// that delivered mail within the good memory: the signs of a bug or a poisoned feed)
    /// switch risky bans to observe-only.
    pub max_new_bans_per_minute: u32,
    /// More new automatic bans of any kind than this in one minute switch all new automatic
    /// bans to observe-only: a raw volume limit, orders of magnitude above any attack wave.
    pub max_all_new_bans_per_minute: u32,
    /// Observe-only ends by itself once this long passed without a decision it held back
    /// (0: only an operator ends it, with `mxrepctl observe-only clear`).
    pub observe_only_recovery_secs: u64,
    /// After a manual unban of an automatic ban, the key is not banned automatically for this long.
    pub unban_grace_secs: u64,
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            allow: vec![],
            allow_client_names: vec![],
            max_breadth_ipv4: 24,
            max_breadth_ipv6: 48,
            max_new_bans_per_minute: 1000,
            max_all_new_bans_per_minute: 200_000,
            observe_only_recovery_secs: 900,
            unban_grace_secs: 3600,
        }
    }
}

/// How long the audit trail of administrative writes is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    pub keep_days: u32,
}

impl Default for Audit {
    fn default() -> Self {
        Self { keep_days: 90 }
    }
}

/// The whole policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub connection_rate: ConnectionRate,
    pub changing_addresses: ChangingAddresses,
    pub rejects: Rejects,
    pub message_rate: MessageRate,
    pub greylist: Greylist,
    pub dnsbl: Dnsbl,
    pub repeat_offenders: RepeatOffenders,
    pub safety: Safety,
    pub audit: Audit,
}

impl Policy {
    /// Parses and validates a TOML policy document.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.message().trim().to_string())?;
        p.validate()?;
        Ok(p)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The window lengths counters are kept in; counters restart when one of them changes.
    pub fn windows(&self) -> [u32; 5] {
        [
            self.changing_addresses.good_memory_secs,
            self.connection_rate.window_secs,
            self.changing_addresses.window_secs,
            self.rejects.window_secs,
            self.message_rate.window_secs,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_refusals() {
        let p = Policy::default();
        assert_eq!(Policy::from_toml(&p.to_toml()).unwrap(), p);
        let e = Policy::from_toml("[changing_addresses]\nipv4_prefix_len = 16\n").unwrap_err();
        assert!(e.contains("broader"), "{e}");
        let e = Policy::from_toml("[rejects]\nmax_rejectz = 1\n").unwrap_err();
        assert!(e.contains("max_rejectz"), "{e}");
        let p = Policy::from_toml("[connection_rate]\nmax_connections = 10\n").unwrap();
        assert_eq!(p.connection_rate.max_connections, 10);
        assert_eq!(p.rejects, Rejects::default());
    }
}
