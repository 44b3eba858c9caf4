//! Failover: SIGKILL of the leader of a healthy cluster, then one new ban, round after round.

use crate::pct;
use crate::probe::KernelWatch;
use mxrep_tests::testbed::Testbed;
use mxrep_tests::wait_until;
use std::time::{Duration, Instant};

/// Every node running, one leader named by all, and every node's log applied up to the leader's:
/// a healthy cluster, so each failover round starts from the same place.
fn wait_healthy(bed: &Testbed) -> u64 {
    wait_until(Duration::from_secs(60), "all 3 nodes caught up", || {
        let leader = bed.wait_for_leader();
        let statuses: Vec<_> = bed
            .nodes
            .iter()
            .map(|n| n.status())
            .collect::<Option<_>>()?;
        let top = statuses[leader as usize - 1]["last_log_index"].as_u64()?;
        statuses
            .iter()
            .all(|s| {
                s["last_applied"].as_u64() >= Some(top) && s["leader_id"].as_u64() == Some(leader)
            })
            .then_some(leader)
    })
}

/// Prints what the agents and nodes logged since `since` (an RFC 3339 stamp to the second).
fn explain_slow_round(bed: &Testbed, since: &str) {
    let recent = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.get(..19).is_some_and(|t| t >= since))
            .filter(|l| !l.contains("Unreachable") && !l.contains("backoff_drain"))
            .map(|l| l.chars().take(220).collect())
            .collect()
    };
    for m in &bed.mx {
        println!("    agent on {} since {since}:", m.name);
        recent(m.agent_log())
            .iter()
            .for_each(|l| println!("      {l}"));
    }
    for n in &bed.nodes {
        println!("    node {} since {since}:", n.id);
        recent(n.log_text())
            .iter()
            .for_each(|l| println!("      {l}"));
    }
}

pub fn failover(bed: &mut Testbed, rounds: usize) {
    // 3. Failover: SIGKILL of the leader of a healthy cluster, then one new ban.
    let mut fo = Vec::new();
    let watch = KernelWatch::start(bed);
    for round in 0..rounds {
        let leader = wait_healthy(bed);
        let stamp_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        bed.nodes[leader as usize - 1].kill();
        let killed = Instant::now();
        // One /24 per round: eight bad addresses in one /24 would ban the prefix instead.
        let addr = format!("198.19.{}.3", 150 + round % 100);
        let d = watch.one_ban(bed, &addr, round % 3);
        let total = killed.elapsed().max(d);
        fo.push(total.as_secs_f64() * 1000.0);
        if total > Duration::from_secs(2) {
            explain_slow_round(bed, &stamp_at);
        }
        println!("  failover round {}: leader node {leader} killed, new ban enforced on all MX hosts after {:.0} ms", round + 1, fo[round]);
        bed.nodes[leader as usize - 1].start();
    }
    println!(
        "failover, leader SIGKILL -> first new ban on every MX host, {rounds} rounds: p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        pct(&mut fo, 0.5),
        pct(&mut fo, 0.99),
        fo.last().unwrap()
    );
}
