//! `Report` (what protection did, for `mxrepctl report`) and `ReportDrops` (an agent's dropped
//! connection attempts): the hour-by-hour ledger of `crate::state::activity`, read and fed.

use crate::raft::{Cluster, ClusterOp};
use crate::state::activity::DropReport;
use crate::state::{Command, ReputationState};
use ipnet::IpNet;
use mxrep_common::lock::RwLockExt as _;
use mxrep_proto::v1 as pb;
use tonic::Status;

/// The longest look back: the ledger keeps eight days.
const MAX_SINCE_SECS: u64 = 7 * 24 * 3600;
/// Most bans named per report in one drop report.
const MAX_BANS_PER_REPORT: usize = 100_000;

/// Checks an agent's drop counts and proposes them.
pub async fn record_drops(
    cluster: &Cluster,
    counts: pb::DropCounts,
) -> Result<pb::DropAck, Status> {
    if counts.mx_host.trim().is_empty() {
        return Err(Status::invalid_argument("drop counts without an MX host"));
    }
    if counts.by_ban.len() > MAX_BANS_PER_REPORT {
        return Err(Status::invalid_argument(format!(
            "{} bans in one drop report; at most {MAX_BANS_PER_REPORT}",
            counts.by_ban.len()
        )));
    }
    let mut by_ban = Vec::with_capacity(counts.by_ban.len());
    for b in counts.by_ban {
        let p: IpNet = b.prefix.parse().map_err(|_| {
            Status::invalid_argument(format!("'{}' in drop counts is not a prefix", b.prefix))
        })?;
        by_ban.push((p.trunc(), b.dropped));
    }
    if counts.dropped == 0 && by_ban.is_empty() {
        return Ok(pb::DropAck {});
    }
    let report = DropReport {
        mx_host: counts.mx_host,
        dropped: counts.dropped,
        by_ban,
    };
    // A named report is counted once however often it comes; an unnamed one (an older agent)
    // every time.
    let command = match counts.session {
        0 => Command::RecordDrops(report),
        session => Command::RecordDropsOnce {
            session,
            seq: counts.seq,
            report,
        },
    };
    cluster
        .execute(ClusterOp::Write(command))
        .await
        .map_err(super::requests::write_status)?;
    Ok(pb::DropAck {})
}

/// The report for `req` from the applied state.
pub fn report(cluster: &Cluster, req: &pb::ReportRequest) -> Result<pb::ReportResponse, Status> {
    let since_secs = match req.since_secs {
        0 => 24 * 3600,
        s if s > MAX_SINCE_SECS => {
            return Err(Status::invalid_argument(format!(
                "reports reach back 7 days at most ({MAX_SINCE_SECS} s), not {s} s"
            )))
        }
        s => s,
    };
    let top = match req.top {
        0 => 10,
        n => n.min(1000) as usize,
    };
    let guard = cluster.state.read_locked();
    Ok(build(&guard.state, since_secs, top))
}

fn build(s: &ReputationState, since_secs: u64, top: usize) -> pb::ReportResponse {
    let until = s.clock_ms;
    let since = until - (since_secs as i64) * 1000;
    let a = s.activity.since(since);
    let mut top_bans: Vec<(IpNet, u64)> = a.dropped_by_ban.iter().map(|(p, n)| (*p, *n)).collect();
    top_bans.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    top_bans.truncate(top);
    pb::ReportResponse {
        since_unix_ms: since,
        until_unix_ms: until,
        dropped: a.dropped.values().sum(),
        hosts: a
            .dropped
            .iter()
            .map(|(h, n)| pb::HostDrops {
                mx_host: h.clone(),
                dropped: *n,
            })
            .collect(),
        bans_made: a
            .bans
            .iter()
            .map(|((rule, source), n)| pb::BansMade {
                rule: rule.clone(),
                source: source.clone(),
                count: *n,
            })
            .collect(),
        greylisted: a.greylisted,
        greylist_passed: a.greylist_passed,
        dnsbl_hits: a
            .dnsbl_hits
            .iter()
            .map(|(z, n)| pb::ListHits {
                zone: z.clone(),
                hits: *n,
            })
            .collect(),
        top: top_bans
            .into_iter()
            .map(|(p, n)| pb::TopBan {
                prefix: p.to_string(),
                dropped: n,
                active: s.bans.contains_key(&p),
            })
            .collect(),
        lifted: a
            .lifted
            .iter()
            .map(|l| pb::LiftedBan {
                prefix: l.prefix.to_string(),
                actor: l.actor.clone(),
                at_unix_ms: l.at_ms,
            })
            .collect(),
    }
}
