//! The newest Raft entries kept in memory beside the log on disk.
//!
//! An entry is read back right after it is appended: by the node itself to apply it once it is
//! committed, and by the leader once per follower to replicate it. Decoding it from sled each
//! time cost the nodes more than encoding it (the ingest profile of issue 16); a copy of the
//! newest entries answers those reads instead. The copy is always a contiguous run at the end of
//! the log — appends extend it, a truncation cuts both, a purge drops its front — so whatever it
//! answers is exactly what the disk holds. Older ranges (a follower far behind, a restart) are
//! read from disk as before.

use super::types::Entry;
use mxrep_common::lock::MutexExt as _;
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

/// Entries kept at most: enough for what is committed but not applied yet and for followers a
/// few entries behind, and small beside the state (an entry holds at most 10,000 deltas).
pub const KEEP: usize = 32;

/// The newest entries of the log, shared by every clone of the log store.
#[derive(Clone, Default)]
pub struct RecentEntries {
    /// A contiguous run of entries by index, ending at the log's last entry.
    entries: Arc<Mutex<VecDeque<Entry>>>,
}

impl RecentEntries {
    /// Records `appended`, which the log now holds after everything before them.
    pub fn appended(&self, appended: Vec<Entry>) {
        let mut kept = self.entries.locked();
        for e in appended {
            let follows = kept
                .back()
                .is_some_and(|last| last.log_id.index + 1 == e.log_id.index);
            if !follows {
                kept.clear();
            }
            kept.push_back(e);
            if kept.len() > KEEP {
                kept.pop_front();
            }
        }
    }

    /// The log lost every entry from `index` on.
    pub fn truncated(&self, index: u64) {
        self.entries.locked().retain(|e| e.log_id.index < index);
    }

    /// The log lost every entry up to and including `index`.
    pub fn purged(&self, index: u64) {
        self.entries.locked().retain(|e| e.log_id.index > index);
    }

    /// The entries of `range`, if all of them are kept (`None`: read them from disk).
    pub fn get(&self, range: &impl RangeBounds<u64>) -> Option<Vec<Entry>> {
        let kept = self.entries.locked();
        let first = kept.front()?.log_id.index;
        let last = kept.back()?.log_id.index;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_add(1)?,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_sub(1)?,
            Bound::Unbounded => last,
        };
        if start < first || start > end {
            return (start > end).then(Vec::new);
        }
        if end > last {
            // Past the log's end: the disk has no more than this copy either.
            return None;
        }
        let from = (start - first) as usize;
        let to = (end - first) as usize;
        Some(kept.range(from..=to).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{RecentEntries, KEEP};
    use crate::raft::types::Entry;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(v: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn answers_only_ranges_it_holds_whole_and_follows_the_log() {
        let r = RecentEntries::default();
        assert_eq!(indexes(r.get(&(1..3))), None);
        r.appended((1..=5).map(entry).collect());
        assert_eq!(indexes(r.get(&(2..4))), Some(vec![2, 3]));
        assert_eq!(indexes(r.get(&(3..))), Some(vec![3, 4, 5]));
        assert_eq!(indexes(r.get(&(4..=5))), Some(vec![4, 5]));
        assert_eq!(indexes(r.get(&(0..3))), None, "entry 0 is not kept");
        assert_eq!(indexes(r.get(&(4..9))), None, "past the end");
        assert_eq!(indexes(r.get(&(3..3))), Some(vec![]));
        // A truncation cuts the copy; the entries written after it are kept again.
        r.truncated(4);
        assert_eq!(indexes(r.get(&(2..))), Some(vec![2, 3]));
        r.appended(vec![entry(4)]);
        assert_eq!(indexes(r.get(&(3..=4))), Some(vec![3, 4]));
        // A purge drops the front.
        r.purged(2);
        assert_eq!(indexes(r.get(&(2..4))), None);
        assert_eq!(indexes(r.get(&(3..))), Some(vec![3, 4]));
        // An append that does not follow (after a snapshot was installed) starts over.
        r.appended(vec![entry(10)]);
        assert_eq!(indexes(r.get(&(3..))), None);
        assert_eq!(indexes(r.get(&(10..))), Some(vec![10]));
        // Only the newest are kept.
        r.appended((11..11 + KEEP as u64).map(entry).collect());
        assert_eq!(indexes(r.get(&(10..))), None);
        assert_eq!(
            r.get(&(11..)).map(|v| v.len()),
            Some(KEEP),
            "the newest {KEEP} entries"
        );
    }
}
