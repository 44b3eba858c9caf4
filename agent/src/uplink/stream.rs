//! One lane's `ReportEvents` stream to one node, until it fails; and the loop that reconnects it.

use super::lane::{Batch, Lane};
use super::UplinkConfig;
use crate::metrics::agent as metrics;
use mxrep_common::lock::MutexExt as _;
use mxrep_common::telemetry::instruments::kv;
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1 as pb;
use pb::agent_client::AgentClient;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Streams `lane` to the cluster forever, moving to the next node when a stream fails.
pub(super) async fn run(cfg: Arc<UplinkConfig>, lane: Arc<Lane>) {
    let what = format!("event uplink ({})", lane.name);
    mxrep_common::backoff::reconnect_forever(&what, &cfg.cluster, |addr| {
        let (cfg, lane, addr) = (&cfg, &lane, addr.to_string());
        async move {
            let r = session(cfg, &addr, lane).await;
            if r.is_err() {
                lane.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                metrics().uplink_reconnects.add(1, &[]);
            }
            r
        }
    })
    .await
}

/// One stream to one node, until it fails.
async fn session(cfg: &UplinkConfig, addr: &str, lane: &Lane) -> Result<(), String> {
    let ch = mxrep_common::endpoint::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut client = AgentClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::EventBatch>(cfg.window);
    let mut acks = client
        .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("stream refused: {}", s.message()))?
        .into_inner();
    tracing::info!("uplink ({}) connected to {addr}", lane.name);
    // Batches a failed stream left unacknowledged go first, with the same sequence numbers, so
    // the cluster counts each once even if the first copy was committed.
    let mut in_flight: VecDeque<Batch> = std::mem::take(&mut *lane.unacked.locked());
    for b in &in_flight {
        metrics().uplink_batches.add(1, &[kv("attempt", "resent")]);
        if tx.send(b.to_pb(lane, &cfg.mx_host)).await.is_err() {
            *lane.unacked.locked() = in_flight;
            return Err("the stream closed".into());
        }
    }
    let result = loop {
        let can_send = in_flight.len() < cfg.window;
        tokio::select! {
            ack = acks.message() => match ack {
                Ok(Some(a)) => {
                    match in_flight.front() {
                        Some(b) if b.seq == a.seq => { in_flight.pop_front(); }
                        _ => break Err(format!("acknowledgement for unknown batch {}", a.seq)),
                    }
                    count_ack(lane, &a);
                }
                Ok(None) => break Err("the node closed the stream".into()),
                Err(s) => break Err(format!("stream failed: {}", s.message())),
            },
            _ = lane.ready.notified(), if can_send => {
                // Nothing in flight: send at once, so a decisive event at rest waits for no one.
                // Otherwise gather for at most max_delay, or until a full batch.
                if lane.len() < cfg.max_batch && !in_flight.is_empty() {
                    tokio::time::sleep(cfg.max_delay).await;
                }
                let events = lane.take(cfg.max_batch);
                if events.is_empty() {
                    continue;
                }
                if lane.len() > 0 {
                    lane.ready.notify_one();
                }
                let seq = lane.next_seq();
                let span = tracing::info_span!("uplink.batch", seq, events = events.len(), lane = lane.name, mx_host = %cfg.mx_host);
                let b = Batch { seq, events, traceparent: propagate::traceparent(&span), span: Some(span) };
                let batch = b.to_pb(lane, &cfg.mx_host);
                in_flight.push_back(b);
                metrics().uplink_batches.add(1, &[kv("attempt", "first")]);
                if tx.send(batch).await.is_err() {
                    break Err("the stream closed".into());
                }
            }
        }
    };
    // Whatever was not acknowledged is sent again, as the same batches, on the next stream.
    in_flight.iter_mut().for_each(|b| b.span = None);
    *lane.unacked.locked() = in_flight;
    result
}

/// Counts an acknowledgement's accepted and refused events, and logs the first refusals.
fn count_ack(lane: &Lane, a: &pb::EventAck) {
    lane.stats
        .acked
        .fetch_add(a.accepted as u64, Ordering::Relaxed);
    lane.stats
        .refused
        .fetch_add(a.rejected as u64, Ordering::Relaxed);
    let events = &metrics().uplink_events;
    events.add(a.accepted.into(), &[kv("outcome", "acknowledged")]);
    events.add(a.rejected.into(), &[kv("outcome", "refused")]);
    for r in a.rejections.iter().take(5) {
        tracing::warn!("cluster refused an event of batch {}: {}", a.seq, r.reason);
    }
}
