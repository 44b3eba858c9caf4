//! Keeping the agent's table in the kernel. A firewall reload on the MX host — `nft flush
//! ruleset`, `systemctl restart nftables`, a ufw or firewalld reload, a configuration tool —
//! removes the table with every ban in it, and without this guard protection would be silently
//! gone until the agent restarts. The guard listens to the kernel's nf_tables notifications and
//! checks the table, its sets and rules whenever something of the agent's table is deleted (or
//! notifications were lost), and every [`CHECK_EVERY`] as a backstop; when something is missing
//! it rebuilds the table and puts back every live ban from the agent's view, counting and
//! logging each rebuild.

use super::netlink::wire::msg;
use super::netlink::Notifications;
use super::view::BanView;
use super::watch::{blocking, SharedEnforcer};
use mxrep_common::clock::unix_ms;
use mxrep_common::telemetry::instruments::kv;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the table is checked without any notification: the backstop.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Wakes `changed` whenever the kernel announces a deletion in `table` (or lost announcements).
/// Runs on a thread of its own: the socket blocks.
fn listen_for_deletions(table: String, changed: Arc<Notify>) {
    let mut socket = match Notifications::open() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "no nftables notifications ({e}); checking the table every {CHECK_EVERY:?} only"
            );
            return;
        }
    };
    loop {
        match socket.wait() {
            Ok(changes) => {
                let ours = changes.iter().any(|(kind, t)| match t {
                    None => true,
                    Some(t) => *t == table && DELETIONS.contains(kind),
                });
                if ours {
                    changed.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(
                    "nftables notifications stopped ({e}); checking every {CHECK_EVERY:?} only"
                );
                return;
            }
        }
    }
}

/// The announcements that can mean part of the table is gone.
const DELETIONS: [u16; 4] = [msg::DELTABLE, msg::DELCHAIN, msg::DELRULE, msg::DELSET];

/// Checks and rebuilds forever; `rebuilds` counts the rebuilds done. With `table`, also
/// listens for the kernel's announcements of deletions in it.
pub async fn guard_table(
    enforcer: SharedEnforcer,
    view: BanView,
    rebuilds: Arc<AtomicU64>,
    table: Option<String>,
) {
    let changed = Arc::new(Notify::new());
    if let Some(table) = table {
        let changed = changed.clone();
        std::thread::spawn(move || listen_for_deletions(table, changed));
    }
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = changed.notified() => {}
        }
        match blocking(&enforcer, |e| e.intact()).await {
            Ok(true) => {}
            Ok(false) => {
                let live = view.dropping(unix_ms());
                let n = live.len();
                let started = std::time::Instant::now();
                let rebuilt = blocking(&enforcer, move |e| {
                    e.setup()?;
                    e.reconcile(&live)
                })
                .await;
                let m = crate::metrics::agent();
                let op = [kv("op", "restore")];
                m.nft_duration.record(started.elapsed().as_secs_f64(), &op);
                match rebuilt {
                    Ok(()) => {
                        m.table_restores.add(1, &[]);
                        let total = rebuilds.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!(
                            "the nftables table was removed or changed (a firewall reload?): rebuilt it with {n} live bans (rebuild {total})"
                        );
                    }
                    Err(e) => {
                        m.nft_errors.add(1, &op);
                        tracing::error!("cannot rebuild the nftables table: {e:#}")
                    }
                }
            }
            Err(e) => tracing::warn!("cannot check the nftables table: {e:#}"),
        }
    }
}
