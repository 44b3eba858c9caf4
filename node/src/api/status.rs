//! The `Status` answer: this node's Raft view, the ban set's size and version, observe-only,
//! what the engine tracks, and the DNS lists with their health and today's queries.

use crate::dns::lookups::DnsStats;
use crate::raft::Cluster;
use mxrep_common::lock::RwLockExt as _;
use mxrep_proto::v1 as pb;

/// The status of the node holding `cluster`.
pub fn status(cluster: &Cluster, dns: Option<&DnsStats>) -> pb::StatusResponse {
    let m = cluster.raft.metrics().borrow().clone();
    let a = cluster.state.read_locked();
    let members = cluster
        .members()
        .iter()
        .map(|(id, (n, v))| super::convert::member_to_pb(*id, n, *v))
        .collect();
    let observe = a.state.observe_only.clone();
    pb::StatusResponse {
        node_id: cluster.id,
        state: format!("{:?}", m.state),
        leader_id: m.current_leader.unwrap_or(0),
        has_leader: m.current_leader.is_some(),
        term: m.current_term,
        last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        last_log_index: m.last_log_index.unwrap_or(0),
        snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
        purged_index: m.purged.map(|l| l.index).unwrap_or(0),
        members,
        ban_count: a.state.bans.len() as u64,
        ban_version: a.state.version,
        observe_only: observe.is_some(),
        observe_only_reason: observe.map(|o| o.reason).unwrap_or_default(),
        tracked_addresses: a.state.addrs.len() as u64,
        tracked_prefixes: a.state.prefixes.len() as u64,
        cluster_time_unix_ms: a.state.clock_ms,
        dns_lists: dns_lists(&a.state, dns),
    }
}

/// The policy's DNS lists with their health and this node's queries today.
fn dns_lists(state: &crate::state::ReputationState, dns: Option<&DnsStats>) -> Vec<pb::DnsList> {
    let d = &state.policy.dnsbl;
    d.sites
        .iter()
        .filter_map(|s| crate::state::dnsbl::site::Site::parse(s).ok())
        .map(|site| {
            let failing = state.dnsbl.failing.get(&site.zone);
            pb::DnsList {
                queries_today: dns.map_or(0, |s| s.today(&site.zone)),
                healthy: failing.is_none(),
                reason: failing.cloned().unwrap_or_default(),
                weight: site.weight,
                daily_budget: d.daily_budget,
                zone: site.zone,
            }
        })
        .collect()
}
