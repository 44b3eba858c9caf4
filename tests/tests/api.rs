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
