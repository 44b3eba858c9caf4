//! Following the cluster's ban list (`WatchBans`) into the firewall.
//!
//! A snapshot is reconciled with the sets atomically; changes are applied as they come, every
//! change that is already waiting going into the same nftables transaction. Element timeouts are
//! the bans' remaining time, so bans expire in the kernel even if the agent or the cluster is
//! gone. The version reached is kept in the state dir; after a reconnect, or a restart of the
//! agent, the stream resumes from it, and while no node answers the sets stay as they are.

use super::translate::{translate, ViewChange};
use super::view::{BanView, Known, Refusal};
use super::Enforcer;
use crate::state_dir::StateDir;
use mxrep_common::lock::MutexExt as _;
use mxrep_proto::v1 as pb;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type SharedEnforcer = Arc<Mutex<Box<dyn Enforcer>>>;

use mxrep_common::clock::unix_ms as now_ms;

pub(super) async fn blocking<T: Send + 'static>(
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
                                refusal: Refusal::Drop,
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
        let t = translate(updates, now_ms());
        if let Some(snap) = t.snapshot {
            let n = snap.desired.len();
            let desired = snap.desired;
            blocking(enforcer, move |e| e.reconcile(&desired)).await?;
            view.replace(snap.known);
            *version = snap.version;
            tracing::info!(
                "reconciled the sets with the cluster's {n} bans (version {})",
                snap.version
            );
        }
        for c in t.view {
            match c {
                ViewChange::Insert(p, k) => view.insert(p, k),
                ViewChange::Remove(p) => view.remove(&p),
            }
        }
        *version = (*version).max(t.version);
        if !t.ops.is_empty() {
            let (n, ops) = (t.ops.len(), t.ops);
            blocking(enforcer, move |e| e.apply(&ops)).await?;
            tracing::debug!("applied {n} ban changes (version {})", *version);
        }
        if let Err(e) = state.save_ban_version(*version) {
            tracing::warn!("cannot save the ban-list version: {e}");
        }
    }
}
