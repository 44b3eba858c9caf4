//! `mxrepctl bans list`: every active ban.

use super::render::{ban_json, ban_line};
use super::Output;
use clap::Subcommand;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::ListBansRequest;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum BansCommand {
    /// List active bans.
    List,
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: BansCommand,
) -> anyhow::Result<()> {
    let BansCommand::List = cmd;
    let r = client.list_bans(ListBansRequest {}).await?.into_inner();
    if out.json {
        out.json(json!({
            "version": r.version,
            "bans": r.bans.iter().map(ban_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    if r.bans.is_empty() {
        println!("no active bans (version {})", r.version);
    }
    for b in &r.bans {
        println!("{}", ban_line(b));
    }
    Ok(())
}
