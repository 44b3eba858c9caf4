//! Following the cluster's ban list (`WatchBans`) into the firewall.
//!
//! A snapshot is reconciled with the sets atomically; changes are applied as they come, every
//! change that is already waiting going into the same nftables transaction. Element timeouts are
//! the bans' remaining time, so bans expire in the kernel even if the agent or the cluster is
//! gone. The version reached is kept in the state dir; after a reconnect, or a restart of the
//! agent, the stream resumes from it, and while no node answers the sets stay as they are.

use mxrep_common::lock::MutexExt as _;
use super::view::{BanView, Known};
use super::{BanOp, Enforcer};
use crate::state_dir::StateDir;
use ipnet::IpNet;
use mxrep_proto::v1 as pb;
use pb::ban_update::Update;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type SharedEnforcer = Arc<Mutex<Box<dyn Enforcer>>>;

use mxrep_common::clock::unix_ms as now_ms;

/// Seconds left of a ban, rounded up; None once expired.
fn remaining(expires_ms: i64, now: i64) -> Option<u64> {
    (expires_ms > now).then(|| ((expires_ms - now + 999) / 1000) as u64)
}

async fn blocking<T: Send + 'static>(
    e: &SharedEnforcer,
    f: impl FnOnce(&mut dyn Enforcer) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let e = e.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = e.locked();
        f(guard.as_mut())
    })
    .await?
}

/// Follows the ban list forever, moving through `cluster` on failures.
pub async fn follow(
    cluster: Vec<String>,
    enforcer: SharedEnforcer,
    view: BanView,
    state: StateDir,
) {
    let mut version = state.ban_version();
    // What the kernel still holds from before a restart is what we resume from.
    match blocking(&enforcer, |e| e.current()).await {
        Ok(held) if !held.is_empty() || version == 0 => {
            let now = now_ms();
            view.replace(
                held.into_iter()
                    .map(|(p, left)| {
                        (
                            p,
                            Known {
                                expires_ms: now + left as i64 * 1000,
                                reason: "banned before this agent started".into(),
                            },
                        )
                    })
                    .collect(),
            );
        }
        Ok(_) => version = 0, // nothing held: ask for a snapshot
        Err(e) => {
            tracing::warn!("cannot read the sets: {e:#}");
            version = 0;
        }
    }
    let version = &std::sync::Mutex::new(version);
    mxrep_common::backoff::reconnect_forever(
        "ban list (the sets stay as they are)",
        &cluster,
        |addr| {
            let (enforcer, view, state, addr) = (&enforcer, &view, &state, addr.to_string());
            async move {
                let mut v = *version.locked();
                let r = session(&addr, enforcer, view, state, &mut v).await;
                *version.locked() = v;
                r
            }
        },
    )
    .await
}

async fn session(
    addr: &str,
    enforcer: &SharedEnforcer,
    view: &BanView,
    state: &StateDir,
    version: &mut u64,
) -> anyhow::Result<()> {
    let ch = mxrep_common::endpoint::connect(addr).await?;
    let mut stream = pb::agent_client::AgentClient::new(ch)
        .max_decoding_message_size(256 << 20)
        .watch_bans(pb::WatchBansRequest {
            from_version: *version,
            mx_host: String::new(),
        })
        .await?
        .into_inner();
    tracing::info!("following the ban list on {addr} from version {}", *version);
    loop {
        let Some(first) = stream.message().await? else {
            anyhow::bail!("the node closed the ban-list stream");
        };
        let mut updates = vec![first];
        // Everything already waiting goes into the same transaction.
        while updates.len() < 10_000 {
            match tokio::time::timeout(Duration::from_millis(1), stream.message()).await {
                Ok(Ok(Some(u))) => updates.push(u),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
            }
        }
        let now = now_ms();
        let mut ops = Vec::new();
        for u in updates {
            match u.update {
                Some(Update::Snapshot(s)) => {
                    ops.clear();
                    let mut known = BTreeMap::new();
                    let mut desired = Vec::new();
                    for b in s.bans {
                        let Ok(p) = b.prefix.parse::<IpNet>() else {
                            continue;
                        };
                        if let Some(left) = remaining(b.expires_unix_ms, now) {
                            desired.push((p, left));
                            known.insert(
                                p,
                                Known {
                                    expires_ms: b.expires_unix_ms,
                                    reason: b.reason,
                                },
                            );
                        }
                    }
                    let n = desired.len();
                    blocking(enforcer, move |e| e.reconcile(&desired)).await?;
                    view.replace(known);
                    *version = s.version;
                    tracing::info!(
                        "reconciled the sets with the cluster's {n} bans (version {})",
                        s.version
                    );
                }
                Some(Update::Change(c)) => {
                    let kind = c.kind();
                    let Some(b) = c.ban else { continue };
                    let Ok(p) = b.prefix.parse::<IpNet>() else {
                        continue;
                    };
                    match kind {
                        pb::BanChangeKind::Added | pb::BanChangeKind::Extended => {
                            if let Some(left) = remaining(b.expires_unix_ms, now) {
                                ops.push(if kind == pb::BanChangeKind::Added {
                                    BanOp::Add {
                                        prefix: p,
                                        timeout_secs: left,
                                    }
                                } else {
                                    BanOp::Refresh {
                                        prefix: p,
                                        timeout_secs: left,
                                    }
                                });
                                view.insert(
                                    p,
                                    Known {
                                        expires_ms: b.expires_unix_ms,
                                        reason: b.reason,
                                    },
                                );
                            }
                        }
                        _ => {
                            ops.push(BanOp::Remove { prefix: p });
                            view.remove(&p);
                        }
                    }
                    *version = (*version).max(c.version);
                }
                None => {}
            }
        }
        if !ops.is_empty() {
            let n = ops.len();
            blocking(enforcer, move |e| e.apply(&ops)).await?;
            tracing::debug!("applied {n} ban changes (version {})", *version);
        }
        if let Err(e) = state.save_ban_version(*version) {
            tracing::warn!("cannot save the ban-list version: {e}");
        }
    }
}
