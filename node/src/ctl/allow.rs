//! `mxrepctl allow add|remove|list`: prefixes never banned automatically.

use super::Output;
use crate::state::parse_prefix;
use clap::Subcommand;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::{AllowRequest, ListAllowRequest};
use serde_json::json;
use tonic::transport::Channel;

fn prefix_arg(s: &str) -> Result<String, crate::state::PrefixError> {
    parse_prefix(s).map(|p| p.to_string())
}

#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Allowlist an address or prefix (lifts automatic bans inside it).
    Add {
        #[arg(value_parser = prefix_arg)]
        prefix: String,
    },
    /// Remove an operator allowlist entry.
    Remove {
        #[arg(value_parser = prefix_arg)]
        prefix: String,
    },
    /// List allowlist entries (operator's and the policy document's).
    List,
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: AllowCommand,
) -> anyhow::Result<()> {
    let (prefix, add) = match cmd {
        AllowCommand::List => {
            let r = client.list_allow(ListAllowRequest {}).await?.into_inner();
            if out.json {
                out.json(json!({"operator": r.operator_entries, "policy": r.policy_entries}));
            } else {
                for p in &r.operator_entries {
                    println!("{p:<24} (mxrepctl allow)");
                }
                for p in &r.policy_entries {
                    println!("{p:<24} (policy safety.allow)");
                }
                if r.operator_entries.is_empty() && r.policy_entries.is_empty() {
                    println!("the allowlist is empty");
                }
            }
            return Ok(());
        }
        AllowCommand::Add { prefix } => (prefix, true),
        AllowCommand::Remove { prefix } => (prefix, false),
    };
    let r = client
        .allow(AllowRequest {
            prefix: prefix.clone(),
            add,
        })
        .await?
        .into_inner();
    if out.json {
        out.json(json!({"prefix": prefix, "added": add, "bans_lifted": r.bans_lifted, "log_index": r.log_index}));
    } else if add {
        println!(
            "allowlisted {prefix} ({} automatic bans lifted)",
            r.bans_lifted
        );
    } else {
        println!("removed {prefix} from the allowlist");
    }
    Ok(())
}
