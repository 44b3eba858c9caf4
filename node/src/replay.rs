//! "What would mxrep have done?": the pure engine run offline over connection verdicts read
//! from Postfix logs, with a policy, so an operator can tune a policy before enforcing it (as
//! CrowdSec's replay mode). Deterministic: the same verdicts and policy give the same output.
//!
//! Verdicts are fed in time order, one `Observe` entry per second of log time stamped with that
//! second, exactly as the cluster would apply them; every decision is recorded with its
//! evidence, and every delivered message that came from an address while a ban covered it is
//! counted — that is mail the policy would have lost.

use crate::state::{
    Ban, BanAction, BanChangeKind, BatchId, Command, Observation, Policy, ReputationState, Request,
};
use mxrep_proto::v1 as pb;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One connection verdict from the logs, with the MX host whose log it came from.
#[derive(Debug, Clone)]
pub struct LoggedVerdict {
    pub mx_host: String,
    pub time_ms: i64,
    pub addr: IpAddr,
    pub verdict: pb::ConnectionVerdict,
}

/// What the replay found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// Every ban and temporary refusal decided, in order.
    pub decisions: Vec<Ban>,
    /// Connections by verdict: delivered, neutral, bad.
    pub connections: [u64; 3],
    pub addresses: usize,
    pub mx_hosts: Vec<String>,
    /// Delivered messages from addresses while a ban covered them.
    pub lost_messages: u64,
    /// The addresses those messages came from.
    pub lost_from: Vec<IpAddr>,
}

impl ReplayReport {
    /// Dropping bans by the rule that decided them.
    pub fn by_rule(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for b in self.decisions.iter().filter(|b| b.drops()) {
            let rule = b.evidence.first().map_or("manual", |e| e.rule.as_str());
            *m.entry(rule.to_string()).or_default() += 1;
        }
        m
    }
}

/// Runs the engine over `verdicts` (any order) with `policy`.
pub fn replay(mut verdicts: Vec<LoggedVerdict>, policy: Policy) -> ReplayReport {
    verdicts.sort_by_key(|v| v.time_ms);
    let mut state = ReputationState::default();
    let mut report = ReplayReport::default();
    let mut index = 1;
    let first = verdicts.first().map_or(0, |v| v.time_ms);
    state.apply(
        index,
        &Request {
            now_ms: first - 1000,
            command: Command::SetPolicy(Box::new(policy)),
        },
    );
    let mut hosts: Vec<String> = vec![];
    let mut addrs = std::collections::BTreeSet::new();
    let mut lost_from = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < verdicts.len() {
        let second = verdicts[i].time_ms.div_euclid(1000);
        let mut obs: BTreeMap<(u32, IpAddr), Observation> = BTreeMap::new();
        while i < verdicts.len() && verdicts[i].time_ms.div_euclid(1000) == second {
            let v = &verdicts[i];
            i += 1;
            let host = match hosts.iter().position(|h| *h == v.mx_host) {
                Some(h) => h,
                None => {
                    hosts.push(v.mx_host.clone());
                    hosts.len() - 1
                }
            } as u32;
            addrs.insert(v.addr);
            let kind = pb::Verdict::try_from(v.verdict.verdict).unwrap_or(pb::Verdict::Unspecified);
            if kind == pb::Verdict::Delivered
                && state.bans_covering(v.addr).iter().any(|b| b.drops())
            {
                report.lost_messages += v.verdict.messages as u64;
                lost_from.insert(v.addr);
            }
            let o = obs
                .entry((host, v.addr))
                .or_insert_with(|| Observation::new(v.addr, host, second as u32));
            match kind {
                pb::Verdict::Delivered => {
                    o.delivered += 1;
                    report.connections[0] += 1;
                }
                pb::Verdict::Neutral => {
                    o.neutral += 1;
                    report.connections[1] += 1;
                }
                _ => {
                    o.bad += 1;
                    report.connections[2] += 1;
                    o.rejects += v.verdict.rejected_recipients;
                }
            }
            o.messages += v.verdict.messages;
            o.auth_failures += v.verdict.auth_failures;
            let name = v.verdict.client_name.trim().to_ascii_lowercase();
            if o.verified_name.is_none() && !name.is_empty() && name != "unknown" {
                o.verified_name = Some(name);
            }
        }
        index += 1;
        let command = Command::Observe {
            hosts: hosts.clone(),
            batches: (0..hosts.len() as u16)
                .map(|host| BatchId {
                    host,
                    session: 0,
                    seq: 0,
                })
                .collect(),
            observations: obs.into_values().collect(),
        };
        let r = state.apply(
            index,
            &Request {
                now_ms: second * 1000 + 999,
                command,
            },
        );
        for c in r.changes {
            if matches!(c.kind, BanChangeKind::Added | BanChangeKind::Extended)
                && (c.ban.action == BanAction::Drop || c.kind == BanChangeKind::Added)
            {
                report.decisions.push(c.ban);
            }
        }
    }
    report.addresses = addrs.len();
    hosts.sort();
    report.mx_hosts = hosts;
    report.lost_from = lost_from.into_iter().collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(
        host: &str,
        t: i64,
        addr: &str,
        verdict: pb::Verdict,
        messages: u32,
        rejected: u32,
    ) -> LoggedVerdict {
        LoggedVerdict {
            mx_host: host.into(),
            time_ms: t,
            addr: addr.parse().unwrap(),
            verdict: pb::ConnectionVerdict {
                verdict: verdict as i32,
                messages,
                rejected_recipients: rejected,
                ..Default::default()
            },
        }
    }

    #[test]
    fn same_input_same_output_and_lost_mail_counted() {
        let t0 = 1_800_000_000_000;
        let mut input = vec![];
        for a in 1..=9 {
            input.push(v(
                "mx1",
                t0 + a * 1000,
                &format!("203.0.113.{a}"),
                pb::Verdict::Bad,
                0,
                1,
            ));
        }
        // A delivery from inside the prefix after its ban: mail the policy would lose.
        input.push(v(
            "mx2",
            t0 + 20_000,
            "203.0.113.200",
            pb::Verdict::Delivered,
            2,
            0,
        ));
        input.push(v(
            "mx2",
            t0 + 500,
            "198.51.100.1",
            pb::Verdict::Delivered,
            1,
            0,
        ));
        let a = replay(input.clone(), Policy::default());
        input.reverse();
        let b = replay(input, Policy::default());
        assert_eq!(a, b, "order of input does not matter");
        assert_eq!(a.decisions.len(), 1);
        assert_eq!(a.decisions[0].prefix.to_string(), "203.0.113.0/24");
        assert_eq!(a.by_rule().get("changing-addresses"), Some(&1));
        assert_eq!(a.connections, [2, 0, 9]);
        assert_eq!(a.lost_messages, 2);
        assert_eq!(a.mx_hosts, vec!["mx1", "mx2"]);
    }
}
