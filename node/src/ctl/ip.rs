//! `mxrepctl ip show IP`: what the cluster holds about one address, in words an operator
//! understands: its counters, its prefix's counters, and the bans that cover it and why.

use super::render::{ban_json, ban_line, evidence_lines, rfc3339};
use super::Output;
use crate::state::parse_prefix;
use clap::Subcommand;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::admin_client::AdminClient;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum IpCommand {
    /// Verdict counters, prefix weighing, how far each rule is from a ban, and the bans covering
    /// an address, and why.
    Show {
        /// The address or prefix to explain, e.g. 203.0.113.7 or 203.0.113.0/24.
        #[arg(value_parser = |s: &str| parse_prefix(s).map(|p| {
            if p.prefix_len() == p.max_prefix_len() { p.addr().to_string() } else { p.to_string() }
        }))]
        address: String,
    },
}

fn counter_json(c: &pb::Counter) -> serde_json::Value {
    json!({"name": c.name, "count": c.count, "window_seconds": c.window_seconds, "limit": c.limit})
}

fn counter_line(c: &pb::Counter) -> String {
    let limit = if c.limit > 0 {
        format!(" (limit {})", c.limit)
    } else {
        String::new()
    };
    format!(
        "    {:<46} {:>6} in the last {} s{limit}",
        c.name, c.count, c.window_seconds
    )
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: IpCommand,
) -> anyhow::Result<()> {
    let IpCommand::Show { address } = cmd;
    let r = client
        .show_ip(pb::ShowIpRequest { address })
        .await?
        .into_inner();
    if out.json {
        out.json(json!({
            "address": r.address,
            "banned": !r.covering_bans.is_empty(),
            "covering_bans": r.covering_bans.iter().map(ban_json).collect::<Vec<_>>(),
            "counters": r.counters.iter().map(counter_json).collect::<Vec<_>>(),
            "mx_hosts": r.mx_hosts,
            "prefix": r.prefix,
            "prefix_counters": r.prefix_counters.iter().map(counter_json).collect::<Vec<_>>(),
            "prefix_mx_hosts": r.prefix_mx_hosts,
            "observed": r.observed.iter().map(ban_json).collect::<Vec<_>>(),
            "allowlisted": r.allowlisted,
            "suppressed_until_unix_ms": (r.suppressed_until_unix_ms > 0).then_some(r.suppressed_until_unix_ms),
            "offences": r.offences,
            "greylist": r.greylist.as_ref().map(|g| json!({
                "network": g.network, "triplets_seen": g.triplets_seen,
                "triplets_passed": g.triplets_passed, "passes": g.passes,
                "allowlisted_until_unix_ms": (g.allowlisted_until_unix_ms > 0).then_some(g.allowlisted_until_unix_ms),
            })),
            "dns": r.dns.as_ref().map(|d| json!({
                "score": d.score, "listed_by": d.listed_by,
                "verified_name": (!d.verified_name.is_empty()).then_some(&d.verified_name),
                "until_unix_ms": d.until_unix_ms,
            })),
            "distances": r.distances.iter().map(|d| json!({
                "rule": d.rule, "key": d.key, "text": d.text, "would_ban": d.would_ban,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    if r.covering_bans.is_empty() {
        println!("{}: not banned", r.address);
    } else {
        println!("{}: BANNED", r.address);
        for b in &r.covering_bans {
            println!("  {}", ban_line(b));
            for e in evidence_lines(b) {
                println!("      why: {e}");
            }
        }
    }
    if r.allowlisted {
        println!("  allowlisted: never banned automatically");
    }
    if r.suppressed_until_unix_ms > 0 {
        println!(
            "  an operator lifted its automatic ban: not banned automatically again before {}",
            rfc3339(r.suppressed_until_unix_ms)
        );
    }
    if r.offences > 0 {
        println!(
            "  automatic bans in the repeat-offender window: {}",
            r.offences
        );
    }
    if r.counters.is_empty() {
        println!("  no recent activity from this address");
    } else {
        println!("  this address, across {}:", r.mx_hosts.join(", "));
        for c in &r.counters {
            println!("{}", counter_line(c));
        }
    }
    if !r.prefix_counters.is_empty() {
        println!(
            "  its prefix {}, across {}:",
            r.prefix,
            r.prefix_mx_hosts.join(", ")
        );
        for c in &r.prefix_counters {
            println!("{}", counter_line(c));
        }
    }
    if !r.distances.is_empty() {
        println!("  how far from a ban:");
        for d in &r.distances {
            let mark = if d.would_ban { "AT LIMIT" } else { "" };
            println!("    {:<20} {} {mark}", d.rule, d.text);
        }
    }
    if let Some(g) = &r.greylist {
        let allow = if g.allowlisted_until_unix_ms > 0 {
            format!(
                "; not greylisted until {}",
                rfc3339(g.allowlisted_until_unix_ms)
            )
        } else {
            String::new()
        };
        println!(
            "  greylisting of {}: {} triplets seen, {} passed, {} passes toward the allowlist{allow}",
            g.network,
            g.triplets_seen,
            g.triplets_passed,
            g.passes
        );
    }
    if let Some(d) = &r.dns {
        let name = match d.verified_name.as_str() {
            "" => "no verified name".to_string(),
            n => format!("verified name {n}"),
        };
        let listed = match d.listed_by.is_empty() {
            true => "listed nowhere".to_string(),
            false => format!("listed by {}", d.listed_by.join("; ")),
        };
        println!(
            "  DNS (until {}): score {}, {listed}, {name}",
            rfc3339(d.until_unix_ms),
            d.score
        );
    }
    for b in &r.observed {
        println!("  observed only (not enforced): {}", ban_line(b));
    }
    Ok(())
}
