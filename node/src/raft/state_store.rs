//! openraft's state-machine side (`StateMachineStore`, as openraft calls it): applies committed entries to the pure `ReputationState`, builds,
//! installs and persists snapshots in sled, and shares the applied state with the API for reads.
//!
//! The state itself lives in memory. On restart it is rebuilt from the last snapshot on disk, and
//! openraft re-applies the committed log entries after it.

use super::apply_effects::ApplyEffects;
use super::ban_feed::{BanFeed, ChangeHistory};
use super::codec;
use super::greylist_feed::GreylistFeed;
use super::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::state::{ReputationState, Response};
use mxrep_common::lock::RwLockExt as _;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::{Arc, RwLock};

const CURRENT_SNAPSHOT: &[u8] = b"current";

/// The applied state: what the state machine holds, plus where in the log it stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub state: ReputationState,
    /// Recent changes, derived on this node (not part of snapshots).
    #[serde(skip)]
    pub history: ChangeHistory,
}

/// A snapshot as stored on disk.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// What is told about each applied observation's address; never blocks.
pub type ObservedTap = Box<dyn Fn(std::net::IpAddr) + Send + Sync>;

/// Shared, read-mostly handle on the applied state.
pub type SharedState = Arc<RwLock<AppliedState>>;

/// The state machine store handed to openraft.
#[derive(Clone)]
pub struct StateMachineStore {
    applied: SharedState,
    snapshots: sled::Tree,
    db: sled::Db,
    /// Ban-set changes, in log order, for watchers (the agent stream).
    feed: BanFeed,
    /// Triplet keys of applied sighting batches, for watchers (the agents' greylisting).
    greylist_feed: GreylistFeed,
    /// Called with each applied observation's address (set once, by the DNS lookups).
    observed_tap: Arc<std::sync::OnceLock<ObservedTap>>,
    snapshot_seq: Arc<std::sync::atomic::AtomicU64>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        verb,
        std::io::Error::other(e.to_string()),
    )
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        verb,
        std::io::Error::other(e.to_string()),
    )
}

impl StateMachineStore {
    /// Opens the store and restores the state from the last snapshot on disk, if any.
    pub fn open(db: &sled::Db) -> anyhow::Result<Self> {
        let snapshots = db.open_tree("snapshots")?;
        let mut applied = AppliedState::default();
        if let Some(bytes) = snapshots.get(CURRENT_SNAPSHOT)? {
            let stored: StoredSnapshot = codec::decode(&bytes)?;
            applied = codec::decode(&stored.data)?;
            applied.history = ChangeHistory::starting_at(applied.state.version);
        }
        Ok(Self {
            applied: Arc::new(RwLock::new(applied)),
            snapshots,
            db: db.clone(),
            feed: BanFeed::default(),
            greylist_feed: GreylistFeed::default(),
            observed_tap: Arc::default(),
            snapshot_seq: Default::default(),
        })
    }

    /// The applied state, for reads by the API.
    pub fn shared(&self) -> SharedState {
        self.applied.clone()
    }

    /// The feed of ban-set changes this store publishes as it applies entries.
    pub fn feed(&self) -> BanFeed {
        self.feed.clone()
    }

    /// Sets the tap told about each applied observation's address (a second call is ignored).
    pub fn set_observed_tap(&self, tap: ObservedTap) {
        let _ = self.observed_tap.set(tap);
    }

    /// The feed of triplet keys this store publishes as it applies sighting batches.
    pub fn greylist_feed(&self) -> GreylistFeed {
        self.greylist_feed.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, AppliedState> {
        self.applied.read_locked()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AppliedState> {
        self.applied.write_locked()
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self
            .snapshots
            .get(CURRENT_SNAPSHOT)
            .map_err(|e| snap_err(ErrorVerb::Read, e))?
        {
            None => Ok(None),
            Some(b) => codec::decode(&b)
                .map(Some)
                .map_err(|e| snap_err(ErrorVerb::Read, e)),
        }
    }

    async fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        let bytes = codec::encode(&stored).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.snapshots
            .insert(CURRENT_SNAPSHOT, bytes)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        super::log_store::flush(&self.db)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = std::time::Instant::now();
        let (data, meta) = {
            let applied = self.read();
            let data = codec::encode(&*applied).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let seq = self
                .snapshot_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let snapshot_id = match applied.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, seq),
                None => format!("--{seq}"),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            (data, meta)
        };
        self.save_snapshot(&meta, &data).await?;
        crate::metrics::node()
            .snapshot_duration
            .record(started.elapsed().as_secs_f64(), &[]);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut applied = self.write();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let entry_index = entry.log_id.index;
            let response = match entry.payload {
                EntryPayload::Blank => Response {
                    version: applied.state.version,
                    changes: vec![],
                },
                EntryPayload::Normal(ref req) => applied.state.apply(entry.log_id.index, req),
                EntryPayload::Membership(ref m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Response {
                        version: applied.state.version,
                        changes: vec![],
                    }
                }
            };
            for c in &response.changes {
                applied.history.push(entry.log_id.index, c.clone());
            }
            let command = match &entry.payload {
                EntryPayload::Normal(req) => Some(&req.command),
                _ => None,
            };
            ApplyEffects {
                feed: &self.feed,
                greylist_feed: &self.greylist_feed,
                observed_tap: self.observed_tap.get(),
            }
            .after(entry_index, command, &response, applied.state.audit.back());
            out.push(response);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut new_state: AppliedState =
            codec::decode(&data).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        new_state.history = ChangeHistory::starting_at(new_state.state.version);
        self.save_snapshot(meta, &data).await?;
        *self.write() = new_state;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
