//! The agent's metrics, as OpenTelemetry instruments (exported for Prometheus at `/metrics` and
//! over OTLP by `mxrep_common::telemetry`). Prometheus names: `mxrep_` prefix, `_total` on
//! counters, `_seconds` on durations.
//!
//! Instruments come from the global meter on first use, after `Telemetry::init`; without a meter
//! provider they are no-ops (tests, `check-log`).

use crate::enforce::view::BanView;
use crate::uplink::Uplink;
use mxrep_common::telemetry::instruments::{counter, seconds};
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};
use std::sync::LazyLock;

/// Everything the agent counts.
pub struct AgentMetrics {
    /// Log lines read, by `result`: event (evidence), ignored (no evidence), not_understood,
    /// unknown_shape (a Postfix line about a client in a shape not known).
    pub log_lines: Counter<u64>,
    /// Connection verdicts the tail scout sent ahead of a log's unread backlog.
    pub verdicts_sent_ahead: Counter<u64>,
    /// Events through the uplink, by `outcome`: queued, acknowledged, refused (by the cluster),
    /// dropped (the queue was full).
    pub uplink_events: Counter<u64>,
    /// Batches sent, by `attempt`: first, resent (after a failover).
    pub uplink_batches: Counter<u64>,
    /// Streams to the cluster that failed and were opened again.
    pub uplink_reconnects: Counter<u64>,
    /// One nftables transaction, by `op`: apply (ban changes), reconcile, restore.
    pub nft_duration: Histogram<f64>,
    /// nftables transactions that failed, by `op`.
    pub nft_errors: Counter<u64>,
    /// From a ban's creation in the cluster to its element in this host's set.
    pub enforcement_delay: Histogram<f64>,
    /// Times the agent's table, a set or the drop rule was found missing and rebuilt.
    pub table_restores: Counter<u64>,
    /// Policy requests answered, by `answer`: dunno, reject, greylist, tempfail.
    pub policy_requests: Counter<u64>,
    /// Time to answer one policy request.
    pub policy_duration: Histogram<f64>,
    /// Greylisting decisions, by `decision` (defer, pass, fail_open) and `by` (agent, cluster).
    pub greylist_decisions: Counter<u64>,
}

impl AgentMetrics {
    fn new(m: &Meter) -> Self {
        Self {
            log_lines: counter(m, "mxrep_agent_log_lines", "Log lines read, by result."),
            verdicts_sent_ahead: counter(
                m,
                "mxrep_agent_verdicts_sent_ahead",
                "Decisive connection verdicts sent ahead of a log's unread backlog.",
            ),
            uplink_events: counter(
                m,
                "mxrep_uplink_events",
                "Events through the uplink, by outcome.",
            ),
            uplink_batches: counter(m, "mxrep_uplink_batches", "Event batches sent, by attempt."),
            uplink_reconnects: counter(
                m,
                "mxrep_uplink_reconnects",
                "Streams to the cluster that failed and were reopened.",
            ),
            nft_duration: seconds(
                m,
                "mxrep_nft_transaction_duration",
                "Time of one nftables transaction, by op.",
            ),
            nft_errors: counter(m, "mxrep_nft_errors", "nftables transactions that failed."),
            enforcement_delay: seconds(
                m,
                "mxrep_ban_enforcement_delay",
                "Time from a ban's creation in the cluster to its element in this host's set.",
            ),
            table_restores: counter(
                m,
                "mxrep_nft_table_restores",
                "Times the table, a set or the drop rule was rebuilt after it went missing.",
            ),
            policy_requests: counter(
                m,
                "mxrep_policy_requests",
                "Postfix policy requests answered, by answer.",
            ),
            policy_duration: seconds(
                m,
                "mxrep_policy_request_duration",
                "Time to answer one Postfix policy request.",
            ),
            greylist_decisions: counter(
                m,
                "mxrep_greylist_decisions",
                "Greylisting decisions, by decision and by who decided.",
            ),
        }
    }
}

static AGENT: LazyLock<AgentMetrics> =
    LazyLock::new(|| AgentMetrics::new(&opentelemetry::global::meter("mxrep-agent")));

/// The process's agent metrics.
pub fn agent() -> &'static AgentMetrics {
    &AGENT
}

/// Registers the gauges read at each scrape: the uplink's queue, the ban list enforced. Keep the
/// returned handles for as long as the agent runs.
pub fn register_gauges(uplink: &Uplink, view: &BanView) -> Vec<ObservableGauge<u64>> {
    let m = opentelemetry::global::meter("mxrep-agent");
    let (u, v1, v2) = (uplink.clone(), view.clone(), view.clone());
    vec![
        m.u64_observable_gauge("mxrep_uplink_queue_depth")
            .with_description("Events waiting in the uplink's queue.")
            .with_callback(move |o| o.observe(u.queued() as u64, &[]))
            .build(),
        m.u64_observable_gauge("mxrep_agent_ban_list_version")
            .with_description("Version of the cluster's ban list this host enforces.")
            .with_callback(move |o| o.observe(v1.version(), &[]))
            .build(),
        m.u64_observable_gauge("mxrep_agent_bans")
            .with_description("Bans and refusals this host enforces.")
            .with_callback(move |o| o.observe(v2.len() as u64, &[]))
            .build(),
    ]
}
