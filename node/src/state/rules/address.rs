//! Per-address rules, strongest first: rejected recipients and SASL failures (what fail2ban
//! does per host), message rate, and the connection rate of connections that were not mail —
//! answered first with a temporary refusal, with a ban only if it goes on.

use super::{human, Assessment, Decision};
use crate::state::counters::{AddrStats, CounterName, AUTH_FAILURES, BAD, REJECTS};
use crate::state::{BanAction, Evidence, ReputationState};
use ipnet::IpNet;
use std::net::IpAddr;

/// How much a delivering address's limits are raised: 1, 2 after one delivered message, the
/// policy's factor after `good_history_messages`.
pub fn headroom(s: &ReputationState, st: &AddrStats, now: u32) -> u32 {
    let memory = s.policy.changing_addresses.good_memory_secs;
    let r = &s.policy.connection_rate;
    match st.good.sum(now, memory) {
        0 => 1,
        g if g >= r.good_history_messages => r.good_history_factor.max(2),
        _ => 2,
    }
}

/// One rule's numbers for one address: cheap to compute, no text.
#[derive(Debug, Clone, Copy)]
struct Check {
    rule: &'static str,
    counter: CounterName,
    count: u32,
    limit: u32,
    window: u32,
    /// At the limit: the rule decides.
    hit: bool,
    base_secs: u64,
    action: BanAction,
    /// The connection-rate rule counts bad connections since its temporary refusal.
    refused: bool,
}

/// Every enabled per-address rule's numbers, strongest first.
fn checks(s: &ReputationState, st: &AddrStats, addr: IpAddr, now: u32, room: u32) -> Vec<Check> {
    let p = &s.policy;
    let mut out = Vec::with_capacity(4);
    if p.rejects.enabled {
        let w = p.rejects.window_secs;
        for (rule, counter, lane, max) in [
            (
                "rejects",
                CounterName::RejectedRecipients,
                REJECTS,
                p.rejects.max_rejects,
            ),
            (
                "auth-failures",
                CounterName::AuthFailures,
                AUTH_FAILURES,
                p.rejects.max_auth_failures,
            ),
        ] {
            let count = st.refusals.sum_of(lane, now, w);
            let limit = max.saturating_mul(room);
            let (hit, base_secs, action, refused) =
                (count >= limit, p.rejects.ban_secs, BanAction::Drop, false);
            out.push(Check {
                rule,
                counter,
                count,
                limit,
                window: w,
                hit,
                base_secs,
                action,
                refused,
            });
        }
    }
    if p.message_rate.enabled {
        let w = p.message_rate.window_secs;
        let count = st.messages.sum(now, w);
        let limit = p.message_rate.max_messages;
        out.push(Check {
            rule: "message-rate",
            counter: CounterName::Messages,
            count,
            limit,
            window: w,
            hit: count > limit,
            base_secs: p.message_rate.ban_secs,
            action: BanAction::Drop,
            refused: false,
        });
    }
    let r = &p.connection_rate;
    if r.enabled {
        let w = r.window_secs;
        let limit = r.max_connections.saturating_mul(room);
        let throttle = s.throttles.get(&addr).copied().unwrap_or_default();
        let refused = throttle.at > 0 && throttle.at as u64 + r.tempfail_secs > now as u64;
        let (count, base_secs, action) = if refused {
            (throttle.bad_since, r.ban_secs, BanAction::Drop)
        } else {
            (
                st.connections.sum_of(BAD, now, w),
                r.tempfail_secs,
                BanAction::Tempfail,
            )
        };
        out.push(Check {
            rule: "connection-rate",
            counter: CounterName::BadConnections,
            count,
            limit,
            window: w,
            hit: count > limit,
            base_secs,
            action,
            refused,
        });
    }
    out
}

/// Where `c` stands, in words.
fn text(c: &Check, room: u32) -> String {
    let raised = if room > 1 {
        format!(" (×{room} for its delivered mail)")
    } else {
        String::new()
    };
    let w = human(c.window as u64);
    match c.rule {
        "message-rate" => format!(
            "{} accepted messages in {w} (bans above {})",
            c.count, c.limit
        ),
        "connection-rate" if c.refused => format!(
            "temporarily refused; {} of {} more bad connections before a ban{raised}",
            c.count, c.limit
        ),
        _ => format!(
            "{} of {} {} in {w}{raised}",
            c.count,
            c.limit,
            c.counter.as_str()
        ),
    }
}

/// The decision of a rule at its limit, with the evidence an operator needs.
fn decision(s: &ReputationState, st: &AddrStats, addr: IpAddr, c: &Check, room: u32) -> Decision {
    let w = human(c.window as u64);
    let reason = match (c.rule, c.refused) {
        ("connection-rate", true) => format!(
            "{} more bad connections (not mail) after a temporary refusal, more than {} in {w}",
            c.count, c.limit
        ),
        ("connection-rate", false) => format!(
            "{} bad connections (not mail) in {w} across the cluster, more than {}: mail refused temporarily",
            c.count, c.limit
        ),
        ("message-rate", _) => text(c, room),
        _ => format!("{}: limit reached", text(c, room)),
    };
    Decision {
        key: IpNet::from(addr),
        reason,
        base_secs: c.base_secs,
        evidence: vec![Evidence {
            rule: c.rule.into(),
            counter: c.counter.as_str().into(),
            count: c.count as u64,
            window_secs: c.window as u64,
            mx_hosts: s.host_names(st.hosts),
        }],
        action: c.action,
    }
}

/// The first per-address rule at its limit, if any: the decision path, no text built otherwise.
pub fn decide(s: &ReputationState, addr: IpAddr, now: u32) -> Option<Decision> {
    let st = s.addrs.get(addr)?;
    let room = headroom(s, st, now);
    let hit = checks(s, st, addr, now, room).into_iter().find(|c| c.hit)?;
    // A temporary refusal of an address that is refused or banned already changes nothing (the
    // safety layer drops it): no decision is written.
    if hit.action == BanAction::Tempfail && s.bans.contains_key(&IpNet::from(addr)) {
        return None;
    }
    Some(decision(s, st, addr, &hit, room))
}

/// Every per-address rule's assessment of `addr`, for `ip show`.
pub fn assess(s: &ReputationState, addr: IpAddr, now: u32) -> Vec<Assessment> {
    let Some(st) = s.addrs.get(addr) else {
        return vec![];
    };
    let room = headroom(s, st, now);
    checks(s, st, addr, now, room)
        .iter()
        .map(|c| Assessment {
            rule: c.rule,
            key: IpNet::from(addr),
            text: text(c, room),
            decision: c.hit.then(|| decision(s, st, addr, c, room)),
        })
        .collect()
}
