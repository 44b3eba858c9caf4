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
use mxrep_common::telemetry::instruments::kv;
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1 as pb;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type SharedEnforcer = Arc<Mutex<Box<dyn Enforcer>>>;

use mxrep_common::clock::unix_ms as now_ms;

pub(crate) async fn blocking<T: Send + 'static>(
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
    view.set_version(version);
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
        let arrived = Arrived::of(&updates);
        let t = translate(updates, now_ms());
        if let Some(snap) = t.snapshot {
            let n = snap.desired.len();
            let desired = snap.desired;
            timed(
                "reconcile",
                blocking(enforcer, move |e| e.reconcile(&desired)),
            )
            .await?;
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
            timed("apply", blocking(enforcer, move |e| e.apply(&ops))).await?;
            tracing::debug!("applied {n} ban changes (version {})", *version);
        }
        view.set_version(*version);
        arrived.enforced(now_ms());
        if let Err(e) = state.save_ban_version(*version) {
            tracing::warn!("cannot save the ban-list version: {e}");
        }
    }
}

/// Runs one nftables transaction, measuring it and counting its failure, by `op`.
async fn timed<T>(
    op: &'static str,
    transaction: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let started = std::time::Instant::now();
    let r = transaction.await;
    let m = crate::metrics::agent();
    m.nft_duration
        .record(started.elapsed().as_secs_f64(), &[kv("op", op)]);
    if r.is_err() {
        m.nft_errors.add(1, &[kv("op", op)]);
    }
    r
}

/// The new bans in one run of updates: when the cluster created them (for the enforcement
/// delay) and the traces they belong to (one `ban.enforce` span per trace, open until the
/// transaction is done).
struct Arrived {
    created_ms: Vec<i64>,
    spans: Vec<tracing::Span>,
}

impl Arrived {
    fn of(updates: &[pb::BanUpdate]) -> Self {
        let mut created_ms = vec![];
        let mut traces: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for u in updates {
            let Some(pb::ban_update::Update::Change(c)) = &u.update else {
                continue;
            };
            let Some(b) = c
                .ban
                .as_ref()
                .filter(|_| c.kind() == pb::BanChangeKind::Added)
            else {
                continue;
            };
            created_ms.push(b.created_unix_ms);
            if !c.traceparent.is_empty() {
                traces.entry(&c.traceparent).or_default().push(&b.prefix);
            }
        }
        let spans = traces
            .into_iter()
            .map(|(tp, prefixes)| {
                let span =
                    tracing::info_span!("ban.enforce", bans = prefixes.len(), prefix = prefixes[0]);
                propagate::set_parent(&span, tp);
                span
            })
            .collect();
        Self { created_ms, spans }
    }

    /// The bans are in the kernel (or the view) at `now`: records their delay, ends the spans.
    fn enforced(self, now: i64) {
        let m = crate::metrics::agent();
        for c in self.created_ms {
            m.enforcement_delay
                .record((now - c).max(0) as f64 / 1000.0, &[]);
        }
        drop(self.spans);
    }
}
