//! The greylisting key feed: the triplet keys of every sighting batch as this node applies it,
//! for the agents' `WatchGreylist` streams. A watcher gets, atomically, every key the applied
//! state remembers, then the keys of each batch applied after that — so its set is complete from
//! then on, and an agent can answer a never-seen triplet (a deferral) without asking.

use super::state_store::SharedState;
use mxrep_common::lock::RwLockExt as _;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Applied sighting batches buffered per watcher before a slow one is told to start over.
const LIVE_BUFFER: usize = 4096;

/// One applied sighting batch: its log index and the keys it named.
pub type KeyBatch = (u64, Arc<Vec<u64>>);

/// A watcher's starting set and the batches applied after it.
pub struct KeySubscription {
    /// Every triplet key in the applied state when the watcher subscribed.
    pub keys: Vec<u64>,
    /// The log index of that state: live batches at or below it are already in `keys`.
    pub index: u64,
    pub live: broadcast::Receiver<KeyBatch>,
}

/// The feed of one node: publishes applied sighting keys, hands out subscriptions.
#[derive(Clone)]
pub struct GreylistFeed {
    tx: broadcast::Sender<KeyBatch>,
}

impl Default for GreylistFeed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(LIVE_BUFFER).0,
        }
    }
}

impl GreylistFeed {
    /// Publishes the keys of a sighting batch applied at log `index` (called by the store).
    pub fn publish(&self, index: u64, keys: Vec<u64>) {
        if !keys.is_empty() && self.tx.receiver_count() > 0 {
            let _ = self.tx.send((index, Arc::new(keys)));
        }
    }

    /// Subscribes a watcher to the keys of the state in `applied`.
    pub fn subscribe(&self, applied: &SharedState) -> KeySubscription {
        // Subscribe before reading so no batch falls between the read and the live feed.
        let live = self.tx.subscribe();
        let a = applied.read_locked();
        KeySubscription {
            keys: a.state.greylist.triplets.keys().copied().collect(),
            index: a.last_applied.map_or(0, |l| l.index),
            live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_store::AppliedState;
    use crate::state::greylist::Triplet;
    use std::sync::RwLock;

    #[test]
    fn snapshot_then_only_later_batches() {
        let applied: SharedState = Arc::new(RwLock::new(AppliedState::default()));
        applied
            .write()
            .unwrap()
            .state
            .greylist
            .triplets
            .insert(7, Triplet::default());
        let feed = GreylistFeed::default();
        feed.publish(1, vec![1]); // nobody watches: dropped
        let mut sub = feed.subscribe(&applied);
        assert_eq!((sub.keys.clone(), sub.index), (vec![7], 0));
        feed.publish(2, vec![]);
        feed.publish(3, vec![8, 9]);
        let (i, keys) = sub.live.try_recv().unwrap();
        assert_eq!((i, keys.as_slice()), (3, &[8u64, 9][..]));
        assert!(sub.live.try_recv().is_err(), "an empty batch is not sent");
    }
}
