//! Forming the cluster from `--peers`: the node with the lowest id initialises the membership,
//! once, when every listed peer answers `Hello`. Any node that already holds Raft state (a vote or
//! a log) never initialises again, and neither does the lowest node if a peer reports that it
//! already belongs to a cluster. Nodes without `--peers` wait to be added with `cluster add`.

use super::cluster::Cluster;
use super::log_store::SledLogStore;
use super::network::PeerChannels;
use super::types::{MxNode, NodeId};
use mxrep_proto::v1::HelloRequest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Initialises the cluster if this node is the one to do it; returns when done or not needed.
pub async fn initialize_when_ready(
    cluster: Cluster,
    log: SledLogStore,
    channels: PeerChannels,
    own: MxNode,
    peers: BTreeMap<NodeId, String>,
) {
    let id = cluster.id;
    if peers.keys().next() != Some(&id) {
        return;
    }
    if log.has_state() {
        tracing::info!("raft state found on disk: rejoining, not initialising");
        return;
    }
    let mut last_report = Instant::now();
    loop {
        let mut nodes = BTreeMap::new();
        let mut missing = Vec::new();
        let mut already = false;
        for (&pid, addr) in &peers {
            if pid == id {
                nodes.insert(pid, own.clone());
                continue;
            }
            match hello(&channels, id, addr, Duration::from_secs(1)).await {
                Ok(r) if r.id != pid => {
                    tracing::error!(
                        "peer at {addr} says it is node {}, but --peers names it node {pid}",
                        r.id
                    );
                    missing.push(pid);
                }
                Ok(r) => {
                    already |= r.initialized;
                    nodes.insert(
                        pid,
                        MxNode {
                            peer_addr: addr.clone(),
                            api_addr: r.api_addr,
                        },
                    );
                }
                Err(e) => {
                    tracing::debug!("peer {pid} at {addr} not answering yet: {e}");
                    missing.push(pid);
                }
            }
        }
        if already {
            tracing::info!("a peer already belongs to a cluster: not initialising");
            return;
        }
        if missing.is_empty() {
            match cluster.raft.initialize(nodes).await {
                Ok(()) => tracing::info!("cluster initialised with members {:?}", peers.keys()),
                Err(e) => tracing::info!("not initialising: {e}"),
            }
            return;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            tracing::info!("waiting for peers {missing:?} before initialising the cluster");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks the node at `addr` (peer port) for `Hello`, waiting at most `within`.
pub(crate) async fn hello(
    channels: &PeerChannels,
    from_id: NodeId,
    addr: &str,
    within: Duration,
) -> Result<mxrep_proto::v1::HelloResponse, String> {
    let mut c = channels.client(addr).map_err(|e| e.to_string())?;
    match tokio::time::timeout(within, c.hello(HelloRequest { from_id })).await {
        Err(_) => Err("timeout".into()),
        Ok(Err(s)) => Err(s.message().to_string()),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}
