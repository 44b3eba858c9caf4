//! One lane of the uplink: its own queue, its own agent session and sequence numbers, and the
//! batches its last stream left unacknowledged. Two lanes run side by side (decisive and bulk),
//! each on its own stream, so neither waits behind the other's batches.

use super::UplinkStats;
use crate::metrics::agent as metrics;
use mxrep_common::lock::MutexExt as _;
use mxrep_common::telemetry::instruments::kv;
use mxrep_proto::v1 as pb;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A queue of events and the batches made from it.
pub(super) struct Lane {
    /// "decisive" or "bulk", for logs.
    pub name: &'static str,
    /// Random per lane: with the batch's seq it names a batch for exactly-once counting.
    pub session: u64,
    /// Sequence number of the last batch made.
    next_seq: AtomicU64,
    /// Batches sent but not acknowledged when their stream failed, oldest first.
    pub unacked: Mutex<VecDeque<Batch>>,
    /// Events waiting to be batched, oldest first.
    queue: Mutex<VecDeque<pb::Event>>,
    /// Woken when an event is queued.
    pub ready: Notify,
    /// Counters shared by both lanes.
    pub stats: Arc<UplinkStats>,
    /// Most events the queue holds before the oldest is dropped.
    capacity: usize,
}

impl Lane {
    pub fn new(name: &'static str, capacity: usize, stats: Arc<UplinkStats>) -> Self {
        Self {
            name,
            session: rand::random::<u64>().max(1),
            next_seq: AtomicU64::new(0),
            unacked: Mutex::new(VecDeque::new()),
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            stats,
            capacity,
        }
    }

    /// Queues an event; never blocks. When the queue is full the oldest event is dropped.
    pub fn push(&self, e: pb::Event) {
        {
            let mut q = self.queue.locked();
            if q.len() >= self.capacity {
                q.pop_front();
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics().uplink_events.add(1, &[kv("outcome", "dropped")]);
            }
            q.push_back(e);
        }
        self.stats.pushed.fetch_add(1, Ordering::Relaxed);
        metrics().uplink_events.add(1, &[kv("outcome", "queued")]);
        self.ready.notify_one();
    }

    /// Takes up to `max` of the oldest events.
    pub fn take(&self, max: usize) -> Vec<pb::Event> {
        let mut q = self.queue.locked();
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    /// Events waiting to be batched.
    pub fn len(&self) -> usize {
        self.queue.locked().len()
    }

    /// The next batch's sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A batch made from a lane's queue: sent, then kept until acknowledged.
pub(super) struct Batch {
    pub seq: u64,
    pub events: Vec<pb::Event>,
    /// The trace context of its `uplink.batch` span (empty: not traced), sent again with it.
    pub traceparent: String,
    /// Open from the first send to the acknowledgement (closed if the stream fails).
    pub span: Option<tracing::Span>,
}

impl Batch {
    pub fn to_pb(&self, lane: &Lane, mx_host: &str) -> pb::EventBatch {
        pb::EventBatch {
            seq: self.seq,
            session: lane.session,
            mx_host: mx_host.to_string(),
            events: self.events.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}
