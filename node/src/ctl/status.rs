//! `mxrepctl status`: members, leader, term, what this node has applied.

use super::render::{member_json, member_line};
use super::Output;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::StatusRequest;
use serde_json::json;
use tonic::transport::Channel;

pub async fn run(client: &mut AdminClient<Channel>, out: &Output) -> anyhow::Result<()> {
    let s = client.status(StatusRequest {}).await?.into_inner();
    if out.json {
        out.json(json!({
            "node_id": s.node_id,
            "state": s.state,
            "leader_id": s.has_leader.then_some(s.leader_id),
            "term": s.term,
            "last_applied": s.last_applied,
            "last_log_index": s.last_log_index,
            "snapshot_index": s.snapshot_index,
            "purged_index": s.purged_index,
            "ban_count": s.ban_count,
            "ban_version": s.ban_version,
            "observe_only": s.observe_only,
            "observe_only_reason": s.observe_only.then_some(&s.observe_only_reason),
            "tracked_addresses": s.tracked_addresses,
            "tracked_prefixes": s.tracked_prefixes,
            "cluster_time_unix_ms": s.cluster_time_unix_ms,
            "members": s.members.iter().map(member_json).collect::<Vec<_>>(),
            "dns_lists": s.dns_lists.iter().map(|l| json!({
                "zone": l.zone, "weight": l.weight, "healthy": l.healthy,
                "reason": (!l.healthy).then_some(&l.reason),
                "queries_today": l.queries_today, "daily_budget": l.daily_budget,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("node {} ({})", s.node_id, s.state.to_lowercase());
    if s.has_leader {
        println!("leader: node {}   term: {}", s.leader_id, s.term);
    } else {
        println!("leader: none known   term: {}", s.term);
    }
    println!(
        "log: last applied {}, last index {}, snapshot at {}, purged up to {}",
        s.last_applied, s.last_log_index, s.snapshot_index, s.purged_index
    );
    println!("bans: {} active (version {})", s.ban_count, s.ban_version);
    println!(
        "tracking: {} addresses, {} prefixes",
        s.tracked_addresses, s.tracked_prefixes
    );
    if s.observe_only {
        println!("!!! OBSERVE-ONLY: new automatic bans are recorded but NOT enforced");
        println!("!!! {}", s.observe_only_reason);
        println!("!!! clear with: mxrepctl observe-only clear");
    }
    println!("members:");
    for m in &s.members {
        println!("{}", member_line(m));
    }
    if !s.dns_lists.is_empty() {
        println!("DNS lists:");
    }
    for l in &s.dns_lists {
        let health = if l.healthy {
            "healthy".to_string()
        } else {
            format!("FAILING, out of scoring: {}", l.reason)
        };
        println!(
            "  {:<32} weight {:>3}  {}  ({} of {} queries today from this node)",
            l.zone, l.weight, health, l.queries_today, l.daily_budget
        );
    }
    Ok(())
}
