//! `--health-listen`: gRPC health checking alone, in plaintext, for probes that cannot present a
//! client certificate (Kubernetes' native gRPC probes speak no TLS). Nothing else is served on
//! it, so it opens no hole in the mutual TLS of the API and peer ports.
//!
//! Two names: the overall service `""` is SERVING while the process runs (liveness), and
//! [`READINESS`] is SERVING while this node knows a leader, so a client Service sends agents
//! only to nodes that can take their events (readiness).

use crate::raft::Cluster;
use mxrep_common::shutdown::Shutdown;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

/// The health service name a readiness probe asks for.
pub const READINESS: &str = "readiness";

/// Serves health on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    cluster: Cluster,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status(READINESS, ServingStatus::NotServing)
        .await;
    let mut metrics = cluster.raft.metrics();
    let follow = async move {
        loop {
            let ready = metrics.borrow_and_update().current_leader.is_some();
            let status = match ready {
                true => ServingStatus::Serving,
                false => ServingStatus::NotServing,
            };
            reporter.set_service_status(READINESS, status).await;
            if metrics.changed().await.is_err() {
                return;
            }
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(crate::tls_accept::plaintext(listener), shutdown.wait());
    tokio::select! {
        r = server => r?,
        _ = follow => {}
    }
    Ok(())
}
