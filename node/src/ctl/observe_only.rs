//! `mxrepctl observe-only clear`: resume enforcing automatic bans after the safety cap tripped.

use super::Output;
use clap::Subcommand;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::ClearObserveOnlyRequest;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum ObserveOnlyCommand {
    /// Leave observe-only mode: new automatic bans are enforced again.
    Clear,
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: ObserveOnlyCommand,
) -> anyhow::Result<()> {
    let ObserveOnlyCommand::Clear = cmd;
    let r = client
        .clear_observe_only(ClearObserveOnlyRequest {})
        .await?
        .into_inner();
    if out.json {
        out.json(json!({"observe_only": false, "log_index": r.log_index}));
    } else {
        println!("observe-only mode cleared: automatic bans are enforced again");
    }
    Ok(())
}
