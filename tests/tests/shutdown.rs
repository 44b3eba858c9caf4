//! A node told to stop (SIGTERM) exits promptly and cleanly even while agents hold streams open
//! on it: a node that never exits blocks every rolling update and every `kubectl delete pod`.

use mxrep_proto::v1 as pb;
use mxrep_tests::events::*;
use mxrep_tests::*;
use std::time::Duration;

#[test]
fn sigterm_with_agents_attached_exits_within_seconds() {
    let _g = serial();
    let mut c = TestCluster::start(1, Tuning::default());
    c.wait_for_leader(1, Duration::from_secs(30));
    let api = c.node(1).api.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Two attached agents: one following the ban list, one with an open event stream.
    let mut watcher = rt.block_on(watch(&api, 0));
    let first = rt.block_on(next_update(&mut watcher));
    assert!(matches!(first, pb::ban_update::Update::Snapshot(_)));
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::EventBatch>(4);
    let mut acks = rt.block_on(async {
        let ch = mxrep_common::endpoint::connect(&api).await.unwrap();
        let mut client = pb::agent_client::AgentClient::new(ch);
        tx.send(pb::EventBatch {
            seq: 1,
            session: 7,
            mx_host: "mx1".into(),
            events: vec![connect("192.0.2.9", now_ms())],
        })
        .await
        .unwrap();
        let mut acks = client
            .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acks.message().await.unwrap().unwrap().seq, 1);
        acks
    });

    let exited = c.node_mut(1).stop_within(Duration::from_secs(8));
    assert_eq!(
        exited,
        Some(true),
        "the node must exit cleanly within 8 s of SIGTERM with agents attached"
    );
    // Both agents see their streams end (and would move to another node).
    rt.block_on(async {
        let w = tokio::time::timeout(Duration::from_secs(5), watcher.message()).await;
        assert!(
            !matches!(w, Ok(Ok(Some(_)))),
            "watch stream must end: {w:?}"
        );
        let a = tokio::time::timeout(Duration::from_secs(5), acks.message()).await;
        assert!(
            !matches!(a, Ok(Ok(Some(_)))),
            "event stream must end: {a:?}"
        );
    });
    drop(tx);
}
