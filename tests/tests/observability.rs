//! Seeing mxrep work: a real Prometheus server scrapes a 3-node cluster and an agent enforcing
//! into real nftables, and an in-process OTLP collector receives their traces and metrics.
//!
//! The agent runs in this host's network namespace (so the collector in this process can be
//! reached) with its own table, `mxobs<pid>`, removed at the end; its bans are TEST-NET addresses.

use mxrep_tests::netns::{e2e_available, tool_available};
use mxrep_tests::otlp_sink::{OtlpSink, SpanRecord};
use mxrep_tests::prometheus::{check_metrics, dashboard_queries, http_get, PrometheusServer};
use mxrep_tests::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Three nodes and one agent, each serving `/metrics`.
struct ObsBed {
    cluster: TestCluster,
    _agent: AgentProc,
    log: PathBuf,
    table: String,
    node_metrics: Vec<String>,
    agent_metrics: String,
}

impl ObsBed {
    fn start(env: &[(String, String)]) -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let node_metrics: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let nm = node_metrics.clone();
        let cluster = TestCluster::start_env(
            3,
            Tuning::default(),
            |id| format!("metrics_listen = \"{}\"\n", nm[id as usize - 1]),
            env,
        );
        cluster.wait_for_leader(3, LIMIT);
        let dir = cluster.dir.path();
        let log = dir.join("maillog");
        std::fs::write(&log, "").unwrap();
        let table = format!("mxobs{}", std::process::id());
        let agent_metrics = format!("127.0.0.1:{}", free_port());
        let apis: Vec<&str> = cluster.nodes.iter().map(|n| n.api.as_str()).collect();
        let path = log.display().to_string();
        let args = [
            "--nft-table",
            &table,
            "--log-timezone",
            "UTC",
            "--metrics-listen",
            &agent_metrics,
            "--postfix-log",
            &path,
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let agent = AgentProc::start(dir, &apis.join(","), "mx-obs", &args, &env);
        Self {
            cluster,
            _agent: agent,
            log,
            table,
            node_metrics,
            agent_metrics,
        }
    }

    /// Five connections of `addr` whose recipients were all unknown, as Postfix logs them.
    fn spam_from(&self, addr: &str) {
        let t = chrono::Utc::now().format("%b %e %H:%M:%S");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap();
        for i in 0..5 {
            let pid = 200 + i;
            writeln!(
                f,
                "{t} mx-obs postfix/smtpd[{pid}]: connect from unknown[{addr}]"
            )
            .unwrap();
            writeln!(f, "{t} mx-obs postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from unknown[{addr}]: 550 5.1.1 <nobody{i}@mx.test>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.test> to=<nobody{i}@mx.test> proto=ESMTP helo=<spam.test>").unwrap();
            writeln!(f, "{t} mx-obs postfix/smtpd[{pid}]: disconnect from unknown[{addr}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4").unwrap();
        }
    }

    fn in_kernel(&self, addr: &str) -> bool {
        let out = Command::new("nft")
            .args(["-j", "list", "set", "inet", &self.table, "ban4"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("\"{addr}\""))
    }
}

impl Drop for ObsBed {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
    }
}

#[test]
fn prometheus_sees_events_bans_and_the_agents_lag() {
    if !e2e_available("prometheus_sees_events_bans_and_the_agents_lag")
        || !tool_available("prometheus scrape test", "prometheus", "prometheus")
    {
        return;
    }
    let _g = serial();
    let bed = ObsBed::start(&[]);
    let prom_dir = tempfile::tempdir().unwrap();
    let prom = PrometheusServer::start(
        prom_dir.path(),
        &[
            ("mxrep-node", bed.node_metrics.clone()),
            ("mxrep-agent", vec![bed.agent_metrics.clone()]),
        ],
    );
    bed.spam_from("203.0.113.77");
    wait_until(LIMIT, "203.0.113.77 in the agent's set", || {
        bed.in_kernel("203.0.113.77").then_some(())
    });

    // Every scrape Prometheus makes is what we lint: each target, as served.
    for target in bed.node_metrics.iter().chain([&bed.agent_metrics]) {
        let text = http_get(target, "/metrics").expect("a scrape");
        check_metrics(&text).unwrap_or_else(|e| panic!("promtool on {target}: {e}\n{text}"));
    }
    let at_least = |q: &str, min: f64| {
        wait_until(LIMIT, &format!("Prometheus: {q} >= {min}"), || {
            prom.query_scalar(q).filter(|v| *v >= min)
        })
    };
    // Events by kind and MX host reached the cluster (whichever node the agent streams to).
    at_least(
        r#"sum(mxrep_events_received_total{kind="verdict",mx_host="mx-obs"})"#,
        5.0,
    );
    at_least(
        r#"sum(mxrep_ingest_batches_total{outcome="acknowledged"})"#,
        1.0,
    );
    // Every node applied the ban, and counts it under its rule.
    at_least(
        r#"count(mxrep_bans_created_total{source="automatic",rule!="manual"} >= 1)"#,
        3.0,
    );
    at_least(r#"min(mxrep_bans_active{action="drop"})"#, 1.0);
    at_least("sum(mxrep_raft_is_leader)", 1.0);
    at_least("count(mxrep_raft_term >= 1)", 3.0);
    // The agent's side: events acknowledged, the ban enforced, and how long that took.
    at_least(r#"mxrep_uplink_events_total{outcome="acknowledged"}"#, 5.0);
    at_least("mxrep_ban_enforcement_delay_seconds_count", 1.0);
    let versions = "max(mxrep_ban_list_version) - max(mxrep_agent_ban_list_version)";
    let behind = wait_until(LIMIT, "the agent's lag to be known and zero", || {
        prom.query_scalar(versions).filter(|v| *v == 0.0)
    });
    assert_eq!(behind, 0.0);
    let p99 = prom
        .query_scalar(
            "histogram_quantile(0.99, sum by (le) (mxrep_ban_enforcement_delay_seconds_bucket))",
        )
        .expect("an enforcement delay quantile");
    assert!(p99 > 0.0 && p99 <= 10.0, "enforcement delay p99 {p99} s");
    // The dashboard's every query is valid PromQL over these series.
    for q in dashboard_queries() {
        assert!(
            prom.query(&q).is_some(),
            "Prometheus refused the dashboard query {q}"
        );
    }
    assert!(bed.cluster.nodes.iter().all(|n| n.is_running()));
}

/// The chain of `span`'s ancestors (itself first) among `spans`.
fn ancestry<'a>(spans: &'a [SpanRecord], span: &'a SpanRecord) -> Vec<&'a SpanRecord> {
    let mut chain = vec![span];
    while let Some(parent) = chain.last().and_then(|s| {
        spans
            .iter()
            .find(|p| !s.parent_span_id.is_empty() && p.span_id == s.parent_span_id)
    }) {
        chain.push(parent);
    }
    chain
}

#[test]
fn one_trace_follows_a_ban_from_the_agents_batch_to_its_nft_transaction() {
    if !e2e_available("one_trace_follows_a_ban_from_the_agents_batch_to_its_nft_transaction") {
        return;
    }
    let _g = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sink, endpoint) = OtlpSink::start(&rt);
    let env: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let bed = ObsBed::start(&env);
    bed.spam_from("203.0.113.78");
    wait_until(LIMIT, "203.0.113.78 in the agent's set", || {
        bed.in_kernel("203.0.113.78").then_some(())
    });
    let names = |chain: &[&SpanRecord]| -> Vec<String> {
        chain
            .iter()
            .map(|s| format!("{}:{}", s.service, s.name))
            .collect()
    };
    let want = [
        "mxrep-agent:ban.enforce",
        "mxrep-node:ban.decided",
        "mxrep-node:raft.write",
        "mxrep-node:ingest.batch",
        "mxrep-agent:uplink.batch",
    ];
    // The enforcement span of the ban, and its ancestors back to the agent's batch.
    let chain: Vec<SpanRecord> = wait_until(LIMIT, "one trace from batch to nft", || {
        let spans = sink.spans();
        spans
            .iter()
            .filter(|s| s.name == "ban.enforce")
            .map(|s| ancestry(&spans, s))
            .find(|c| names(c) == want)
            .map(|c| c.into_iter().cloned().collect())
    });
    let trace = &chain[0].trace_id;
    assert_eq!(trace.len(), 16);
    assert!(chain.iter().all(|s| &s.trace_id == trace), "one trace id");
    // Causal order: each span starts no earlier than the one that caused it.
    for pair in chain.windows(2) {
        let (child, parent) = (&pair[0], &pair[1]);
        assert!(
            child.start_ns >= parent.start_ns,
            "{} starts before its cause {}",
            child.name,
            parent.name
        );
        assert!(child.end_ns >= child.start_ns);
    }
    // An operator's ban under OTEL_*: mxrepctl's span goes to the node in the call's metadata,
    // and the same trace reaches the agent's nft transaction.
    run_ok(
        Command::new(bin("mxrepctl"))
            .args(["--endpoint", &bed.cluster.nodes[0].api])
            .args(["ban", "203.0.113.79", "--for", "1h", "--reason", "traced"])
            .envs(env.iter().map(|(k, v)| (k, v))),
    );
    let manual = [
        "mxrep-agent:ban.enforce",
        "mxrep-node:ban.decided",
        "mxrep-node:admin.ban",
        "mxrepctl:mxrepctl.ban",
    ];
    wait_until(LIMIT, "one trace from mxrepctl to nft", || {
        let spans = sink.spans();
        spans
            .iter()
            .filter(|s| s.name == "ban.enforce")
            .map(|s| ancestry(&spans, s))
            .find(|c| names(c) == manual)
            .map(|_| ())
    });
    // Metrics went over OTLP too, from both processes.
    wait_until(LIMIT, "OTLP metrics from the node and the agent", || {
        (sink.has_metric("mxrep-node", "mxrep_events_received")
            && sink.has_metric("mxrep-agent", "mxrep_uplink_events"))
        .then_some(())
    });
    drop(bed);
    drop(rt);
}
