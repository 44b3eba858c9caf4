//! `mxrep-node` as a process: lock the data dir, open sled, start Raft, serve the peer and API
//! ports, form or rejoin the cluster, tick while leader, and shut down cleanly on SIGTERM/SIGINT.

use crate::api;
use crate::config::NodeConfig;
use crate::data_dir::DataDirLock;
use crate::ingest::{Aggregator, AggregatorConfig};
use crate::raft::bootstrap::initialize_when_ready;
use crate::raft::log_store::SledLogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::peer_service::PeerService;
use crate::raft::state_store::StateStore;
use crate::raft::{Cluster, ClusterOp, MxNode, Raft};
use crate::state::Command;
use anyhow::Context;
use mxrep_proto::v1::peer_server::PeerServer;
use openraft::ServerState;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Runs a node until it is told to stop.
pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let lock = DataDirLock::acquire(&cfg.data_dir)?;
    let api_listener = TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", cfg.api_listen))?;
    let peer_listener = TcpListener::bind(cfg.peer_listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", cfg.peer_listen))?;

    let db = sled::Config::new()
        .path(cfg.data_dir.join("raft.sled"))
        .open()
        .with_context(|| format!("cannot open the store in {}", cfg.data_dir.display()))?;
    let log = SledLogStore::open(&db)?;
    let store = StateStore::open(&db).context("cannot load the last snapshot")?;
    let network = PeerNetwork::default();
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
        peer_addr: cfg.own_peer_addr(),
        api_addr: cfg.api_listen.to_string(),
    };
    tracing::info!(
        id = cfg.id,
        api = %cfg.api_listen,
        peer = %cfg.peer_listen,
        data = %cfg.data_dir.display(),
        "mxrep-node starting"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let peer_service = PeerService {
        cluster: cluster.clone(),
        log: log.clone(),
        id: cfg.id,
        api_addr: own.api_addr.clone(),
        peer_addr: own.peer_addr.clone(),
    };
    let peer_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                PeerServer::new(peer_service)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20),
            )
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(peer_listener),
                stopped(stop_rx.clone()),
            ),
    );
    let aggregator = Aggregator::start(cluster.clone(), AggregatorConfig::default());
    let api_server = tokio::spawn(api::serve(
        api_listener,
        cluster.clone(),
        aggregator,
        stopped(stop_rx.clone()),
    ));

    tokio::spawn(initialize_when_ready(
        cluster.clone(),
        log,
        network.channels.clone(),
        own,
        cfg.peers.clone(),
    ));
    tokio::spawn(tick_while_leader(cluster.clone(), cfg.raft.tick()));

    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let _ = raft.shutdown().await;
    let _ = peer_server.await;
    let _ = api_server.await;
    db.flush_async().await.ok();
    drop(lock);
    Ok(())
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
