//! `mxrepctl audit [--since DURATION]`: the audit trail — every administrative write, who asked
//! (certificate subject; "dev" without TLS), when, what, and what it replaced. Oldest first.

use super::render::rfc3339;
use super::Output;
use clap::Args;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::admin_client::AdminClient;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only what happened in this last stretch of time, e.g. 1h or 7d (default: everything kept).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    a: AuditArgs,
) -> anyhow::Result<()> {
    let since_unix_ms = a.since.map_or(0, |d| {
        mxrep_common::clock::unix_ms().saturating_sub(d.as_millis() as i64)
    });
    let r = client
        .list_audit(pb::ListAuditRequest { since_unix_ms })
        .await?
        .into_inner();
    if out.json {
        let entries: Vec<_> = r
            .entries
            .iter()
            .map(|e| {
                json!({
                    "at_unix_ms": e.at_unix_ms, "log_index": e.log_index, "actor": e.actor,
                    "action": e.action, "replaced": (!e.replaced.is_empty()).then_some(&e.replaced),
                })
            })
            .collect();
        out.json(json!({ "entries": entries }));
        return Ok(());
    }
    if r.entries.is_empty() {
        println!("no administrative writes in the audit trail");
    }
    for e in &r.entries {
        println!("{}  {}  {}", rfc3339(e.at_unix_ms), e.actor, e.action);
        if !e.replaced.is_empty() {
            let first = e.replaced.lines().next().unwrap_or("");
            println!(
                "    replaced: {first}{}",
                if e.replaced.lines().count() > 1 {
                    " …"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
