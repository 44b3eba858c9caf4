//! Keeping the agent's table in the kernel. A firewall reload on the MX host — `nft flush
//! ruleset`, `systemctl restart nftables`, a ufw or firewalld reload, a configuration tool —
//! removes the table with every ban in it, and without this guard protection would be silently
//! gone until the agent restarts. The guard checks the table, its sets and drop rules every
//! [`CHECK_EVERY`] and, when something is missing, rebuilds it and puts back every live ban from
//! the agent's view, counting and logging each rebuild.

use super::view::BanView;
use super::watch::{blocking, SharedEnforcer};
use mxrep_common::clock::unix_ms;
use mxrep_common::telemetry::instruments::kv;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the table is checked: a rebuild lands within about this long of the loss.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Checks and rebuilds forever; `rebuilds` counts the rebuilds done.
pub async fn guard_table(enforcer: SharedEnforcer, view: BanView, rebuilds: Arc<AtomicU64>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
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
