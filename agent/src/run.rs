//! The running agent: sources → uplink, and the ban-list watch → enforcer. Nothing here ever
//! blocks reading the log or answering Postfix: the uplink's queue never blocks a push, and the
//! enforcer works on its own task.

use crate::config::AgentConfig;
use crate::enforce::nft::NftEnforcer;
use crate::enforce::view::BanView;
use crate::enforce::{guard, watch, DryRun, Enforcer};
use crate::sources::greylist::GreylistClient;
use crate::sources::log_pump;
use crate::sources::policy_server::PolicyService;
use crate::state_dir::StateDir;
use crate::uplink::{Uplink, UplinkConfig};
use anyhow::Context;
use mxrep_common::telemetry::metrics_http;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a stopping agent waits for the cluster to acknowledge what it read (Kubernetes
/// allows 30 s between SIGTERM and SIGKILL by default).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs the agent until SIGTERM or SIGINT; `/metrics` serves `registry` when `--metrics-listen`
/// is given.
pub async fn run(cfg: AgentConfig, registry: Option<prometheus::Registry>) -> anyhow::Result<()> {
    // Every stream to the cluster presents this agent's certificate (role mxrep:agent).
    mxrep_common::tls::use_for_clients(cfg.tls.clone());
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
    tokio::spawn(crate::enforce::drops::report_drops(
        enforcer.clone(),
        cfg.cluster.clone(),
        cfg.node_name.clone(),
        cfg.drop_report_every,
    ));
    let table = (!cfg.dry_run).then(|| cfg.nft_table.clone());
    tokio::spawn(guard::guard_table(
        enforcer,
        view.clone(),
        Arc::default(),
        table,
    ));

    if let Some(addr) = cfg.policy_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for policy requests on {addr}"))?;
        tokio::spawn(
            PolicyService {
                view: view.clone(),
                uplink: Some(uplink.clone()),
                greylist: Some(GreylistClient::start(
                    cfg.cluster.clone(),
                    cfg.node_name.clone(),
                )),
            }
            .serve(l),
        );
    }

    let _gauges = crate::metrics::register_gauges(&uplink, &view);
    if let (Some(addr), Some(registry)) = (cfg.metrics_listen, registry) {
        // Served until the process exits.
        metrics_http::spawn(addr, registry, mxrep_common::shutdown::Shutdown::never()).await?;
    }
    let pump = log_pump::start(
        &cfg.postfix_logs,
        &state,
        &uplink,
        &cfg.log_timezone,
        &cfg.node_name,
    );
    // Fired on SIGTERM: the journal source reads no further.
    let (stop_sources, sources_stop) = mxrep_common::shutdown::channel();
    let journal = cfg.journal.clone().map(|j| {
        tokio::spawn(crate::sources::journal::follow(
            j,
            state.clone(),
            uplink.clone(),
            cfg.log_timezone.clone(),
            sources_stop.clone(),
        ))
    });
    if !cfg.container_logs.is_empty() {
        crate::sources::container_logs::watch(cfg.container_logs.clone(), pump.clone())?;
    }
    let syslog = match cfg.syslog_listen {
        Some(addr) => {
            let r = crate::sources::syslog::start(
                addr,
                cfg.cluster.clone(),
                cfg.log_timezone.clone(),
                sources_stop.clone(),
            )
            .await?;
            tracing::info!("receiving syslog on udp and tcp {addr}");
            Some(r)
        }
        None => None,
    };
    tokio::spawn(report_stats(uplink.clone()));
    let metrics = cfg
        .metrics_listen
        .map(|a| format!("http://{a}/metrics"))
        .unwrap_or_else(|| "off".into());
    tracing::info!(node = %cfg.node_name, cluster = ?cfg.cluster, %metrics, "mxrep-agent running");
    mxrep_common::shutdown::signal().await;
    // Lines read are past the saved log position: their verdicts must reach the cluster before
    // the agent exits, or a restart would lose them.
    tracing::info!("stopping: reading no further, sending what was read");
    stop_sources.fire();
    if !pump.stop(Duration::from_secs(2)).await {
        tracing::warn!("a log follower did not stop within 2 s");
    }
    if let Some(j) = journal {
        if tokio::time::timeout(Duration::from_secs(2), j)
            .await
            .is_err()
        {
            tracing::warn!("the journal source did not stop within 2 s");
        }
    }
    match uplink.drain(DRAIN_LIMIT).await {
        0 => tracing::info!(
            "every verdict read was acknowledged by the cluster ({})",
            uplink.stats().summary()
        ),
        n => tracing::warn!(
            "{n} verdicts not acknowledged after {DRAIN_LIMIT:?} (is the cluster reachable?); they are lost"
        ),
    }
    if let Some(r) = syslog {
        match r.drain(DRAIN_LIMIT).await {
            Some(0) => {
                tracing::info!("syslog: every verdict received was acknowledged by the cluster")
            }
            Some(n) => tracing::warn!("syslog: {n} verdicts not acknowledged; they are lost"),
            None => tracing::warn!(
                "syslog: the messages received were not all parsed within {DRAIN_LIMIT:?}; the rest are lost"
            ),
        }
    }
    tracing::info!("stopped; the nftables sets stay and expire by themselves");
    Ok(())
}

/// Logs the uplink's counters once a minute.
async fn report_stats(uplink: Uplink) {
    let mut t = tokio::time::interval(Duration::from_secs(60));
    loop {
        t.tick().await;
        tracing::info!(
            "verdicts: {}, {} queued",
            uplink.stats().summary(),
            uplink.queued()
        );
    }
}
