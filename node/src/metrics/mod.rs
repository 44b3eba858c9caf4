//! The node's metrics, as OpenTelemetry instruments (exported for Prometheus at `/metrics` and
//! over OTLP by `mxrep_common::telemetry`). Names follow Prometheus conventions once exported:
//! the `mxrep_` prefix, `_total` on counters, `_seconds` from the unit of durations.
//!
//! Instruments are taken from the global meter on first use, so `Telemetry::init` must run
//! first; without a meter provider they are no-ops.
//!
//! # Layout
//! - this file: the counters and histograms the edges record into, one [`node()`] for the process;
//! - [`gauges`]: values read when scraped (Raft term, leader, indexes; bans active, observe-only).

pub mod gauges;

pub use mxrep_common::telemetry::instruments::kv;
use mxrep_common::telemetry::instruments::{counter, seconds};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use std::sync::LazyLock;

/// Everything the node counts.
pub struct NodeMetrics {
    /// Events accepted from agents, by `kind` and `mx_host`.
    pub events_received: Counter<u64>,
    /// Events refused by validation, by `mx_host`.
    pub events_refused: Counter<u64>,
    /// Agent batches by `outcome`: acknowledged, refused (whole batch invalid), dropped (not
    /// committed: the stream or the write failed).
    pub batches: Counter<u64>,
    /// Bans created, by `rule` (the first evidence's rule, `manual` for operators), `source` and
    /// `action`. Every node counts the bans it applies.
    pub bans_created: Counter<u64>,
    /// Bans ended, by `why`: expired or removed.
    pub bans_ended: Counter<u64>,
    /// Time to build and store a snapshot.
    pub snapshot_duration: Histogram<f64>,
    /// Time of one flush of the Raft log to disk.
    pub fsync_duration: Histogram<f64>,
    /// Time from an aggregated entry's proposal to its commit (as the proposing node saw it).
    pub write_duration: Histogram<f64>,
    /// DNS list lookups by `list` and `result`: listed, clean, error.
    pub dns_lookups: Counter<u64>,
    /// Greylisting checks answered for agents, by `answer`: pass, defer.
    pub greylist_checks: Counter<u64>,
    /// Administrative writes, by `what` (ban, unban, policy, allow, …).
    pub admin_writes: Counter<u64>,
}

impl NodeMetrics {
    fn new(m: &Meter) -> Self {
        Self {
            events_received: counter(m, "mxrep_events_received", "Events accepted from agents."),
            events_refused: counter(m, "mxrep_events_refused", "Events refused by validation."),
            batches: counter(m, "mxrep_ingest_batches", "Agent event batches by outcome."),
            bans_created: counter(m, "mxrep_bans_created", "Bans created, by rule and source."),
            bans_ended: counter(m, "mxrep_bans_ended", "Bans ended, by why."),
            snapshot_duration: seconds(
                m,
                "mxrep_raft_snapshot_duration",
                "Time to build and store a state snapshot.",
            ),
            fsync_duration: seconds(
                m,
                "mxrep_raft_fsync_duration",
                "Time of one flush of the Raft log to disk.",
            ),
            write_duration: seconds(
                m,
                "mxrep_raft_write_duration",
                "Time from proposing an entry to its commit.",
            ),
            dns_lookups: counter(
                m,
                "mxrep_dns_lookups",
                "DNS list lookups by list and result.",
            ),
            greylist_checks: counter(
                m,
                "mxrep_greylist_checks",
                "Greylisting checks answered, by answer.",
            ),
            admin_writes: counter(m, "mxrep_admin_writes", "Administrative writes, by what."),
        }
    }
}

static NODE: LazyLock<NodeMetrics> =
    LazyLock::new(|| NodeMetrics::new(&opentelemetry::global::meter("mxrep-node")));

/// The process's node metrics.
pub fn node() -> &'static NodeMetrics {
    &NODE
}
