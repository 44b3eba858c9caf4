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

/// Every per-address rule's assessment of `addr`.
pub fn assess(s: &ReputationState, addr: IpAddr, now: u32) -> Vec<Assessment> {
    let Some(st) = s.addrs.get(addr) else {
        return vec![];
    };
    let p = &s.policy;
    let key = IpNet::from(addr);
    let room = headroom(s, st, now);
    let raised = if room > 1 {
        format!(" (×{room} for its delivered mail)")
    } else {
        String::new()
    };
    let hosts = s.host_names(st.hosts);
    let decide = |rule: &'static str,
                  counter: CounterName,
                  count: u32,
                  window: u32,
                  base: u64,
                  action,
                  reason: String| Decision {
        key,
        reason,
        base_secs: base,
        evidence: vec![Evidence {
            rule: rule.into(),
            counter: counter.as_str().into(),
            count: count as u64,
            window_secs: window as u64,
            mx_hosts: hosts.clone(),
        }],
        action,
    };
    let mut out = Vec::new();
    if p.rejects.enabled {
        let w = p.rejects.window_secs;
        for (rule, name, count, max) in [
            (
                "rejects",
                CounterName::RejectedRecipients,
                st.refusals.sum_of(REJECTS, now, w),
                p.rejects.max_rejects,
            ),
            (
                "auth-failures",
                CounterName::AuthFailures,
                st.refusals.sum_of(AUTH_FAILURES, now, w),
                p.rejects.max_auth_failures,
            ),
        ] {
            let limit = max.saturating_mul(room);
            let text = format!(
                "{count} of {limit} {} in {}{raised}",
                name.as_str(),
                human(w as u64)
            );
            let decision = (count >= limit).then(|| {
                decide(
                    rule,
                    name,
                    count,
                    w,
                    p.rejects.ban_secs,
                    BanAction::Drop,
                    format!("{text}: limit reached"),
                )
            });
            out.push(Assessment {
                rule,
                key,
                text,
                decision,
            });
        }
    }
    if p.message_rate.enabled {
        let w = p.message_rate.window_secs;
        let m = st.messages.sum(now, w);
        let max = p.message_rate.max_messages;
        let text = format!(
            "{m} accepted messages in {} (bans above {max})",
            human(w as u64)
        );
        let decision = (m > max).then(|| {
            decide(
                "message-rate",
                CounterName::Messages,
                m,
                w,
                p.message_rate.ban_secs,
                BanAction::Drop,
                text.clone(),
            )
        });
        out.push(Assessment {
            rule: "message-rate",
            key,
            text,
            decision,
        });
    }
    if p.connection_rate.enabled {
        out.push(connection_rate(s, st, key, now, room, &raised, &decide));
    }
    out
}

type Decide<'a> =
    dyn Fn(&'static str, CounterName, u32, u32, u64, BanAction, String) -> Decision + 'a;

fn connection_rate(
    s: &ReputationState,
    st: &AddrStats,
    key: IpNet,
    now: u32,
    room: u32,
    raised: &str,
    decide: &Decide<'_>,
) -> Assessment {
    let r = &s.policy.connection_rate;
    let w = r.window_secs;
    let c = st.connections.sum_of(BAD, now, w);
    let limit = r.max_connections.saturating_mul(room);
    let throttle = s.throttles.get(&key.addr()).copied().unwrap_or_default();
    let refused = throttle.at > 0 && throttle.at as u64 + r.tempfail_secs > now as u64;
    let rule = "connection-rate";
    let name = CounterName::BadConnections;
    let (text, decision) = if refused {
        let more = throttle.bad_since;
        let text = format!(
            "temporarily refused; {more} of {limit} more bad connections before a ban{raised}"
        );
        let d = (more > limit).then(|| {
            decide(rule, name, c, w, r.ban_secs, BanAction::Drop, format!(
                "{more} more bad connections (not mail) after a temporary refusal for more than {limit} in {}",
                human(w as u64)
            ))
        });
        (text, d)
    } else {
        let text = format!(
            "{c} of {limit} {} in {}{raised}",
            name.as_str(),
            human(w as u64)
        );
        let d = (c > limit).then(|| {
            decide(rule, name, c, w, r.tempfail_secs, BanAction::Tempfail, format!(
                "{c} bad connections (not mail) in {} across the cluster, more than {limit}: mail refused temporarily",
                human(w as u64)
            ))
        });
        (text, d)
    };
    Assessment {
        rule,
        key,
        text,
        decision,
    }
}
