//! Gauges read when Prometheus scrapes (or the OTLP reader collects): Raft's view from openraft's
//! metrics, and the applied state's ban set, tracked addresses and observe-only flag.

use crate::raft::Cluster;
use crate::state::BanAction;
use mxrep_common::lock::RwLockExt as _;
use openraft::ServerState;
use opentelemetry::metrics::{Meter, ObservableGauge};
use opentelemetry::KeyValue;

/// Keeps the registered gauges; they are read for as long as the meter provider lives.
pub struct ClusterGauges {
    _gauges: Vec<ObservableGauge<u64>>,
}

/// What one scrape reads from Raft.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RaftView {
    pub term: u64,
    pub leader: u64,
    pub is_leader: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// On the leader, the highest index a majority holds; elsewhere, the applied index (a
    /// follower learns of commits only as it applies them).
    pub commit_index: u64,
    /// Entries in the log not yet purged behind a snapshot.
    pub log_entries: u64,
    pub voters: u64,
}

/// Reads Raft's view from `m`.
pub fn raft_view(m: &crate::raft::types::RaftMetrics) -> RaftView {
    let last = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    let purged = m.purged.map(|l| l.index + 1).unwrap_or(0);
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
    let commit = match &m.replication {
        Some(rep) if m.state == ServerState::Leader => {
            let mut matched: Vec<u64> = voters
                .iter()
                .map(|id| {
                    if *id == m.id {
                        last
                    } else {
                        rep.get(id).copied().flatten().map(|l| l.index).unwrap_or(0)
                    }
                })
                .collect();
            matched.sort_unstable_by(|a, b| b.cmp(a));
            matched
                .get(voters.len() / 2)
                .copied()
                .unwrap_or(applied)
                .max(applied)
        }
        _ => applied,
    };
    RaftView {
        term: m.current_term,
        leader: m.current_leader.unwrap_or(0),
        is_leader: u64::from(m.state == ServerState::Leader),
        last_log_index: last,
        applied_index: applied,
        commit_index: commit,
        log_entries: last.saturating_add(1).saturating_sub(purged),
        voters: voters.len() as u64,
    }
}

fn gauge(
    meter: &Meter,
    name: &'static str,
    help: &'static str,
    read: impl Fn(&Cluster) -> Vec<(u64, Vec<KeyValue>)> + Send + Sync + 'static,
    cluster: &Cluster,
) -> ObservableGauge<u64> {
    let cluster = cluster.clone();
    meter
        .u64_observable_gauge(name)
        .with_description(help)
        .with_callback(move |o| {
            for (v, attrs) in read(&cluster) {
                o.observe(v, &attrs);
            }
        })
        .build()
}

fn raft_gauge(
    meter: &Meter,
    name: &'static str,
    help: &'static str,
    pick: fn(&RaftView) -> u64,
    cluster: &Cluster,
) -> ObservableGauge<u64> {
    gauge(
        meter,
        name,
        help,
        move |c| vec![(pick(&raft_view(&c.raft.metrics().borrow())), vec![])],
        cluster,
    )
}

impl ClusterGauges {
    /// Registers the gauges of `cluster` with the global meter.
    pub fn register(cluster: &Cluster) -> Self {
        let m = opentelemetry::global::meter("mxrep-node");
        let g = vec![
            raft_gauge(
                &m,
                "mxrep_raft_term",
                "Current Raft term.",
                |v| v.term,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_leader_id",
                "Id of the leader this node knows (0: none).",
                |v| v.leader,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_is_leader",
                "1 on the leader.",
                |v| v.is_leader,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_last_log_index",
                "Index of the last entry in this node's log.",
                |v| v.last_log_index,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_commit_index",
                "Highest index known committed.",
                |v| v.commit_index,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_applied_index",
                "Index of the last entry applied to the state.",
                |v| v.applied_index,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_log_entries",
                "Entries in the log not purged behind a snapshot.",
                |v| v.log_entries,
                cluster,
            ),
            raft_gauge(
                &m,
                "mxrep_raft_voters",
                "Voting members of the cluster.",
                |v| v.voters,
                cluster,
            ),
            gauge(
                &m,
                "mxrep_bans_active",
                "Bans in force, by action (drop, reject, tempfail).",
                |c| {
                    let s = c.state.read_locked();
                    let mut n = [0u64; 3];
                    for b in s.state.bans.values() {
                        n[match b.action {
                            BanAction::Drop => 0,
                            BanAction::Reject => 1,
                            BanAction::Tempfail => 2,
                        }] += 1;
                    }
                    ["drop", "reject", "tempfail"]
                        .iter()
                        .zip(n)
                        .map(|(a, v)| (v, vec![KeyValue::new("action", *a)]))
                        .collect()
                },
                cluster,
            ),
            gauge(
                &m,
                "mxrep_ban_list_version",
                "Version of the ban list this node has applied.",
                |c| vec![(c.state.read_locked().state.version, vec![])],
                cluster,
            ),
            gauge(
                &m,
                "mxrep_observe_only",
                "1 while the safety breaker holds automatic bans back.",
                |c| {
                    let on = c.state.read_locked().state.observe_only.is_some();
                    vec![(u64::from(on), vec![])]
                },
                cluster,
            ),
            gauge(
                &m,
                "mxrep_tracked_addresses",
                "Addresses with counters in the state.",
                |c| vec![(c.state.read_locked().state.addrs.len() as u64, vec![])],
                cluster,
            ),
            gauge(
                &m,
                "mxrep_dns_lists_failing",
                "DNS lists out of scoring because their probes fail.",
                |c| {
                    vec![(
                        c.state.read_locked().state.dnsbl.failing.len() as u64,
                        vec![],
                    )]
                },
                cluster,
            ),
            gauge(
                &m,
                "mxrep_dns_list_error_answers",
                "DNS list answers that were list errors (127.255.255.x, outside 127/8), ignored.",
                |c| vec![(c.state.read_locked().state.dnsbl.list_errors, vec![])],
                cluster,
            ),
        ];
        Self { _gauges: g }
    }
}
