//! The Raft log on disk, in sled: entries, the vote, the committed and the last purged log id.
//!
//! Every write that openraft must be able to rely on after a crash (an appended entry, a vote) is
//! flushed to disk (`fsync`) before openraft is told it is done.

use super::append_budget::AppendBudgets;
use super::codec;
use super::recent_entries::RecentEntries;
use super::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// sled-backed Raft log. Cloning is cheap and shares the same trees.
#[derive(Clone)]
pub struct SledLogStore {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    /// The newest entries, decoded: what the node reads back to apply and replicate.
    recent: RecentEntries,
    /// How many bytes of entries the peers take in per AppendEntries: older entries read from
    /// disk for replication stop there.
    budgets: AppendBudgets,
}

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// Longest a flush (fsync) may take before the storage counts as failed.
pub const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Flushes `db` to disk, or fails: a flush that has not completed within [`FLUSH_LIMIT`] (a full
/// or failing disk can leave it pending) is an error, so the Raft core stops and the node exits
/// for its supervisor to restart, instead of hanging with its streams open.
pub async fn flush(db: &sled::Db) -> Result<(), std::io::Error> {
    match tokio::time::timeout(FLUSH_LIMIT, db.flush_async()).await {
        Ok(r) => r.map(|_| ()).map_err(std::io::Error::other),
        Err(_) => Err(std::io::Error::other(format!(
            "a flush of the data dir did not complete within {FLUSH_LIMIT:?} (disk full or failing?)"
        ))),
    }
}

impl SledLogStore {
    /// Opens the log in `db`; `budgets` are the network's per-peer replication budgets.
    pub fn open(db: &sled::Db, budgets: AppendBudgets) -> Result<Self, sled::Error> {
        Ok(Self {
            budgets,
            db: db.clone(),
            logs: db.open_tree("raft_logs")?,
            meta: db.open_tree("raft_meta")?,
            recent: RecentEntries::default(),
        })
    }

    /// True once this node has voted or holds any log: it belongs to a cluster already.
    pub fn has_state(&self) -> bool {
        !self.logs.is_empty()
            || self.meta.contains_key(VOTE).unwrap_or(false)
            || self.meta.contains_key(LAST_PURGED).unwrap_or(false)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(read_err)? {
            None => Ok(None),
            Some(v) => codec::decode(&v).map(Some).map_err(read_err),
        }
    }

    async fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let bytes = codec::encode(value).map_err(write_err)?;
        self.meta.insert(key, bytes).map_err(write_err)?;
        flush(&self.db).await.map_err(write_err)?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.logs.last().map_err(read_err)? {
            None => Ok(None),
            Some((_, v)) => {
                let e: Entry = codec::decode(&v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
        }
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl SledLogStore {
    /// The entries of `range`, from memory if it holds them all, else from disk — there
    /// stopping, after the first, once `max_bytes` of encoded entries have been read.
    fn read_entries(
        &self,
        range: impl RangeBounds<u64>,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        if let Some(entries) = self.recent.get(&range) {
            return Ok(entries);
        }
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.logs.range(key(start)..) {
            let (k, v) = item.map_err(read_err)?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(read_err)?);
            bytes += v.len();
            if !range.contains(&idx) || (!out.is_empty() && bytes > max_bytes) {
                break;
            }
            out.push(codec::decode(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for SledLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range, usize::MAX)
    }

    /// For replication: no more than the smallest peer budget is read from disk at once.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start..end, self.budgets.smallest())
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: losing it only means re-applying committed entries on restart.
        let bytes = codec::encode(&committed).map_err(write_err)?;
        self.meta.insert(COMMITTED, bytes).map_err(write_err)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let entries: Vec<Entry> = entries.into_iter().collect();
        for entry in &entries {
            let bytes = codec::encode(entry).map_err(write_err)?;
            batch.insert(&key(entry.log_id.index), bytes);
        }
        self.logs.apply_batch(batch).map_err(write_err)?;
        self.recent.appended(entries);
        let started = std::time::Instant::now();
        let flushed = flush(&self.db).await;
        crate::metrics::node()
            .fsync_duration
            .record(started.elapsed().as_secs_f64(), &[]);
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent.truncated(log_id.index);
        let mut batch = sled::Batch::default();
        for item in self.logs.range(key(log_id.index)..) {
            let (k, _) = item.map_err(write_err)?;
            batch.remove(k);
        }
        self.logs.apply_batch(batch).map_err(write_err)?;
        flush(&self.db).await.map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves entries that are ignored.
        self.put_meta(LAST_PURGED, &log_id).await?;
        self.recent.purged(log_id.index);
        let mut batch = sled::Batch::default();
        for item in self.logs.range(..=key(log_id.index)) {
            let (k, _) = item.map_err(write_err)?;
            batch.remove(k);
        }
        self.logs.apply_batch(batch).map_err(write_err)?;
        Ok(())
    }
}
