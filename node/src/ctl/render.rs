//! How bans and members look to people and to machines.

use mxrep_proto::v1 as pb;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn time_of(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// RFC 3339 time of a unix-ms stamp.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_seconds(time_of(ms)).to_string()
}

/// "in 9m 58s" / "expired".
pub fn remaining(ms: i64) -> String {
    match time_of(ms).duration_since(SystemTime::now()) {
        Ok(d) => format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        ),
        Err(_) => "expired".into(),
    }
}

pub fn source(b: &pb::Ban) -> &'static str {
    match pb::BanSource::try_from(b.source) {
        Ok(pb::BanSource::Manual) => "manual",
        Ok(pb::BanSource::Automatic) => "automatic",
        _ => "unknown",
    }
}

/// "drop", "tempfail" (mail refused temporarily by the policy service, no packet drop) or
/// "reject" (refused by the policy service with the reason, no packet drop).
pub fn action(b: &pb::Ban) -> &'static str {
    match pb::BanAction::try_from(b.action) {
        Ok(pb::BanAction::Tempfail) => "tempfail",
        Ok(pb::BanAction::Reject) => "reject",
        _ => "drop",
    }
}

pub fn ban_json(b: &pb::Ban) -> Value {
    json!({
        "prefix": b.prefix,
        "action": action(b),
        "reason": b.reason,
        "source": source(b),
        "created_unix_ms": b.created_unix_ms,
        "expires_unix_ms": b.expires_unix_ms,
        "created": rfc3339(b.created_unix_ms),
        "expires": rfc3339(b.expires_unix_ms),
        "version": b.version,
        "level": b.level,
        "evidence": b.evidence.iter().map(|e| json!({
            "rule": e.rule,
            "counter": e.counter,
            "count": e.count,
            "window_seconds": e.window_seconds,
            "mx_hosts": e.mx_hosts,
        })).collect::<Vec<_>>(),
    })
}

/// "rejects: 5 rejected recipients in 600 s, seen by mx1, mx2".
pub fn evidence_lines(b: &pb::Ban) -> Vec<String> {
    b.evidence
        .iter()
        .map(|e| {
            format!(
                "{}: {} {} within {} s, reported by {}",
                e.rule,
                e.count,
                e.counter,
                e.window_seconds,
                if e.mx_hosts.is_empty() {
                    "-".to_string()
                } else {
                    e.mx_hosts.join(", ")
                }
            )
        })
        .collect()
}

/// One line per ban.
pub fn ban_line(b: &pb::Ban) -> String {
    format!(
        "{:<24} {:<9} {:<8} until {} ({})  {}",
        b.prefix,
        source(b),
        action(b),
        rfc3339(b.expires_unix_ms),
        remaining(b.expires_unix_ms),
        b.reason
    )
}

pub fn member_json(m: &pb::Member) -> Value {
    json!({"id": m.id, "peer_addr": m.peer_addr, "api_addr": m.api_addr, "voter": m.voter})
}

pub fn member_line(m: &pb::Member) -> String {
    format!(
        "  node {:<3} {:<8} peer {:<21} api {}",
        m.id,
        if m.voter { "voter" } else { "learner" },
        m.peer_addr,
        if m.api_addr.is_empty() {
            "-"
        } else {
            &m.api_addr
        }
    )
}
