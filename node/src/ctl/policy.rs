//! `mxrepctl policy show` and `mxrepctl policy set FILE`: the replicated policy document (TOML).

use super::Output;
use anyhow::Context;
use clap::Subcommand;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::{GetPolicyRequest, PolicyDocument};
use serde_json::json;
use std::path::PathBuf;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy document in force.
    Show,
    /// Replace the policy document with FILE (TOML; keys left out take their defaults).
    Set { file: PathBuf },
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: PolicyCommand,
) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Show => {
            let doc = client.get_policy(GetPolicyRequest {}).await?.into_inner();
            if out.json {
                let v: toml::Value =
                    toml::from_str(&doc.toml).context("the node sent a policy that is not TOML")?;
                out.json(serde_json::to_value(v)?);
            } else {
                print!("{}", doc.toml);
            }
        }
        PolicyCommand::Set { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read policy file {}", file.display()))?;
            let r = client
                .set_policy(PolicyDocument { toml: text })
                .await?
                .into_inner();
            if out.json {
                out.json(json!({"log_index": r.log_index}));
            } else {
                println!("policy replaced (log index {})", r.log_index);
            }
        }
    }
    Ok(())
}
