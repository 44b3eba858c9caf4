//! `mxrepctl report [--since 24h] [--top N] [--json]`: what protection did — connection attempts
//! the MX hosts dropped, per host; bans made by rule and source; greylisted and passed triplets;
//! DNS list hits; the bans that dropped most; bans lifted by hand. Hour granularity, 7 days back
//! at most. The answer to the classic advice "check your logs for blocked connections,
//! greylisted emails and DNSBL hits, to fine-tune your rules", once for the fleet.

use super::ban::parse_duration;
use super::render::rfc3339;
use super::Output;
use clap::Args;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::admin_client::AdminClient;
use serde_json::json;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How far back, e.g. 1h, 24h or 7d (whole hours; at most 7d).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub since: Duration,
    /// How many of the bans that dropped most to list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub top: u32,
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    a: ReportArgs,
) -> anyhow::Result<()> {
    let r = client
        .report(pb::ReportRequest {
            since_secs: a.since.as_secs().max(1),
            top: a.top,
        })
        .await?
        .into_inner();
    if out.json {
        out.json(to_json(&r));
    } else {
        print_text(&r);
    }
    Ok(())
}

fn to_json(r: &pb::ReportResponse) -> serde_json::Value {
    json!({
        "since_unix_ms": r.since_unix_ms,
        "until_unix_ms": r.until_unix_ms,
        "dropped": r.dropped,
        "hosts": r.hosts.iter().map(|h| json!({"mx_host": h.mx_host, "dropped": h.dropped})).collect::<Vec<_>>(),
        "bans_made": r.bans_made.iter().map(|b| json!({"rule": b.rule, "source": b.source, "count": b.count})).collect::<Vec<_>>(),
        "greylisted": r.greylisted,
        "greylist_passed": r.greylist_passed,
        "dnsbl_hits": r.dnsbl_hits.iter().map(|h| json!({"zone": h.zone, "hits": h.hits})).collect::<Vec<_>>(),
        "top": r.top.iter().map(|t| json!({"prefix": t.prefix, "dropped": t.dropped, "active": t.active})).collect::<Vec<_>>(),
        "lifted": r.lifted.iter().map(|l| json!({"prefix": l.prefix, "actor": l.actor, "at_unix_ms": l.at_unix_ms})).collect::<Vec<_>>(),
    })
}

fn print_text(r: &pb::ReportResponse) {
    println!(
        "from {} to {} (whole hours)",
        rfc3339(r.since_unix_ms),
        rfc3339(r.until_unix_ms)
    );
    println!(
        "connection attempts dropped: {} (SYN packets; a client's retries count again)",
        r.dropped
    );
    for h in &r.hosts {
        println!("  {:<30} {:>10}", h.mx_host, h.dropped);
    }
    let made: u64 = r.bans_made.iter().map(|b| b.count).sum();
    println!("bans made: {made}");
    for b in &r.bans_made {
        println!("  {:<30} {:<10} {:>10}", b.rule, b.source, b.count);
    }
    println!(
        "greylisting: {} triplets deferred, {} passed after the delay",
        r.greylisted, r.greylist_passed
    );
    let hits: u64 = r.dnsbl_hits.iter().map(|h| h.hits).sum();
    println!("DNS list hits: {hits}");
    for h in &r.dnsbl_hits {
        println!("  {:<30} {:>10}", h.zone, h.hits);
    }
    if !r.top.is_empty() {
        println!("bans that dropped most:");
        for t in &r.top {
            let state = if t.active { "" } else { " (ended)" };
            println!("  {:<30} {:>10}{state}", t.prefix, t.dropped);
        }
    }
    if r.lifted.is_empty() {
        println!("bans lifted by hand: none");
    } else {
        println!("bans lifted by hand:");
        for l in &r.lifted {
            println!(
                "  {}  {:<24} by {}",
                rfc3339(l.at_unix_ms),
                l.prefix,
                l.actor
            );
        }
    }
}
