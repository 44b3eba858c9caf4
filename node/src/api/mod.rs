//! The API port: the `Admin` service (mxrepctl, SOC tooling), the `Agent` service (MX hosts),
//! standard gRPC health checking and server reflection, so `grpcurl`-style tools work without the
//! `.proto` files at hand.

pub mod admin;
pub mod agent;
pub mod convert;
pub mod greylist;
pub mod health_port;
pub mod query;
pub mod report;
pub mod requests;
pub mod roles;
pub mod status;

use crate::dns::lookups::DnsStats;
use crate::ingest::Aggregator;
use crate::raft::Cluster;
use crate::tls_accept::ReloadingTls;
use mxrep_common::shutdown::Shutdown;
use mxrep_common::tls::TlsFiles;
use mxrep_proto::v1::admin_server::AdminServer;
use mxrep_proto::v1::agent_server::AgentServer;
use mxrep_proto::v1::query_server::QueryServer;
use roles::{Port, RoleLayer};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the API on `listener` until `shutdown` fires; the streams to agents end with it.
pub async fn serve(
    listener: TcpListener,
    cluster: Cluster,
    aggregator: Aggregator,
    dns: Option<Arc<DnsStats>>,
    tls: Option<TlsFiles>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AdminServer<admin::AdminService>>()
        .await;
    health_reporter
        .set_serving::<AgentServer<agent::AgentService>>()
        .await;
    health_reporter
        .set_serving::<QueryServer<query::QueryService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mxrep_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let router = tonic::transport::Server::builder()
        .layer(RoleLayer {
            port: Port::Api,
            enforce: tls.is_some(),
        })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(AdminServer::new(admin::AdminService::new(
            cluster.clone(),
            dns,
        )))
        .add_service(QueryServer::new(query::QueryService {
            cluster: cluster.clone(),
        }))
        .add_service(AgentServer::new(agent::AgentService::new(
            cluster,
            aggregator,
            shutdown.clone(),
        )));
    match tls {
        Some(files) => {
            let incoming = ReloadingTls::new(files)?.incoming(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown.wait())
                .await?
        }
        None => {
            let incoming = crate::tls_accept::plaintext(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown.wait())
                .await?
        }
    }
    Ok(())
}
