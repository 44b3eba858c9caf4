//! `mxrepctl unban PREFIX`: lift a ban everywhere.

use super::Output;
use crate::state::parse_prefix;
use clap::Args;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::UnbanRequest;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Args)]
pub struct UnbanArgs {
    /// The banned address or prefix, exactly as listed.
    #[arg(value_parser = |s: &str| parse_prefix(s).map(|p| p.to_string()))]
    pub prefix: String,
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    a: UnbanArgs,
) -> anyhow::Result<()> {
    let r = client
        .unban(UnbanRequest {
            prefix: a.prefix.clone(),
        })
        .await?
        .into_inner();
    if out.json {
        out.json(json!({"prefix": a.prefix, "removed": r.removed, "version": r.version}));
    } else if r.removed {
        println!("unbanned {} (version {})", a.prefix, r.version);
    } else {
        println!("{} was not banned", a.prefix);
    }
    Ok(())
}
