//! `mxrepctl ban PREFIX --for DURATION --reason TEXT`: a manual ban on every MX host.

use super::render::{ban_json, ban_line};
use super::Output;
use crate::state::parse_prefix_strict;
use clap::Args;
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::BanRequest;
use serde_json::json;
use std::time::Duration;
use tonic::transport::Channel;
use tracing::Instrument as _;

#[derive(Debug, Args)]
pub struct BanArgs {
    /// An IPv4 or IPv6 address, or a CIDR prefix (host bits clear), e.g. 203.0.113.7 or
    /// 203.0.113.0/24.
    #[arg(value_parser = |s: &str| parse_prefix_strict(s).map(|p| p.to_string()))]
    pub prefix: String,
    /// How long, e.g. 90s, 10m, 1h30m, 7d.
    #[arg(long = "for", value_parser = parse_duration)]
    pub duration: Duration,
    /// Why, for the record.
    #[arg(long, default_value = "manual ban")]
    pub reason: String,
    /// Ban even what the guards refuse: broader than the breadth limit, covering an allowlisted
    /// prefix, or covering a cluster node's own address.
    #[arg(long)]
    pub force: bool,
}

/// A duration as operators write it, with a refusal that shows how.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("'{s}' is not a duration: a number and a unit, e.g. 30s, 10m, 1h, 7d or 1h30m")
    })
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    a: BanArgs,
) -> anyhow::Result<()> {
    let secs = a.duration.as_secs();
    anyhow::ensure!(secs > 0, "--for must be at least one second");
    // Under OTEL_*, the ban's trace starts here and its context rides in the call's metadata.
    let span = tracing::info_span!("mxrepctl.ban", prefix = %a.prefix);
    let mut request = tonic::Request::new(BanRequest {
        prefix: a.prefix.clone(),
        duration_seconds: secs,
        reason: a.reason,
        force: a.force,
    });
    propagate::inject(&span, request.metadata_mut());
    let r = client.ban(request).instrument(span).await?.into_inner();
    if out.json {
        out.json(json!({"version": r.version, "ban": r.ban.as_ref().map(ban_json)}));
    } else if let Some(b) = &r.ban {
        println!("banned {}", ban_line(b));
    } else {
        println!("ban of {} recorded at version {}", a.prefix, r.version);
    }
    Ok(())
}
