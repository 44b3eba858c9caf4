//! The policies: from counts to decisions. Each rule reads the counters of one key at the
//! cluster's "now" and says whether it should be banned, for how long at first, and why, with the
//! evidence an operator needs (which counter, how many, which MX hosts).

use super::counters::PrefixStats;
use super::{Evidence, ReputationState};
use ipnet::IpNet;
use std::net::IpAddr;

/// A rule's verdict on one key, before the safety limits and escalation.
pub struct Decision {
    pub key: IpNet,
    pub reason: String,
    /// Ban length of a first offence.
    pub base_secs: u64,
    pub evidence: Vec<Evidence>,
}

fn human(secs: u32) -> String {
    if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Evaluates the per-address rules, strongest first.
pub fn evaluate_address(s: &ReputationState, addr: IpAddr, now: u32) -> Option<Decision> {
    let st = s.addrs.get(addr)?;
    let p = &s.policy;
    let hosts = s.host_names(st.hosts);
    let decision =
        |rule: &str, counter: &str, count: u32, window: u32, base: u64, reason: String| {
            Some(Decision {
                key: IpNet::from(addr),
                reason,
                base_secs: base,
                evidence: vec![Evidence {
                    rule: rule.into(),
                    counter: counter.into(),
                    count: count as u64,
                    window_secs: window as u64,
                    mx_hosts: hosts,
                }],
            })
        };
    if p.rejects.enabled {
        let w = p.rejects.window_secs;
        let r = st.rejects.sum(now, w);
        if r >= p.rejects.max_rejects {
            return decision(
                "rejects",
                "rejected recipients",
                r,
                w,
                p.rejects.ban_secs,
                format!(
                    "{r} rejected recipients in {} (limit {})",
                    human(w),
                    p.rejects.max_rejects
                ),
            );
        }
        let a = st.auth_failures.sum(now, w);
        if a >= p.rejects.max_auth_failures {
            return decision(
                "auth-failures",
                "SASL authentication failures",
                a,
                w,
                p.rejects.ban_secs,
                format!(
                    "{a} SASL authentication failures in {} (limit {})",
                    human(w),
                    p.rejects.max_auth_failures
                ),
            );
        }
    }
    if p.message_rate.enabled {
        let w = p.message_rate.window_secs;
        let m = st.accepted.sum(now, w);
        if m > p.message_rate.max_messages {
            return decision(
                "message-rate",
                "accepted messages",
                m,
                w,
                p.message_rate.ban_secs,
                format!(
                    "{m} accepted messages in {} (more than {})",
                    human(w),
                    p.message_rate.max_messages
                ),
            );
        }
    }
    if p.connection_rate.enabled {
        let w = p.connection_rate.window_secs;
        let c = st.connects.sum(now, w);
        // Credit: each recently accepted message excuses one connection.
        let credit = st.accepted.sum(now, p.message_rate.window_secs);
        let max = p.connection_rate.max_connections;
        if c > max && c.saturating_sub(credit) > max {
            return decision(
                "connection-rate",
                "new connections",
                c,
                w,
                p.connection_rate.ban_secs,
                format!(
                    "{c} new connections in {} across the cluster (more than {max}; {credit} accepted messages of credit)",
                    human(w)
                ),
            );
        }
    }
    None
}

/// Evaluates the changing-addresses rule for one prefix.
pub fn evaluate_prefix(s: &ReputationState, prefix: IpNet, now: u32) -> Option<Decision> {
    let p = &s.policy.changing_addresses;
    if !p.enabled {
        return None;
    }
    let ps: &PrefixStats = s.prefixes.get(&prefix)?;
    let n = ps.distinct_bad(now, p.window_secs);
    if n < p.distinct_addresses {
        return None;
    }
    Some(Decision {
        key: prefix,
        reason: format!(
            "{n} distinct addresses of {prefix} showed bad signals (rejects, auth failures, errors, no mail) in {} (limit {})",
            human(p.window_secs),
            p.distinct_addresses
        ),
        base_secs: p.ban_secs,
        evidence: vec![Evidence {
            rule: "changing-addresses".into(),
            counter: "distinct addresses with bad signals".into(),
            count: n as u64,
            window_secs: p.window_secs as u64,
            mx_hosts: s.host_names(ps.hosts),
        }],
    })
}
