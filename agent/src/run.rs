//! The running agent: sources → uplink, and the ban-list watch → enforcer. Nothing here ever
//! blocks reading the log or answering Postfix: the uplink's queue never blocks a push, and the
//! enforcer works on its own task.

use crate::config::AgentConfig;
use crate::enforce::nft::NftEnforcer;
use crate::enforce::view::BanView;
use crate::enforce::{guard, watch, DryRun, Enforcer};
use crate::sources::connections::ConnectionTracker;
use crate::sources::log_follower::LogFollower;
use crate::sources::policy_server::PolicyService;
use crate::sources::postfix::{parse_line_in, Parsed};
use crate::state_dir::StateDir;
use crate::uplink::{Uplink, UplinkConfig};
use anyhow::Context;
use mxrep_common::lock::MutexExt as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often followed logs are checked for new lines.
const LOG_POLL: Duration = Duration::from_millis(20);

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    let state = StateDir::open(&cfg.state_dir)?;
    let mut enforcer: Box<dyn Enforcer> = if cfg.dry_run {
        Box::new(DryRun::default())
    } else {
        let mut nft = NftEnforcer::new(&cfg.nft_table, &cfg.ports);
        nft.local_rate = cfg.local_rate;
        Box::new(nft)
    };
    enforcer
        .setup()
        .with_context(|| format!("cannot set up nftables table inet {}", cfg.nft_table))?;
    let enforcer = Arc::new(Mutex::new(enforcer));
    let view = BanView::default();
    let uplink = Uplink::start(UplinkConfig::new(
        cfg.cluster.clone(),
        cfg.node_name.clone(),
    ));
    tokio::spawn(watch::follow(
        cfg.cluster.clone(),
        enforcer.clone(),
        view.clone(),
        state.clone(),
    ));
    tokio::spawn(guard::guard_table(enforcer, view.clone(), Arc::default()));

    if let Some(addr) = cfg.policy_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for policy requests on {addr}"))?;
        tokio::spawn(
            PolicyService {
                view: view.clone(),
                uplink: Some(uplink.clone()),
            }
            .serve(l),
        );
    }

    let saved = state.positions();
    let positions = Arc::new(Mutex::new(saved.clone()));
    for path in &cfg.postfix_logs {
        let mut f = LogFollower::new(path, saved.get(path).copied());
        let uplink = uplink.clone();
        let positions = positions.clone();
        let state = state.clone();
        let tz = cfg.log_timezone.clone();
        tokio::spawn(async move {
            let mut not_understood = 0u64;
            let mut connections = ConnectionTracker::default();
            loop {
                let before = f.position();
                let now = chrono::Utc::now();
                for e in connections.expire(now.timestamp_millis()) {
                    uplink.push(e);
                }
                for line in f.poll() {
                    let read = parse_line_in(&line, now, &tz);
                    match &read.parsed {
                        Parsed::Event(_) => {
                            for e in connections.feed(read) {
                                uplink.push(e);
                            }
                        }
                        Parsed::Ignored => {}
                        Parsed::NotUnderstood => {
                            not_understood += 1;
                            if not_understood.is_power_of_two() {
                                tracing::warn!(
                                    "{}: {not_understood} lines not understood so far, e.g. {:?}",
                                    f.path().display(),
                                    line.chars().take(100).collect::<String>()
                                );
                            }
                        }
                    }
                }
                if f.position() != before {
                    let mut p = positions.locked();
                    p.insert(f.path().to_path_buf(), f.position());
                    if let Err(e) = state.save_positions(&p) {
                        tracing::warn!("cannot save log positions: {e}");
                    }
                }
                tokio::time::sleep(LOG_POLL).await;
            }
        });
    }

    let stats_uplink = uplink.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(60));
        loop {
            t.tick().await;
            let s = stats_uplink.stats();
            tracing::info!(
                "events: {} read, {} acknowledged, {} refused by the cluster, {} dropped (queue full), {} queued",
                s.pushed.load(Ordering::Relaxed),
                s.acked.load(Ordering::Relaxed),
                s.refused.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
                stats_uplink.queued()
            );
        }
    });
    tracing::info!(node = %cfg.node_name, cluster = ?cfg.cluster, "mxrep-agent running");
    mxrep_common::shutdown::signal().await;
    tracing::info!("stopping; the nftables sets stay and expire by themselves");
    Ok(())
}
