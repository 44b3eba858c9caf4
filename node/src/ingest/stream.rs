//! The ingest stream (`Agent.ReportEvents`): one agent's long-lived stream of event batches.
//!
//! A reader task validates each batch and hands the good events to this node's aggregator; an
//! acker task answers the batches in order once their events are committed. A slow cluster holds
//! the stream back (bounded queues all the way); it never buffers without bound. When the node
//! stops, the stream ends with `UNAVAILABLE`, so the agent moves to another node at once.

use super::{validate_batch, Aggregator, Limits, Submission};
use crate::metrics::{kv, node};
use mxrep_common::clock::unix_ms;
use mxrep_common::shutdown::Shutdown;
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};

/// Batches of one stream that may await their commit at once.
const IN_FLIGHT_BATCHES: usize = 64;

/// A batch waiting for its commit, in stream order.
struct AwaitingCommit {
    seq: u64,
    accepted: u32,
    rejected: u32,
    rejections: Vec<pb::EventRejection>,
    committed: Option<oneshot::Receiver<Result<u64, String>>>,
}

/// Serves one agent's batches from `incoming`; returns the acknowledgements, in order.
pub fn serve(
    mut incoming: Streaming<pb::EventBatch>,
    aggregator: Aggregator,
    limits: Limits,
    shutdown: Shutdown,
) -> mpsc::Receiver<Result<pb::EventAck, Status>> {
    let (ack_tx, ack_rx) = mpsc::channel::<Result<pb::EventAck, Status>>(IN_FLIGHT_BATCHES);
    let (pending_tx, mut pending_rx) = mpsc::channel::<AwaitingCommit>(IN_FLIGHT_BATCHES);

    // Reader: validates and submits, held back when the aggregator or the acker is full.
    let reader_acks = ack_tx.clone();
    let stopping = shutdown;
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                m = incoming.message() => m,
                _ = stopping.clone().wait() => {
                    let _ = reader_acks.send(Err(Status::unavailable("the node is stopping"))).await;
                    return;
                }
            };
            let batch = match next {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(s) => {
                    tracing::debug!("event stream ended: {s}");
                    return;
                }
            };
            let span = tracing::info_span!(
                "ingest.batch",
                mx_host = %batch.mx_host,
                seq = batch.seq,
                events = batch.events.len()
            );
            propagate::set_parent(&span, &batch.traceparent);
            count_received(&batch);
            let pending = match validate_batch(&batch, unix_ms(), &limits) {
                Err(reason) => {
                    node().events_refused.add(
                        batch.events.len() as u64,
                        &[kv("mx_host", batch.mx_host.trim().to_string())],
                    );
                    AwaitingCommit {
                        seq: batch.seq,
                        accepted: 0,
                        rejected: batch.events.len() as u32,
                        rejections: vec![pb::EventRejection {
                            index: u32::MAX,
                            reason: format!("whole batch refused: {reason}"),
                        }],
                        committed: None,
                    }
                }
                Ok((good, bad)) => {
                    let accepted = good.len() as u32;
                    if !bad.is_empty() {
                        node().events_refused.add(
                            bad.len() as u64,
                            &[kv("mx_host", batch.mx_host.trim().to_string())],
                        );
                    }
                    let committed = if good.is_empty() {
                        None
                    } else {
                        let (done, rx) = oneshot::channel();
                        let sub = Submission {
                            mx_host: batch.mx_host.trim().to_string(),
                            session: batch.session,
                            seq: batch.seq,
                            events: good,
                            traceparent: propagate::traceparent(&span),
                            done,
                        };
                        if let Err(e) = aggregator.submit(sub).await {
                            let _ = reader_acks.send(Err(Status::unavailable(e))).await;
                            return;
                        }
                        Some(rx)
                    };
                    AwaitingCommit {
                        seq: batch.seq,
                        accepted,
                        rejected: bad.len() as u32,
                        rejections: bad,
                        committed,
                    }
                }
            };
            if pending_tx.send(pending).await.is_err() {
                return;
            }
        }
    });

    // Acker: answers batches in order, once committed.
    tokio::spawn(async move {
        while let Some(p) = pending_rx.recv().await {
            if let Some(rx) = p.committed {
                match rx.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        node().batches.add(1, &[kv("outcome", "dropped")]);
                        let _ = ack_tx
                            .send(Err(Status::unavailable(format!(
                                "events of batch {} not committed: {e}",
                                p.seq
                            ))))
                            .await;
                        return;
                    }
                    Err(_) => {
                        node().batches.add(1, &[kv("outcome", "dropped")]);
                        return;
                    }
                }
            }
            let outcome = if p.accepted == 0 && p.rejected > 0 {
                "refused"
            } else {
                "acknowledged"
            };
            node().batches.add(1, &[kv("outcome", outcome)]);
            let ack = pb::EventAck {
                seq: p.seq,
                accepted: p.accepted,
                rejected: p.rejected,
                rejections: p.rejections,
            };
            if ack_tx.send(Ok(ack)).await.is_err() {
                return;
            }
        }
    });
    ack_rx
}

/// Counts a batch's events by kind for its MX host (one add per kind present, not per event).
fn count_received(batch: &pb::EventBatch) {
    use pb::event::Kind;
    const KINDS: [&str; 9] = [
        "connect",
        "disconnect",
        "rejected",
        "auth_failure",
        "accepted",
        "protocol_error",
        "policy_request",
        "verdict",
        "empty",
    ];
    let mut n = [0u64; KINDS.len()];
    for e in &batch.events {
        n[match e.kind {
            Some(Kind::Connect(_)) => 0,
            Some(Kind::Disconnect(_)) => 1,
            Some(Kind::Rejected(_)) => 2,
            Some(Kind::AuthFailure(_)) => 3,
            Some(Kind::Accepted(_)) => 4,
            Some(Kind::ProtocolError(_)) => 5,
            Some(Kind::PolicyRequest(_)) => 6,
            Some(Kind::Verdict(_)) => 7,
            None => 8,
        }] += 1;
    }
    let host = batch.mx_host.trim().to_string();
    for (kind, count) in KINDS.iter().zip(n).filter(|(_, c)| *c > 0) {
        node()
            .events_received
            .add(count, &[kv("kind", *kind), kv("mx_host", host.clone())]);
    }
}
