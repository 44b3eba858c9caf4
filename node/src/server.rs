//! `mxrep-node` as a process: lock the data dir, open sled, start Raft, serve the peer and API
//! ports, form or rejoin the cluster, tick while leader, and shut down cleanly on SIGTERM/SIGINT.
//!
//! As in mini-redis, [`run`] takes its listeners and a shutdown future, so a test can run a node
//! in-process; [`run_until_signal`] binds the configured addresses and stops on a signal.
//! Shutdown never waits on a client: streams to agents end when it fires, and whatever still
//! holds a connection after [`DRAIN`] is cut.

use crate::api;
use crate::api::roles::{Port, RoleLayer};
use crate::config::NodeConfig;
use crate::data_dir::DataDirLock;
use crate::dns::lookups::DnsLookups;
use crate::dns::resolver::ListResolver;
use crate::ingest::{Aggregator, AggregatorConfig};
use crate::raft::bootstrap::initialize_when_ready;
use crate::raft::join::join_until_member;
use crate::raft::log_store::SledLogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::peer_service::PeerService;
use crate::raft::scale_down::remove_departed;
use crate::raft::state_store::StateMachineStore;
use crate::raft::{Cluster, ClusterOp, MxNode, Raft};
use crate::state::Command;
use crate::tls_accept::ReloadingTls;
use anyhow::Context;
use mxrep_common::telemetry::metrics_http;
use mxrep_proto::v1::peer_server::PeerServer;
use openraft::ServerState;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a stopping node waits for open connections to finish before cutting them.
pub const DRAIN: Duration = Duration::from_secs(3);

/// Where `/metrics` is served: a bound listener and the registry it renders.
pub struct MetricsEndpoint {
    pub listener: TcpListener,
    pub registry: prometheus::Registry,
}

/// Binds the configured addresses and runs the node until SIGTERM or SIGINT; `/metrics` serves
/// `registry` when `--metrics-listen` is given.
pub async fn run_until_signal(
    cfg: NodeConfig,
    registry: Option<prometheus::Registry>,
) -> anyhow::Result<()> {
    // The lock first: once the API port answers, the data dir is surely held.
    let lock = DataDirLock::acquire(&cfg.data_dir)?;
    let api_listener = TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", cfg.api_listen))?;
    let peer_listener = TcpListener::bind(cfg.peer_listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", cfg.peer_listen))?;
    let metrics = match (cfg.metrics_listen, registry) {
        (Some(addr), Some(registry)) => Some(MetricsEndpoint {
            listener: TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
            registry,
        }),
        _ => None,
    };
    let health = match cfg.health_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for health checks on {addr}"))?,
        ),
        None => None,
    };
    run(
        cfg,
        lock,
        Listeners {
            api: api_listener,
            peer: peer_listener,
            metrics,
            health,
        },
        mxrep_common::shutdown::signal(),
    )
    .await
}

/// The sockets a node serves on.
pub struct Listeners {
    pub api: TcpListener,
    pub peer: TcpListener,
    pub metrics: Option<MetricsEndpoint>,
    /// Plaintext gRPC health for probes (`--health-listen`).
    pub health: Option<TcpListener>,
}

/// Streams reset before the peer server accepted them that one connection may have pending.
const PEER_RESET_STREAMS: usize = 4096;

/// Runs a node on the given listeners, holding its data dir's `lock`, until `shutdown`
/// resolves.
pub async fn run(
    cfg: NodeConfig,
    lock: DataDirLock,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Listeners {
        api: api_listener,
        peer: peer_listener,
        metrics,
        health,
    } = listeners;
    // Peers connect with this node's certificate: it names the role mxrep:node.
    mxrep_common::tls::use_for_clients(cfg.tls.clone());
    let db = sled::Config::new()
        .path(cfg.data_dir.join("raft.sled"))
        .open()
        .with_context(|| format!("cannot open the store in {}", cfg.data_dir.display()))?;
    let network = PeerNetwork::default();
    let log = SledLogStore::open(&db, network.budgets.clone())?;
    let store = StateMachineStore::open(&db).context("cannot load the last snapshot")?;
    let raft = Raft::new(
        cfg.id,
        Arc::new(cfg.raft.to_openraft()?),
        network.clone(),
        log.clone(),
        store.clone(),
    )
    .await
    .context("cannot start raft")?;
    let cluster = Cluster::new(cfg.id, raft.clone(), store, network.channels.clone());
    let own = MxNode {
        peer_addr: cfg.advertise_peer.clone(),
        api_addr: cfg.advertise_api.clone(),
    };
    tracing::info!(
        id = cfg.id,
        api = %cfg.api_listen,
        peer = %cfg.peer_listen,
        data = %cfg.data_dir.display(),
        "mxrep-node starting"
    );

    let (stop, stopping) = mxrep_common::shutdown::channel();
    let _gauges = crate::metrics::gauges::ClusterGauges::register(&cluster);
    if let Some(m) = metrics {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics_http::serve(m.listener, m.registry, stopping).await {
                tracing::warn!("the metrics endpoint stopped: {e}");
            }
        });
    }

    if let Some(listener) = health {
        let (cluster, stopping) = (cluster.clone(), stopping.clone());
        tokio::spawn(async move {
            if let Err(e) = api::health_port::serve(listener, cluster, stopping).await {
                tracing::warn!("the health endpoint stopped: {e}");
            }
        });
    }
    let peer_service = PeerService {
        cluster: cluster.clone(),
        log: log.clone(),
        id: cfg.id,
        api_addr: own.api_addr.clone(),
        peer_addr: own.peer_addr.clone(),
    };
    // Raft gives up on an AppendEntries after one heartbeat interval (50 ms), resetting its
    // stream; on a busy node those resets passed h2's guard against reset floods (20 pending)
    // and the connection was torn down with every call on it, hellos included. Only nodes reach
    // this port (mTLS role check), so the guard is set far above what Raft's timeouts produce.
    let peer_router = tonic::transport::Server::builder()
        .http2_max_pending_accept_reset_streams(Some(PEER_RESET_STREAMS))
        .layer(RoleLayer {
            port: Port::Peer,
            enforce: cfg.tls.is_some(),
        })
        .add_service(
            PeerServer::new(peer_service)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
    let peer_stop = stopping.clone();
    let peer_server = match &cfg.tls {
        Some(files) => {
            let incoming = ReloadingTls::new(files.clone())?.incoming(peer_listener);
            tokio::spawn(async move {
                peer_router
                    .serve_with_incoming_shutdown(incoming, peer_stop.wait())
                    .await
            })
        }
        None => tokio::spawn(async move {
            peer_router
                .serve_with_incoming_shutdown(
                    crate::tls_accept::plaintext(peer_listener),
                    peer_stop.wait(),
                )
                .await
        }),
    };
    if let Some((listen, zone)) = cfg.dnsbl.clone() {
        let z = crate::dns::zone::BanZone::new(&zone, cluster.state.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::dns::zone_serve::serve(listen, z).await {
                tracing::error!("cannot serve the DNSBL zone on {listen}: {e:#}");
            }
        });
    }
    let dns = match ListResolver::new(cfg.dns_resolver) {
        Ok(r) => {
            let r = Arc::new(r);
            tokio::spawn(crate::dns::probes::run(cluster.clone(), r.clone()));
            let lookups = DnsLookups::start(cluster.clone(), r);
            let wants = lookups.clone();
            cluster.on_observed(move |addr| wants.want(addr));
            Some(lookups)
        }
        Err(e) => {
            tracing::warn!(
                "no DNS resolver ({e:#}): DNS lists are not consulted; give --dns-resolver"
            );
            None
        }
    };
    let aggregator = Aggregator::start(cluster.clone(), AggregatorConfig::default());
    let api_server = tokio::spawn(api::serve(
        api_listener,
        cluster.clone(),
        aggregator,
        dns.map(|d| d.stats),
        cfg.tls.clone(),
        stopping.clone(),
    ));

    let founding = cfg.peers.contains_key(&cfg.id);
    match &cfg.join {
        Some(via) if !founding => {
            tokio::spawn(join_until_member(cfg.id, own.clone(), via.clone()));
        }
        _ => {}
    }
    tokio::spawn(initialize_when_ready(
        cluster.clone(),
        log,
        network.channels.clone(),
        own,
        cfg.peers.clone(),
    ));
    if let Some(size) = cfg.cluster_size {
        tokio::spawn(remove_departed(
            cluster.clone(),
            network.channels.clone(),
            size,
        ));
    }
    tokio::spawn(crate::raft::election_gate::gate_elections(
        cluster.clone(),
        network.channels.clone(),
    ));
    tokio::spawn(tick_while_leader(cluster.clone(), cfg.raft.tick()));
    tokio::spawn(say_when_serving(cluster.clone(), cfg.clone()));

    // A Raft core that stopped on a storage failure (a full or failing disk) cannot recover in
    // this process: the node exits with an error, so its supervisor starts it again once fixed.
    let failure = tokio::select! {
        _ = shutdown => None,
        f = raft_failure(&cluster) => Some(f),
    };
    match &failure {
        None => tracing::info!("stopping"),
        Some(f) => tracing::error!("the Raft core stopped: {f}; stopping"),
    }
    stop.fire();
    let _ = raft.shutdown().await;
    let (peer_abort, api_abort) = (peer_server.abort_handle(), api_server.abort_handle());
    let drained = async {
        let _ = peer_server.await;
        let _ = api_server.await;
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!("connections still open after {DRAIN:?}: cut");
        peer_abort.abort();
        api_abort.abort();
    }
    crate::raft::log_store::flush(&db).await.ok();
    drop(lock);
    if let Some(f) = failure {
        anyhow::bail!(
            "the Raft core stopped: {f} (is the data dir {} full or failing?); start the node again once it is fixed",
            cfg.data_dir.display()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves with the reason when this node's Raft core stops by itself (never on a healthy node).
async fn raft_failure(cluster: &Cluster) -> String {
    let mut m = cluster.raft.metrics();
    loop {
        if let Err(fatal) = &m.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if m.changed().await.is_err() {
            return "the Raft core ended".into();
        }
    }
}

/// Logs one line once the node serves with a known leader: what an operator waits for.
async fn say_when_serving(cluster: Cluster, cfg: NodeConfig) {
    let mut m = cluster.raft.metrics();
    let Ok(state) = m.wait_for(|m| m.current_leader.is_some()).await else {
        return;
    };
    let leader = state.current_leader.unwrap_or(0);
    let dnsbl = cfg
        .dnsbl
        .as_ref()
        .map(|(a, z)| format!("{z} on {a}"))
        .unwrap_or_else(|| "off".into());
    let metrics = cfg
        .metrics_listen
        .map(|a| format!("http://{a}/metrics"))
        .unwrap_or_else(|| "off".into());
    tracing::info!(
        "serving: API {}, peers {}, metrics {metrics}, DNSBL zone {dnsbl}, leader node {leader}, data in {}",
        cfg.api_listen,
        cfg.peer_listen,
        cfg.data_dir.display()
    );
}

/// While this node leads, proposes a tick entry every `every`, so time moves on for everyone.
async fn tick_while_leader(cluster: Cluster, every: std::time::Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let leading = cluster.raft.metrics().borrow().state == ServerState::Leader;
        if leading {
            if let Err(e) = cluster.execute_local(ClusterOp::Write(Command::Tick)).await {
                tracing::debug!("tick not proposed: {e}");
            }
        }
    }
}
