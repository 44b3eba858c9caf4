//! The changing-addresses rule: a prefix is banned only when enough of its members were bad and
//! never delivered AND they clearly outnumber its members that delivered (in the window, and
//! over the good memory). Evidence aggregates upward: every level the policy names (IPv6 /64,
//! /56, /48 by default) is weighed alike, its members being the narrowest prefixes inside it.

use super::{human, Assessment, Decision};
use crate::state::counters::{CounterName, PrefixStats};
use crate::state::{BanAction, Evidence, ReputationState};
use ipnet::IpNet;

/// The rule's decision on `prefix`, if it is at the limit: the decision path, no text otherwise.
pub fn decide(s: &ReputationState, prefix: IpNet, now: u32) -> Option<Decision> {
    let p = &s.policy.changing_addresses;
    let ps = s.prefixes.get(&prefix).filter(|_| p.enabled)?;
    let (b, g) = ps.weigh(now, p.window_secs, p.good_memory_secs);
    if b < p
        .distinct_addresses
        .max(p.bad_to_good_ratio.saturating_mul(g))
    {
        return None;
    }
    Some(decision(s, prefix, ps, b, g))
}

/// The rule's assessment of `prefix` (a key of `ReputationState::prefixes`).
pub fn assess(s: &ReputationState, prefix: IpNet, now: u32) -> Option<Assessment> {
    let p = &s.policy.changing_addresses;
    if !p.enabled {
        return None;
    }
    let ps = s.prefixes.get(&prefix)?;
    let (b, g) = ps.weigh(now, p.window_secs, p.good_memory_secs);
    let members = members(s, prefix);
    let need = p
        .distinct_addresses
        .max(p.bad_to_good_ratio.saturating_mul(g));
    let text = format!(
        "{prefix}: {b} bad-only vs {g} delivering {members}; bans at {need} bad-only (at least {}, and {}× the delivering)",
        p.distinct_addresses, p.bad_to_good_ratio
    );
    Some(Assessment {
        rule: "changing-addresses",
        key: prefix,
        text,
        decision: (b >= need).then(|| decision(s, prefix, ps, b, g)),
    })
}

/// The ban decision on `prefix`, with `b` bad-only and `g` delivering members.
fn decision(s: &ReputationState, prefix: IpNet, ps: &PrefixStats, b: u32, g: u32) -> Decision {
    let p = &s.policy.changing_addresses;
    let members = members(s, prefix);
    Decision {
        key: prefix,
        reason: format!(
            "{b} {members} of {prefix} were bad and never delivered in {}, against {g} that delivered in {}",
            human(p.window_secs as u64),
            human(p.good_memory_secs as u64)
        ),
        base_secs: p.ban_secs,
        evidence: vec![
            Evidence {
                rule: "changing-addresses".into(),
                counter: CounterName::BadOnlyMembers.as_str().into(),
                count: b as u64,
                window_secs: p.window_secs as u64,
                mx_hosts: s.host_names(ps.hosts),
            },
            Evidence {
                rule: "changing-addresses".into(),
                counter: CounterName::DeliveringMembers.as_str().into(),
                count: g as u64,
                window_secs: p.good_memory_secs as u64,
                mx_hosts: vec![],
            },
        ],
        action: BanAction::Drop,
    }
}

/// What `prefix`'s members are: addresses at the narrowest level, else the narrowest prefixes.
fn members(s: &ReputationState, prefix: IpNet) -> String {
    let first = s
        .policy
        .changing_addresses
        .first_len(prefix.addr().is_ipv6());
    if prefix.prefix_len() >= first {
        "addresses".to_string()
    } else {
        format!("/{first}s")
    }
}
