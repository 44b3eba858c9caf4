//! The agent's uplink against a real node: the node is stopped and started again under a steady
//! stream of events; the uplink reconnects, the events queued meanwhile arrive, and every event
//! is accounted for: acknowledged, or dropped from the bounded queue and counted.

use mxrep_agent::uplink::{Uplink, UplinkConfig};
use mxrep_tests::events::{accepted, now_ms};
use mxrep_tests::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn accepted_count(api: &str, addr: &str) -> Option<u64> {
    let v = ctl_json(api, &["ip", "show", addr]).ok()?;
    v["counters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "accepted messages")
        .and_then(|c| c["count"].as_u64())
        .or(Some(0))
}

fn run_phase(capacity: usize, addr: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProc::new(dir.path(), 1, None, &Tuning::default());
    node.peers = Some(format!("1={}", node.peer));
    node.start();
    wait_until(LIMIT, "the node to lead", || {
        node.status()?["leader_id"].as_u64()
    });

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = UplinkConfig::new(vec![node.api.clone()], "mx1".into());
    cfg.queue_capacity = capacity;
    let uplink = rt.block_on(async { Uplink::start(cfg) });
    let push_for = |d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            uplink.push(accepted(addr, now_ms()));
            std::thread::sleep(Duration::from_millis(4));
        }
    };
    push_for(Duration::from_millis(600));
    wait_until(LIMIT, "the first events to be acknowledged", || {
        (uplink.stats().acked.load(Ordering::Relaxed) > 0).then_some(())
    });
    node.stop();
    push_for(Duration::from_millis(1500));
    node.start();
    push_for(Duration::from_millis(600));

    let s = uplink.stats();
    wait_until(
        LIMIT,
        "every event acknowledged or counted as dropped",
        || {
            let pushed = s.pushed.load(Ordering::Relaxed);
            let done = s.acked.load(Ordering::Relaxed) + s.dropped.load(Ordering::Relaxed);
            (done == pushed && uplink.queued() == 0).then_some(())
        },
    );
    let (pushed, acked, dropped) = (
        s.pushed.load(Ordering::Relaxed),
        s.acked.load(Ordering::Relaxed),
        s.dropped.load(Ordering::Relaxed),
    );
    assert!(
        s.reconnects.load(Ordering::Relaxed) > 0,
        "the uplink never noticed the stop"
    );
    assert_eq!(s.refused.load(Ordering::Relaxed), 0);
    let counted = wait_until(LIMIT, "the node to count what was acknowledged", || {
        let n = accepted_count(&node.api, addr)?;
        (n >= acked).then_some(n)
    });
    // Exactly once: batches on the wire at the moment of the stop are sent again as the same
    // batches, and the cluster skips what it already applied.
    assert_eq!(counted, acked, "counted {counted}, acked {acked}");
    eprintln!(
        "capacity {capacity}: pushed {pushed}, acked {acked}, dropped {dropped}, counted {counted}"
    );
    if capacity >= 100_000 {
        assert_eq!(dropped, 0, "nothing may be dropped with room to spare");
    } else {
        assert!(
            dropped > 0,
            "a queue of {capacity} must overflow while the node is down"
        );
    }
    drop(uplink);
    drop(rt);
}

#[test]
fn node_restart_under_a_steady_stream_loses_nothing_with_room_in_the_queue() {
    let _g = serial();
    run_phase(100_000, "192.0.2.50");
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them_exactly() {
    let _g = serial();
    run_phase(50, "192.0.2.51");
}
