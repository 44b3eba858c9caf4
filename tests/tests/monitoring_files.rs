//! The monitoring files in deploy/: the Prometheus alerting rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`, one test per alert); the Grafana dashboard is
//! importable JSON; every mxrep metric the rules and the dashboard name is one the node or the
//! agent exports. (The dashboard's queries are run against a real Prometheus in observability.rs.)

use mxrep_tests::netns::tool_available;
use mxrep_tests::prometheus::{dashboard_queries, repo_root};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    repo_root()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The `mxrep_…` metric names in `text`, without Prometheus's suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("mxrep_") {
        if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let mut base = name.as_str();
        for suffix in ["_bucket", "_count", "_sum", "_total", "_seconds"] {
            base = base.strip_suffix(suffix).unwrap_or(base);
        }
        names.insert(base.to_string());
    }
    names
}

/// Every instrument name declared in the node's and the agent's sources.
fn declared() -> String {
    [
        "node/src/metrics/mod.rs",
        "node/src/metrics/gauges.rs",
        "agent/src/metrics.rs",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(repo().join(p)).unwrap())
    .collect()
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    if !tool_available("alert rules", "promtool", "prometheus") {
        return;
    }
    let checked = promtool(&["check", "rules", "mxrep-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "mxrep-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/mxrep-alerts.yml")).unwrap();
    let tests =
        std::fs::read_to_string(repo().join("deploy/prometheus/mxrep-alerts.test.yml")).unwrap();
    for line in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {line}")),
            "alert {line} has no unit test"
        );
    }
}

#[test]
fn dashboard_and_rules_name_only_metrics_that_exist() {
    let dashboard =
        std::fs::read_to_string(repo().join("deploy/grafana/mxrep-dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert_eq!(v["uid"], "mxrep-overview");
    assert!(
        dashboard_queries().len() >= 25,
        "the dashboard has its panels"
    );
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/mxrep-alerts.yml")).unwrap();
    let source = declared();
    for name in metric_names(&dashboard).union(&metric_names(&rules)) {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} is named in deploy/ but no instrument declares it"
        );
    }
}
