//! Elections only where they can be won — a pre-vote, kept by the application. openraft 0.9 has
//! no Pre-Vote: a node cut off the network times out, stands for election again and again and
//! climbs its term; when its link comes back, that higher term makes the healthy leader step
//! down, and the cluster elects again for a second or more with no ban committed meanwhile (the
//! fault soak measured 0.8–4.2 s after every link heal). So this node asks the other voters for
//! `Hello` every [`PROBE_EVERY`] and keeps its own elections switched off while it cannot reach a
//! majority of the voters (itself included): a partitioned node keeps its term and rejoins as a
//! follower. Nodes that reach each other elect exactly as before (lease and timeouts unchanged).

use super::bootstrap::hello;
use super::cluster::Cluster;
use super::network::PeerChannels;
use std::time::Duration;

/// How often the other voters are asked.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// How long an answer may take. A probe round thus ends within 350 ms of a cut — before the
/// earliest election (leader lease 500 ms + election timeout ≥ 250 ms with the defaults).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// May a voter that reached `reached` of the `voters` (itself included) stand for election?
pub fn may_stand(reached: usize, voters: usize) -> bool {
    voters <= 1 || 2 * reached > voters
}

/// Runs forever, switching this node's elections on and off as it can reach a majority or not.
pub async fn gate_elections(cluster: Cluster, channels: PeerChannels) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut allowed = true;
    loop {
        every.tick().await;
        let members = cluster.members();
        let voters: Vec<_> = members.iter().filter(|(_, (_, voter))| *voter).collect();
        let me_voter = voters.iter().any(|(id, _)| **id == cluster.id);
        let probes = voters
            .iter()
            .filter(|(id, _)| **id != cluster.id)
            .map(|(_, (node, _))| hello(&channels, cluster.id, &node.peer_addr, PROBE_TIMEOUT));
        let answered = futures::future::join_all(probes)
            .await
            .iter()
            .filter(|r| r.is_ok())
            .count();
        let reached = answered + usize::from(me_voter);
        let may = may_stand(reached, voters.len());
        if may != allowed {
            if may {
                tracing::info!("a majority of voters is reachable again: elections on");
            } else {
                tracing::warn!(
                    "only {reached} of {} voters reachable: this node stands for no election until it reaches a majority",
                    voters.len()
                );
            }
            allowed = may;
        }
        cluster.raft.runtime_config().elect(may);
    }
}

#[cfg(test)]
mod tests {
    use super::may_stand;

    #[test]
    fn a_node_stands_only_with_a_majority_in_reach() {
        assert!(may_stand(1, 1), "a single voter elects itself");
        assert!(may_stand(2, 3) && may_stand(3, 3));
        assert!(!may_stand(1, 3), "cut off from both others");
        assert!(!may_stand(2, 4), "half of four is no majority");
        assert!(may_stand(3, 5) && !may_stand(2, 5));
    }
}
