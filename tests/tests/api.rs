//! The API port speaks standard gRPC health checking and server reflection, so generic tools
//! (`grpcurl`, load balancers, Kubernetes probes) work with no `.proto` at hand.

use mxrep_tests::*;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[test]
fn health_and_reflection_on_the_api_port() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProc::new(dir.path(), 1, None, &Tuning::default());
    node.peers = Some(format!("1={}", node.peer));
    node.start();
    wait_until(Duration::from_secs(30), "the node to elect itself", || {
        node.status()?["leader_id"].as_u64()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", node.api))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(ch.clone());
        for service in ["", "mxrep.v1.Admin", "mxrep.v1.Agent"] {
            let r = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                r.status,
                ServingStatus::Serving as i32,
                "service '{service}'"
            );
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await;
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);

        let mut refl = ServerReflectionClient::new(ch);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = refl
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection answer {resp:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in ["mxrep.v1.Admin", "mxrep.v1.Agent", "grpc.health.v1.Health"] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    });
}

/// The status `service` reports on the plaintext health port `addr`.
async fn health_of(addr: &str, service: &str) -> Result<i32, tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let r = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(r.into_inner().status)
}

#[test]
fn the_health_port_answers_probes_in_plaintext_beside_mutual_tls() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = mxrep_tests::ctl::certs_init(dir.path(), &[]);
    let health = format!("127.0.0.1:{}", free_port());
    // Node 1 of two whose peer never comes: alive, but not ready (no leader).
    let mut lonely = NodeProc::new(dir.path(), 1, None, &Tuning::default());
    lonely.peers = Some(format!("1={},2=127.0.0.1:{}", lonely.peer, free_port()));
    lonely.prepend_config(&format!(
        "health_listen = \"{health}\"\n{}",
        mxrep_tests::node_proc::tls_config(&pki)
    ));
    lonely.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = |service: &str| rt.block_on(health_of(&health, service)).ok();
    wait_until(Duration::from_secs(30), "the health port to answer", || {
        status("")
    });
    assert_eq!(status(""), Some(ServingStatus::Serving as i32));
    assert_eq!(status("readiness"), Some(ServingStatus::NotServing as i32));
    // Only health is served there: the API's methods are not.
    let admin = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{health}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        mxrep_proto::v1::admin_client::AdminClient::new(ch)
            .status(mxrep_proto::v1::StatusRequest {})
            .await
    });
    assert_eq!(admin.unwrap_err().code(), tonic::Code::Unimplemented);
    lonely.stop();

    // A node that leads is ready.
    let health = format!("127.0.0.1:{}", free_port());
    let mut node = NodeProc::new(dir.path(), 3, None, &Tuning::default());
    node.peers = Some(format!("3={}", node.peer));
    node.prepend_config(&format!(
        "health_listen = \"{health}\"\n{}",
        mxrep_tests::node_proc::tls_config(&pki)
    ));
    node.start();
    let status = |service: &str| rt.block_on(health_of(&health, service)).ok();
    wait_until(Duration::from_secs(30), "the node to be ready", || {
        (status("readiness")? == ServingStatus::Serving as i32).then_some(())
    });
}
