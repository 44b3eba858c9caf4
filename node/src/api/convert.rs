//! Conversions between the state machine's types and the wire contract's messages.

use crate::raft::MxNode;
use crate::state::{Ban, BanAction, BanSource};
use mxrep_proto::v1 as pb;

pub fn ban_to_pb(b: &Ban) -> pb::Ban {
    pb::Ban {
        prefix: b.prefix.to_string(),
        reason: b.reason.clone(),
        source: match b.source {
            BanSource::Manual => pb::BanSource::Manual,
            BanSource::Automatic => pb::BanSource::Automatic,
        } as i32,
        created_unix_ms: b.created_ms,
        expires_unix_ms: b.expires_ms,
        version: b.version,
        level: b.level,
        evidence: b
            .evidence
            .iter()
            .map(|e| pb::Evidence {
                rule: e.rule.clone(),
                mx_hosts: e.mx_hosts.clone(),
                counter: e.counter.clone(),
                count: e.count,
                window_seconds: e.window_secs,
            })
            .collect(),
        action: match b.action {
            BanAction::Drop => pb::BanAction::Drop,
            BanAction::Tempfail => pb::BanAction::Tempfail,
            BanAction::Reject => pb::BanAction::Reject,
        } as i32,
        author: b.author.clone(),
    }
}

pub fn counter_to_pb(c: &crate::state::CounterReport) -> pb::Counter {
    pb::Counter {
        name: c.name.clone(),
        count: c.count,
        window_seconds: c.window_secs,
        limit: c.limit,
    }
}

pub fn member_to_pb(id: u64, node: &MxNode, voter: bool) -> pb::Member {
    pb::Member {
        id,
        peer_addr: node.peer_addr.clone(),
        api_addr: node.api_addr.clone(),
        voter,
    }
}

/// An address's DNS verdict (cluster seconds become unix milliseconds).
pub fn dns_to_pb(e: &crate::state::dnsbl::DnsEntry) -> pb::DnsVerdict {
    pb::DnsVerdict {
        score: e.score,
        listed_by: e
            .listed_by
            .iter()
            .map(|(zone, text)| format!("{zone}: {text}"))
            .collect(),
        verified_name: e.name.clone(),
        until_unix_ms: i64::from(e.until) * 1000,
    }
}

/// One audit-trail entry.
pub fn audit_to_pb(e: &crate::state::audit::AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        at_unix_ms: e.at_ms,
        log_index: e.index,
        actor: e.actor.clone(),
        action: e.action.clone(),
        replaced: e.replaced.clone(),
    }
}
