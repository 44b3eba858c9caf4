//! What the fleet's protection did, hour by hour, for `mxrepctl report`: connection attempts the
//! MX hosts' nftables rules dropped (per host and per ban, as the agents report them), bans made
//! by rule and source, greylisted and passed triplets, DNS list hits, bans lifted by hand. Kept
//! for [`KEEP_HOURS`] of cluster time; everything enters as applied entries, so every node holds
//! the same ledger.

use super::ban::{BanChange, BanChangeKind, BanSource};
use super::command::Command;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Hours of history kept: eight days, so "the last 7 days" is always whole.
pub const KEEP_HOURS: i64 = 8 * 24;
const HOUR_MS: i64 = 3_600_000;

/// A ban lifted by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifted {
    pub prefix: IpNet,
    pub actor: String,
    pub at_ms: i64,
}

/// One hour of activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourActivity {
    /// Connection attempts dropped, per MX host.
    pub dropped: BTreeMap<String, u64>,
    /// Connection attempts dropped, per ban (where the kernel counted per element).
    pub dropped_by_ban: BTreeMap<IpNet, u64>,
    /// Bans made, by (rule, source).
    pub bans: BTreeMap<(String, String), u64>,
    /// Triplets greylisted (deferred for the first time) and passed (retried after the delay).
    pub greylisted: u64,
    pub greylist_passed: u64,
    /// Addresses found listed, per DNS list zone.
    pub dnsbl_hits: BTreeMap<String, u64>,
    pub lifted: Vec<Lifted>,
}

/// The ledger: hour start (unix ms) → activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub hours: BTreeMap<i64, HourActivity>,
}

/// The connection attempts one agent's rules dropped since its last report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropReport {
    pub mx_host: String,
    /// Over all drop rules.
    pub dropped: u64,
    /// Per ban, where the kernel counted per set element.
    pub by_ban: Vec<(IpNet, u64)>,
}

/// The rule and source words of a new ban.
fn rule_and_source(c: &BanChange) -> (String, String) {
    let source = match c.ban.source {
        BanSource::Manual => "manual",
        BanSource::Automatic => "automatic",
    };
    let rule = c
        .ban
        .evidence
        .first()
        .map(|e| e.rule.clone())
        .unwrap_or_else(|| "operator".into());
    (rule, source.into())
}

impl Activity {
    /// The hour holding `at_ms`, created if needed; hours past [`KEEP_HOURS`] are dropped.
    pub fn hour(&mut self, at_ms: i64) -> &mut HourActivity {
        let start = at_ms - at_ms.rem_euclid(HOUR_MS);
        let oldest = start - KEEP_HOURS * HOUR_MS;
        while self
            .hours
            .first_key_value()
            .is_some_and(|(h, _)| *h < oldest)
        {
            self.hours.pop_first();
        }
        self.hours.entry(start).or_default()
    }

    /// Records what one applied `command` and its ban `changes` did, at cluster time `now_ms`.
    pub fn record(&mut self, now_ms: i64, command: &Command, changes: &[BanChange]) {
        for c in changes.iter().filter(|c| c.kind == BanChangeKind::Added) {
            *self
                .hour(now_ms)
                .bans
                .entry(rule_and_source(c))
                .or_default() += 1;
        }
        let mut actor = None;
        let mut cmd = command;
        loop {
            match cmd {
                Command::Traced { command, .. } => cmd = command,
                Command::Audited { actor: a, command } => {
                    actor = Some(a.clone());
                    cmd = command;
                }
                _ => break,
            }
        }
        if let (Command::Unban { prefix }, Some(actor)) = (cmd, actor) {
            if changes.iter().any(|c| c.kind == BanChangeKind::Removed) {
                self.hour(now_ms).lifted.push(Lifted {
                    prefix: *prefix,
                    actor,
                    at_ms: now_ms,
                });
            }
        }
    }

    /// Adds an agent's drop report at `now_ms`.
    pub fn drops(&mut self, now_ms: i64, r: &DropReport) {
        let h = self.hour(now_ms);
        *h.dropped.entry(r.mx_host.clone()).or_default() += r.dropped;
        for (p, n) in &r.by_ban {
            *h.dropped_by_ban.entry(*p).or_default() += n;
        }
    }

    /// Adds greylisting outcomes at `now_ms`.
    pub fn greylist(&mut self, now_ms: i64, greylisted: u64, passed: u64) {
        if greylisted + passed > 0 {
            let h = self.hour(now_ms);
            h.greylisted += greylisted;
            h.greylist_passed += passed;
        }
    }

    /// Adds one listing of an address by `zone` at `now_ms`.
    pub fn dnsbl_hit(&mut self, now_ms: i64, zone: &str) {
        *self
            .hour(now_ms)
            .dnsbl_hits
            .entry(zone.to_string())
            .or_default() += 1;
    }

    /// Everything from the hour holding `since_ms` on, summed.
    pub fn since(&self, since_ms: i64) -> HourActivity {
        let first = since_ms - since_ms.rem_euclid(HOUR_MS);
        let mut sum = HourActivity::default();
        for h in self.hours.range(first..).map(|(_, h)| h) {
            for (k, v) in &h.dropped {
                *sum.dropped.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &h.dropped_by_ban {
                *sum.dropped_by_ban.entry(*k).or_default() += v;
            }
            for (k, v) in &h.bans {
                *sum.bans.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &h.dnsbl_hits {
                *sum.dnsbl_hits.entry(k.clone()).or_default() += v;
            }
            sum.greylisted += h.greylisted;
            sum.greylist_passed += h.greylist_passed;
            sum.lifted
                .extend(h.lifted.iter().filter(|l| l.at_ms >= since_ms).cloned());
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drops(host: &str, n: u64, by: &[(&str, u64)]) -> DropReport {
        DropReport {
            mx_host: host.into(),
            dropped: n,
            by_ban: by.iter().map(|(p, n)| (p.parse().unwrap(), *n)).collect(),
        }
    }

    #[test]
    fn drops_sum_per_host_and_ban_and_old_hours_go() {
        let mut a = Activity::default();
        let h = HOUR_MS;
        a.drops(10 * h + 5, &drops("mx1", 3, &[("192.0.2.7/32", 3)]));
        a.drops(10 * h + 9, &drops("mx2", 2, &[("192.0.2.7/32", 2)]));
        a.drops(11 * h, &drops("mx1", 1, &[]));
        let s = a.since(10 * h + 30);
        assert_eq!(s.dropped["mx1"], 4, "the whole first hour counts");
        assert_eq!(
            s.dropped_by_ban[&"192.0.2.7/32".parse::<IpNet>().unwrap()],
            5
        );
        assert_eq!(a.since(11 * h).dropped.get("mx2"), None);
        a.drops((11 + KEEP_HOURS) * h, &drops("mx1", 1, &[]));
        assert!(
            !a.hours.contains_key(&(10 * h)),
            "older than the kept hours"
        );
        assert!(a.hours.contains_key(&(11 * h)));
    }

    #[test]
    fn an_unban_by_an_operator_is_a_lifted_ban_only_when_something_was_lifted() {
        let mut a = Activity::default();
        let unban = Command::Audited {
            actor: "admin".into(),
            command: Box::new(Command::Unban {
                prefix: "192.0.2.0/24".parse().unwrap(),
            }),
        };
        a.record(1000, &unban, &[]);
        assert!(a.since(0).lifted.is_empty());
    }
}
