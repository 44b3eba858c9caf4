//! `mxrepctl cluster add ID PEER_ADDR API_ADDR` and `cluster remove ID`: membership changes.
//!
//! Adding a node makes it a learner, waits until it has caught up (by snapshot if the log was
//! purged), then makes it a voter.

use super::render::{member_json, member_line};
use super::Output;
use clap::Subcommand;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::{AddMemberRequest, MembershipResponse, RemoveMemberRequest};
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Add node ID, reachable by peers at PEER_ADDR and by clients at API_ADDR.
    Add {
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        peer_addr: String,
        api_addr: String,
    },
    /// Remove node ID from the cluster.
    Remove {
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: ClusterCommand,
) -> anyhow::Result<()> {
    let (what, r) = match cmd {
        ClusterCommand::Add {
            id,
            peer_addr,
            api_addr,
        } => (
            format!("added node {id}"),
            client
                .add_member(AddMemberRequest {
                    id,
                    peer_addr,
                    api_addr,
                })
                .await?
                .into_inner(),
        ),
        ClusterCommand::Remove { id } => (
            format!("removed node {id}"),
            client
                .remove_member(RemoveMemberRequest { id })
                .await?
                .into_inner(),
        ),
    };
    print_members(out, &what, &r);
    Ok(())
}

fn print_members(out: &Output, what: &str, r: &MembershipResponse) {
    if out.json {
        out.json(json!({
            "log_index": r.log_index,
            "members": r.members.iter().map(member_json).collect::<Vec<_>>(),
        }));
        return;
    }
    println!("{what} (log index {}); members now:", r.log_index);
    for m in &r.members {
        println!("{}", member_line(m));
    }
}
