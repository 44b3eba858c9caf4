//! A node told to stop (SIGTERM) exits promptly and cleanly even while agents hold streams open
//! on it — a leader and a follower alike: a node that never exits blocks every rolling update
//! and every `kubectl delete pod`, and its agents stay attached to a node that sends them no ban.

use mxrep_proto::v1 as pb;
use mxrep_tests::events::*;
use mxrep_tests::*;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// An agent's two streams on one node: the ban list, and an event stream with a batch in it.
struct Attached {
    watch: tonic::Streaming<pb::BanUpdate>,
    acks: tonic::Streaming<pb::EventAck>,
    _events: tokio::sync::mpsc::Sender<pb::EventBatch>,
}

async fn attach(api: &str) -> Attached {
    let mut watch = watch(api, 0).await;
    assert!(matches!(
        next_update(&mut watch).await,
        pb::ban_update::Update::Snapshot(_)
    ));
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::EventBatch>(4);
    let ch = mxrep_common::endpoint::connect(api).await.unwrap();
    let mut client = pb::agent_client::AgentClient::new(ch);
    tx.send(pb::EventBatch {
        seq: 1,
        session: 7,
        traceparent: String::new(),
        mx_host: "mx1".into(),
        events: vec![quit("192.0.2.9", now_ms())],
    })
    .await
    .unwrap();
    let mut acks = client
        .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().seq, 1);
    Attached {
        watch,
        acks,
        _events: tx,
    }
}

/// SIGTERM node `id`: it must exit cleanly within 8 s, and its agents' streams end.
fn stop_with_agents(c: &mut TestCluster, rt: &tokio::runtime::Runtime, id: u64, mut a: Attached) {
    let t = Instant::now();
    let exited = c.node_mut(id).stop_within(Duration::from_secs(8));
    assert_eq!(
        exited,
        Some(true),
        "node {id} must exit cleanly within 8 s of SIGTERM with agents attached"
    );
    eprintln!("node {id}: SIGTERM to exit {:?}", t.elapsed());
    rt.block_on(async {
        // Whatever was already on the way may still arrive; then each stream must end.
        let watch_end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = a.watch.message().await {}
        });
        assert!(
            watch_end.await.is_ok(),
            "node {id}: the watch stream did not end"
        );
        let acks_end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = a.acks.message().await {}
        });
        assert!(
            acks_end.await.is_ok(),
            "node {id}: the event stream did not end"
        );
    });
}

#[test]
fn sigterm_with_agents_attached_exits_within_seconds_leader_and_follower() {
    let _g = serial();
    let mut c = TestCluster::start(3, Tuning::default());
    let leader = c.wait_for_leader(3, LIMIT);
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let other = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let on_leader = rt.block_on(attach(&c.node(leader).api));
    let on_follower = rt.block_on(attach(&c.node(follower).api));
    let mut on_other = rt.block_on(attach(&c.node(other).api));

    stop_with_agents(&mut c, &rt, leader, on_leader);
    // The two left elect a leader and go on deciding; an agent on them sees the new ban.
    let out = ctl(
        &c.node(other).api,
        &[
            "ban",
            "203.0.113.9",
            "--for",
            "1h",
            "--reason",
            "after the stop",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = rt.block_on(async {
        tokio::time::timeout(LIMIT, async {
            loop {
                if let pb::ban_update::Update::Change(ch) = next_update(&mut on_other.watch).await {
                    break ch.ban.unwrap().prefix;
                }
            }
        })
        .await
    });
    assert_eq!(seen.unwrap(), "203.0.113.9/32");

    stop_with_agents(&mut c, &rt, follower, on_follower);
}
