//! `--join ADDR`: a node that is not one of the founding `--peers` asks a member's API to add it
//! (learner until it has caught up, then voter) every time it starts, until one request
//! succeeds. Adding a member that already votes with the same addresses changes nothing, so a
//! restarted pod asks again harmlessly, and a pod that was removed while it was away (a
//! scale-down, then a scale-up onto its old volume) is added back.

use super::types::{MxNode, NodeId};
use mxrep_common::backoff::Backoff;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::AddMemberRequest;
use std::time::Duration;

/// How long one request may take: the leader answers once this node has caught up, which may
/// mean sending it a snapshot.
const ASK_TIMEOUT: Duration = Duration::from_secs(120);

/// Asks the member at `via` to add node `id` reachable at `own`, retrying until it succeeds.
pub async fn join_until_member(id: NodeId, own: MxNode, via: String) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match ask(id, &own, &via).await {
            Ok(voters) => {
                tracing::info!(
                    "joined the cluster through {via} as node {id} (peer {}, API {}); voters now {voters:?}",
                    own.peer_addr,
                    own.api_addr
                );
                return;
            }
            Err(e) => tracing::warn!("cannot join the cluster through {via} yet: {e}"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One request; the voters after it on success.
async fn ask(id: NodeId, own: &MxNode, via: &str) -> Result<Vec<u64>, String> {
    let channel = mxrep_common::endpoint::connect(via)
        .await
        .map_err(|e| format!("{e}"))?;
    let mut client = AdminClient::new(channel);
    let req = AddMemberRequest {
        id,
        peer_addr: own.peer_addr.clone(),
        api_addr: own.api_addr.clone(),
    };
    match tokio::time::timeout(ASK_TIMEOUT, client.add_member(req)).await {
        Err(_) => Err(format!("no answer within {ASK_TIMEOUT:?}")),
        Ok(Err(status)) => Err(status.message().to_string()),
        Ok(Ok(r)) => Ok(r
            .into_inner()
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.id)
            .collect()),
    }
}
