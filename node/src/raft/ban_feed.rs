//! The ban-change feed: every change of the ban set as this node applies it, for the agents'
//! `WatchBans` streams. A watcher subscribes from the version it holds and gets, atomically, either
//! the changes after that version (when the recent history still has them all) or a snapshot of
//! the whole ban set — then every change as it is applied, with nothing lost in between.

use super::state_store::SharedState;
use crate::state::{Ban, BanChange, Response};
use mxrep_common::lock::RwLockExt as _;
use std::collections::VecDeque;
use tokio::sync::broadcast;

/// Most recent ban-set changes kept for watchers that resume from a version.
const HISTORY_LEN: usize = 100_000;
/// Applied changes buffered per watcher before a slow one is told to resume.
const LIVE_BUFFER: usize = 4096;

/// The latest ban-set changes in log order, so a watcher holding version `v` can be sent just
/// what came after it. Complete for every version above `floor`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeHistory {
    pub floor: u64,
    pub changes: VecDeque<(u64, BanChange)>,
}

impl ChangeHistory {
    pub fn starting_at(floor: u64) -> Self {
        Self {
            floor,
            changes: Default::default(),
        }
    }

    pub fn push(&mut self, version: u64, change: BanChange) {
        if self.changes.len() >= HISTORY_LEN {
            if let Some((v, _)) = self.changes.pop_front() {
                self.floor = v;
            }
            // Drop the rest of that version too: a version is sent whole or not at all.
            while self.changes.front().is_some_and(|(v, _)| *v <= self.floor) {
                self.changes.pop_front();
            }
        }
        self.changes.push_back((version, change));
    }

    /// Changes after `version`, if this history still holds all of them.
    pub fn since(&self, version: u64) -> Option<Vec<(u64, BanChange)>> {
        (version >= self.floor).then(|| {
            self.changes
                .iter()
                .filter(|(v, _)| *v > version)
                .cloned()
                .collect()
        })
    }
}

/// Where a new watcher starts.
#[derive(Debug)]
pub enum Start {
    /// The whole ban set at `version`.
    Snapshot { version: u64, bans: Vec<Ban> },
    /// Only what changed after the version the watcher holds, in order.
    Resume(Vec<(u64, BanChange)>),
}

/// A watcher's start, the version it reaches, and the live changes after it.
pub struct Subscription {
    pub start: Start,
    /// The ban-set version once `start` is applied; live changes at or below it are old.
    pub version: u64,
    pub live: broadcast::Receiver<Published>,
}

/// One applied entry's ban changes, as published to live watchers.
#[derive(Debug, Clone)]
pub struct Published {
    /// The entry's log index (the ban-set version after it).
    pub index: u64,
    pub response: Response,
    /// The W3C trace context of the decision on this node (empty: not traced).
    pub traceparent: String,
}

/// The feed of one node: publishes applied changes, and hands out subscriptions.
#[derive(Clone)]
pub struct BanFeed {
    tx: broadcast::Sender<Published>,
}

impl Default for BanFeed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(LIVE_BUFFER).0,
        }
    }
}

impl BanFeed {
    /// Publishes the changes an entry at log `index` made (called by the state-machine store),
    /// with the trace context of the decision (empty: not traced).
    pub fn publish(&self, index: u64, response: &Response, traceparent: String) {
        if !response.changes.is_empty() {
            // No receiver is fine: nobody watches yet.
            let _ = self.tx.send(Published {
                index,
                response: response.clone(),
                traceparent,
            });
        }
    }

    /// Subscribes a watcher that holds `from_version` (0: none) to the ban set in `applied`.
    pub fn subscribe(&self, applied: &SharedState, from_version: u64) -> Subscription {
        // Subscribe before reading so no change falls between the read and the live feed.
        let live = self.tx.subscribe();
        let a = applied.read_locked();
        let version = a.state.version;
        let resumed = (from_version > 0 && from_version <= version)
            .then(|| a.history.since(from_version))
            .flatten();
        let start = match resumed {
            Some(changes) => Start::Resume(changes),
            None => Start::Snapshot {
                version,
                bans: a.state.bans.values().cloned().collect(),
            },
        };
        Subscription {
            start,
            version,
            live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_store::AppliedState;
    use crate::state::{BanAction, BanChangeKind, BanSource};
    use std::sync::{Arc, RwLock};

    fn change(p: &str) -> BanChange {
        BanChange {
            kind: BanChangeKind::Added,
            ban: Ban {
                prefix: p.parse().unwrap(),
                reason: "t".into(),
                source: BanSource::Manual,
                created_ms: 0,
                expires_ms: 1,
                version: 0,
                level: 0,
                evidence: vec![],
                action: BanAction::Drop,
                author: String::new(),
            },
        }
    }

    #[test]
    fn resume_snapshot_and_live() {
        let applied: SharedState = Arc::new(RwLock::new(AppliedState::default()));
        let feed = BanFeed::default();
        {
            let mut a = applied.write().unwrap();
            a.history = ChangeHistory::starting_at(0);
            for (v, p) in [(3, "192.0.2.1/32"), (5, "192.0.2.2/32")] {
                a.history.push(v, change(p));
                a.state.version = v;
            }
        }
        match feed.subscribe(&applied, 3).start {
            Start::Resume(c) => assert_eq!(c.iter().map(|(v, _)| *v).collect::<Vec<_>>(), vec![5]),
            other => panic!("{other:?}"),
        }
        // Nothing held, or a version from the future: a snapshot.
        assert!(matches!(
            feed.subscribe(&applied, 0).start,
            Start::Snapshot { version: 5, .. }
        ));
        assert!(matches!(
            feed.subscribe(&applied, 9).start,
            Start::Snapshot { .. }
        ));
        let mut sub = feed.subscribe(&applied, 5);
        feed.publish(
            6,
            &Response {
                version: 6,
                changes: vec![change("192.0.2.3/32")],
            },
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        feed.publish(
            7,
            &Response {
                version: 6,
                changes: vec![],
            },
            String::new(),
        );
        let p = sub.live.try_recv().unwrap();
        assert_eq!((p.index, p.response.changes.len()), (6, 1));
        assert!(
            p.traceparent.starts_with("00-0af7"),
            "the decision's trace goes along"
        );
        assert!(
            sub.live.try_recv().is_err(),
            "an entry that changed nothing is not sent"
        );
    }
}
