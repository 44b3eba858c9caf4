//! `mxrepctl replay LOG... [--policy FILE]`: what mxrep would have decided over Postfix logs,
//! offline — the bans with their evidence, and a summary (bans by rule, addresses and prefixes,
//! and delivered messages that came from addresses it would have banned). Several MX hosts'
//! logs replay together; each file is one MX host (named by the file, or `NAME=FILE`). Nothing
//! is contacted: this runs the cluster's own engine on this machine.

use super::render::{ban_json, evidence_lines, rfc3339};
use super::Output;
use crate::api::convert::ban_to_pb;
use crate::replay::{replay, LoggedVerdict};
use crate::state::Policy;
use anyhow::Context;
use clap::Args;
use mxrep_agent::sources::connections::ConnectionTracker;
use mxrep_agent::sources::postfix::{parse_line_in, Parsed};
use mxrep_agent::sources::timezone::LogTimezone;
use mxrep_proto::v1 as pb;
use serde_json::json;
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Postfix logs, one per MX host: FILE (the host is named after the file) or NAME=FILE.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<String>,
    /// Policy document (TOML, as `mxrepctl policy show` prints it); default: the built-in policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Zone of log stamps that carry none: local, UTC, +02:00, Europe/Berlin.
    #[arg(long, default_value = "local", value_parser = |s: &str| s.parse::<LogTimezone>())]
    pub log_timezone: LogTimezone,
}

/// Reads the verdicts of one log.
fn read_log(
    host: &str,
    path: &std::path::Path,
    tz: &LogTimezone,
) -> anyhow::Result<(Vec<LoggedVerdict>, u64)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let now = chrono::Utc::now();
    let mut tracker = ConnectionTracker::default();
    let mut out = vec![];
    let mut not_understood = 0;
    let take = |events: Vec<pb::Event>, out: &mut Vec<LoggedVerdict>| {
        for e in events {
            if let (Some(pb::event::Kind::Verdict(v)), Ok(addr)) =
                (e.kind, e.client_address.parse())
            {
                out.push(LoggedVerdict {
                    mx_host: host.to_string(),
                    time_ms: e.time_unix_ms,
                    addr,
                    verdict: v,
                });
            }
        }
    };
    for line in std::io::BufReader::new(f).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let read = parse_line_in(&line, now, tz);
        if read.parsed == Parsed::NotUnderstood && !line.trim().is_empty() {
            not_understood += 1;
        }
        take(tracker.feed(read), &mut out);
    }
    take(tracker.expire(i64::MAX), &mut out);
    Ok((out, not_understood))
}

pub fn run(out: &Output, a: ReplayArgs) -> anyhow::Result<()> {
    let policy = match &a.policy {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Policy::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Policy::default(),
    };
    let mut verdicts = vec![];
    let mut not_understood = 0;
    for spec in &a.logs {
        let (host, path) = match spec.split_once('=') {
            Some((h, p)) if !h.is_empty() => (h.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(spec);
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (stem, p)
            }
        };
        let (v, n) = read_log(&host, &path, &a.log_timezone)?;
        verdicts.extend(v);
        not_understood += n;
    }
    let r = replay(verdicts, policy);
    let prefixes = r
        .decisions
        .iter()
        .filter(|b| b.drops() && b.prefix.prefix_len() < b.prefix.max_prefix_len())
        .count();
    let addresses = r.decisions.iter().filter(|b| b.drops()).count() - prefixes;
    let tempfails = r.decisions.iter().filter(|b| !b.drops()).count();
    if out.json {
        out.json(json!({
            "decisions": r.decisions.iter().map(|b| ban_json(&ban_to_pb(b))).collect::<Vec<_>>(),
            "summary": {
                "connections": {"delivered": r.connections[0], "neutral": r.connections[1], "bad": r.connections[2]},
                "addresses_seen": r.addresses,
                "mx_hosts": r.mx_hosts,
                "banned_addresses": addresses,
                "banned_prefixes": prefixes,
                "temporary_refusals": tempfails,
                "bans_by_rule": r.by_rule(),
                "delivered_messages_from_banned": r.lost_messages,
                "delivering_addresses_banned": r.lost_from.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "lines_not_understood": not_understood,
            }
        }));
        return Ok(());
    }
    for b in &r.decisions {
        let verb = if b.drops() {
            "ban"
        } else {
            "refuse temporarily"
        };
        let secs = (b.expires_ms - b.created_ms) / 1000;
        println!(
            "{} would {verb} {} for {secs} s: {}",
            rfc3339(b.created_ms),
            b.prefix,
            b.reason
        );
        for e in evidence_lines(&ban_to_pb(b)) {
            println!("    why: {e}");
        }
    }
    let [d, n, bad] = r.connections;
    println!(
        "summary: {} connections ({d} delivered, {n} neutral, {bad} bad) from {} addresses on {} MX hosts",
        d + n + bad,
        r.addresses,
        r.mx_hosts.len()
    );
    println!(
        "  would ban {addresses} addresses and {prefixes} prefixes; {tempfails} temporary refusals"
    );
    for (rule, count) in r.by_rule() {
        println!("  bans by {rule}: {count}");
    }
    println!(
        "  delivered messages from addresses it would have banned: {}",
        r.lost_messages
    );
    if not_understood > 0 {
        println!(
            "  lines not understood: {not_understood} (check them with mxrep-agent check-log)"
        );
    }
    Ok(())
}
