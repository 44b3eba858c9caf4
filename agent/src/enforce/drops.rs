//! Reporting what the drop rules dropped: every `--drop-report-every` the agent reads the
//! kernel's counters (over all drop rules, and per ban where the sets count per element), turns
//! them into the increase since the last reading — a counter that went down was made anew (a
//! rebuilt table, a refreshed element) and counts from zero — and sends the sum of increases not
//! yet accepted to the cluster (`ReportDrops`). A cluster that is away loses nothing: the
//! increases wait for the next report.

use super::watch::{blocking, SharedEnforcer};
use super::DropCounters;
use ipnet::IpNet;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::agent_client::AgentClient;
use std::time::Duration;

/// Increases of the counters since the last reading, accumulated until the cluster takes them.
/// A report, once made, is sent as it is (the same sequence number) until the cluster accepts
/// it — it may have been counted already when only its acknowledgement was lost, and the
/// cluster counts a report once — while newer increases wait for the next report.
#[derive(Debug)]
pub struct DropDeltas {
    last: DropCounters,
    /// Increases in no report yet.
    pub pending: DropCounters,
    /// The report sent and not yet accepted: its sequence number and counts.
    in_flight: Option<(u64, DropCounters)>,
    /// Random per agent run: with the sequence number it names a report.
    session: u64,
    /// Sequence number of the last report made.
    seq: u64,
}

impl Default for DropDeltas {
    fn default() -> Self {
        Self {
            last: DropCounters::default(),
            pending: DropCounters::default(),
            in_flight: None,
            session: rand::random::<u64>().max(1),
            seq: 0,
        }
    }
}

/// The increase from `before` to `now` of one counter (a counter made anew restarts at zero).
fn increase(before: u64, now: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

impl DropDeltas {
    /// Takes a new reading.
    pub fn observe(&mut self, now: DropCounters) {
        self.pending.total += increase(self.last.total, now.total);
        for (p, n) in &now.by_ban {
            let before = self.last.by_ban.get(p).copied().unwrap_or(0);
            let up = increase(before, *n);
            if up > 0 {
                *self.pending.by_ban.entry(*p).or_default() += up;
            }
        }
        self.last = now;
    }

    /// The report to send: the one in flight, else a new one of what is pending, if anything is.
    pub fn report(&mut self, mx_host: &str) -> Option<pb::DropCounts> {
        if self.in_flight.is_none() {
            if self.pending.total == 0 && self.pending.by_ban.is_empty() {
                return None;
            }
            self.seq += 1;
            self.in_flight = Some((self.seq, std::mem::take(&mut self.pending)));
        }
        let (seq, counts) = self.in_flight.as_ref()?;
        Some(pb::DropCounts {
            mx_host: mx_host.to_string(),
            dropped: counts.total,
            by_ban: counts
                .by_ban
                .iter()
                .map(|(p, n): (&IpNet, &u64)| pb::BanDrops {
                    prefix: p.to_string(),
                    dropped: *n,
                })
                .collect(),
            session: self.session,
            seq: *seq,
        })
    }

    /// The cluster accepted the report in flight.
    pub fn accepted(&mut self) {
        self.in_flight = None;
    }
}

/// Sends `report` to the first node of `cluster` that takes it.
async fn send(cluster: &[String], report: pb::DropCounts) -> Result<(), String> {
    let mut last = String::from("no cluster address");
    for addr in cluster {
        let channel = match mxrep_common::endpoint::connect(addr).await {
            Ok(c) => c,
            Err(e) => {
                last = format!("{addr}: {e}");
                continue;
            }
        };
        match AgentClient::new(channel).report_drops(report.clone()).await {
            Ok(_) => return Ok(()),
            Err(s) => last = format!("{addr}: {}", s.message()),
        }
    }
    Err(last)
}

/// Reads and reports forever, every `every`.
pub async fn report_drops(
    enforcer: SharedEnforcer,
    cluster: Vec<String>,
    mx_host: String,
    every: Duration,
) {
    let mut deltas = DropDeltas::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match blocking(&enforcer, |e| e.drop_counts()).await {
            Ok(Some(now)) => deltas.observe(now),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot read the drop counters: {e:#}");
                continue;
            }
        }
        let Some(report) = deltas.report(&mx_host) else {
            continue;
        };
        match send(&cluster, report).await {
            Ok(()) => deltas.accepted(),
            Err(e) => tracing::debug!("drop counts not reported yet: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(total: u64, by: &[(&str, u64)]) -> DropCounters {
        DropCounters {
            total,
            by_ban: by.iter().map(|(p, n)| (p.parse().unwrap(), *n)).collect(),
        }
    }

    #[test]
    fn a_report_is_sent_unchanged_until_accepted_and_resets_count_from_zero() {
        let mut d = DropDeltas::default();
        d.observe(reading(5, &[("192.0.2.7/32", 5)]));
        d.observe(reading(8, &[("192.0.2.7/32", 8)]));
        let r = d.report("mx1").unwrap();
        assert_eq!((r.dropped, r.by_ban[0].dropped, r.seq), (8, 8, 1));
        assert_ne!(r.session, 0);
        // Not accepted (cluster away, or the acknowledgement lost): the same report again,
        // which the cluster counts once; what came since waits for the next one.
        d.observe(reading(2, &[("192.0.2.7/32", 1)]));
        assert_eq!(d.report("mx1").unwrap(), r);
        d.accepted();
        let next = d.report("mx1").unwrap();
        assert_eq!(
            (next.dropped, next.by_ban[0].dropped, next.seq),
            (2, 1, 2),
            "rebuilt: from zero"
        );
        d.accepted();
        assert!(d.report("mx1").is_none());
        d.observe(reading(2, &[("192.0.2.7/32", 1)]));
        assert!(d.report("mx1").is_none(), "nothing new");
    }
}
