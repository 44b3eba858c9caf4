//! `mxrepctl ip show IP`: what the cluster holds about one address.

use super::render::{ban_json, ban_line};
use super::Output;
use crate::state::parse_address;
use clap::Subcommand;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::ShowIpRequest;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum IpCommand {
    /// Bans covering an address, and why.
    Show {
        #[arg(value_parser = |s: &str| parse_address(s).map(|a| a.to_string()))]
        address: String,
    },
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: IpCommand,
) -> anyhow::Result<()> {
    let IpCommand::Show { address } = cmd;
    let r = client
        .show_ip(ShowIpRequest { address })
        .await?
        .into_inner();
    if out.json {
        out.json(json!({
            "address": r.address,
            "banned": !r.covering_bans.is_empty(),
            "covering_bans": r.covering_bans.iter().map(ban_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    if r.covering_bans.is_empty() {
        println!("{}: not banned", r.address);
    } else {
        println!("{}: banned by", r.address);
        for b in &r.covering_bans {
            println!("  {}", ban_line(b));
        }
    }
    Ok(())
}
