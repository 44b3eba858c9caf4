//! The greylisting half of the `Agent` service.
//!
//! - `check`: one policy request answered from this node's applied state (no commit waited on);
//!   the reply also leases the client's greylisting status to the agent for [`LEASE`];
//! - `watch`: every remembered triplet key, then each applied sighting batch's keys, so an agent
//!   holding a lease answers a never-seen triplet (a deferral) without asking;
//! - `report`: the sightings an agent answered itself, queued for the cluster to remember.

use crate::ingest::proposer::Proposer;
use crate::raft::Cluster;
use crate::state::counters::truncate;
use crate::state::greylist::decide::{GreyAnswer, GreyQuery};
use crate::state::greylist::Sighting;
use mxrep_common::lock::RwLockExt as _;
use mxrep_common::shutdown::Shutdown;
use mxrep_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tonic::Status;

/// How long an agent may answer a client's never-seen triplets itself on the strength of one
/// reply: a client allowlisted (or found not suspicious) meanwhile is greylisted at most this
/// much longer.
pub const LEASE: u32 = 10;
/// Keys per message of the starting set.
const CHUNK: usize = 65_536;
/// Most sightings one report may carry.
pub const MAX_REPORT: usize = 20_000;

fn now_secs() -> u32 {
    (mxrep_common::clock::unix_ms() / 1000).clamp(0, u32::MAX as i64) as u32
}

/// The answer to one policy request, and the sighting (if any) queued for the cluster.
pub fn check(
    cluster: &Cluster,
    sightings: &Proposer<Sighting>,
    r: &pb::GreylistRequest,
) -> Result<pb::GreylistReply, Status> {
    let addr = r.client_address.trim().parse().map_err(|_| {
        Status::invalid_argument(format!(
            "unparseable client address '{}'",
            r.client_address.chars().take(64).collect::<String>()
        ))
    })?;
    let q = GreyQuery {
        addr,
        client_name: r.client_name.trim(),
        sender: &r.sender,
        recipient: &r.recipient,
    };
    let guard = cluster.state.read_locked();
    let state = &guard.state;
    let (answer, sighting) = state.greylist_check(&q, now_secs());
    let p = &state.policy.greylist;
    let len = if addr.is_ipv4() {
        p.ipv4_prefix_len
    } else {
        p.ipv6_prefix_len
    };
    let (network, delay_seconds) = (truncate(addr, len).to_string(), p.delay_secs);
    drop(guard);
    // Deferred, or decided by the triplet: the client itself is not exempt.
    let client_greylisted = matches!(answer, GreyAnswer::Defer { .. }) || sighting.is_some();
    if let Some(s) = sighting {
        sightings.push(s);
    }
    use pb::GreylistAction as A;
    let (action, remaining_seconds, reason) = match answer {
        GreyAnswer::Disabled => (A::Disabled, 0, String::new()),
        GreyAnswer::Pass(why) => (A::Pass, 0, why),
        GreyAnswer::Defer {
            remaining_secs,
            reason,
        } => (A::Defer, remaining_secs, reason),
    };
    Ok(pb::GreylistReply {
        action: action as i32,
        remaining_seconds,
        reason,
        client_greylisted,
        network,
        delay_seconds,
        lease_seconds: LEASE,
    })
}

/// Streams every remembered key, `caught_up`, then the keys of each batch as it is applied.
pub fn watch(
    cluster: &Cluster,
    shutdown: Shutdown,
) -> mpsc::Receiver<Result<pb::GreylistKeys, Status>> {
    let sub = cluster.subscribe_greylist();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let (start, mut live) = (sub.index, sub.live);
        let mut chunks: Vec<&[u64]> = sub.keys.chunks(CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let msg = pb::GreylistKeys {
                keys: chunk.to_vec(),
                caught_up: i + 1 == n,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                n = live.recv() => n,
                _ = shutdown.clone().wait() => {
                    let _ = tx.send(Err(Status::unavailable("the node is stopping"))).await;
                    return;
                }
            };
            let msg = match next {
                Ok((index, keys)) if index > start => pb::GreylistKeys {
                    keys: keys.to_vec(),
                    caught_up: false,
                },
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let why = format!("watcher fell {n} batches behind; start over");
                    let _ = tx.send(Err(Status::data_loss(why))).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Queues the sightings of one report; a malformed network rejects the whole report.
pub fn report(sightings: &Proposer<Sighting>, b: pb::SightingBatch) -> Result<u32, Status> {
    if b.sightings.len() > MAX_REPORT {
        return Err(Status::invalid_argument(format!(
            "{} sightings in one report; at most {MAX_REPORT}",
            b.sightings.len()
        )));
    }
    let parsed = b
        .sightings
        .iter()
        .map(|s| {
            let network = s.network.parse::<ipnet::IpNet>().map_err(|_| {
                let shown: String = s.network.chars().take(64).collect();
                Status::invalid_argument(format!("unparseable client network '{shown}'"))
            })?;
            Ok(Sighting {
                triplet: s.triplet,
                network: network.trunc(),
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let n = parsed.len() as u32;
    for s in parsed {
        sightings.push(s);
    }
    Ok(n)
}
