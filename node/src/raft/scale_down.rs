//! `--cluster-size N`: the leader follows a deployment that shrinks. A StatefulSet scaled from 5
//! to 3 stops pods 4 and 3 (nodes 5 and 4); they would stay voters forever and a later loss of
//! one more node would cost the quorum. So while this node leads it checks every member with an
//! id above N, and removes one that has not answered for [`GONE_AFTER`]. A member above N that
//! answers is kept (a leader started with an older, smaller N must not remove nodes that just
//! joined), and nodes 1..=N are never removed this way.

use super::bootstrap::hello;
use super::cluster::{Cluster, ClusterOp};
use super::network::PeerChannels;
use super::types::NodeId;
use openraft::ServerState;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a member above the cluster size must be silent before it is removed.
pub const GONE_AFTER: Duration = Duration::from_secs(10);

/// How often the leader looks.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The members above `size`, and since when each has been silent.
#[derive(Debug, Default)]
pub struct Departures {
    silent_since: BTreeMap<NodeId, Instant>,
}

impl Departures {
    /// Records one round of answers (`answered` for each member above the size) at `now`;
    /// returns those silent for at least `gone_after`.
    pub fn observe(
        &mut self,
        answered: &BTreeMap<NodeId, bool>,
        now: Instant,
        gone_after: Duration,
    ) -> Vec<NodeId> {
        self.silent_since.retain(|id, _| answered.contains_key(id));
        for (&id, &ok) in answered {
            if ok {
                self.silent_since.remove(&id);
            } else {
                self.silent_since.entry(id).or_insert(now);
            }
        }
        self.silent_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= gone_after)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Runs forever: while leading, removes members above `size` that have gone.
pub async fn remove_departed(cluster: Cluster, channels: PeerChannels, size: u64) {
    let mut departures = Departures::default();
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if cluster.raft.metrics().borrow().state != ServerState::Leader {
            departures = Departures::default();
            continue;
        }
        let mut answered = BTreeMap::new();
        for (id, (node, _)) in cluster.members() {
            if id > size {
                let ok = hello(
                    &channels,
                    cluster.id,
                    &node.peer_addr,
                    Duration::from_secs(1),
                )
                .await
                .is_ok();
                answered.insert(id, ok);
            }
        }
        for id in departures.observe(&answered, Instant::now(), GONE_AFTER) {
            match cluster.execute_local(ClusterOp::RemoveMember { id }).await {
                Ok(_) => tracing::warn!(
                    "removed node {id}: it is beyond the cluster size {size} and has not answered for {GONE_AFTER:?} (a scale-down)"
                ),
                Err(e) => tracing::warn!("cannot remove departed node {id}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_members_silent_long_enough_go() {
        let mut d = Departures::default();
        let t0 = Instant::now();
        let gone = Duration::from_secs(10);
        let round = |a: bool, b: bool| BTreeMap::from([(4, a), (5, b)]);
        assert!(d.observe(&round(false, true), t0, gone).is_empty());
        assert!(d
            .observe(&round(false, true), t0 + Duration::from_secs(9), gone)
            .is_empty());
        assert_eq!(
            d.observe(&round(false, true), t0 + Duration::from_secs(10), gone),
            vec![4]
        );
        // An answer resets the clock.
        d.observe(&round(true, false), t0 + Duration::from_secs(11), gone);
        assert!(d
            .observe(&round(false, false), t0 + Duration::from_secs(12), gone)
            .is_empty());
        assert_eq!(
            d.observe(&round(false, false), t0 + Duration::from_secs(22), gone),
            vec![4, 5]
        );
        // A member that left the membership is forgotten.
        assert!(d
            .observe(&BTreeMap::new(), t0 + Duration::from_secs(30), gone)
            .is_empty());
    }
}
