//! What a log's in-order reader and its tail scout share: how far the reader has read, and which
//! connections the scout sent ahead. The scout sends a connection only if its `connect from` line
//! lies beyond what the reader has read, and the reader claims a chunk's sent-ahead connections in
//! the same step in which it moves its place past them (both under one lock) — so no connection is
//! judged by both, and none by neither.

use super::log_follower::LineAt;
use super::tail_scout::{judge, OVERLAP, SCOUT_AFTER, SCOUT_BYTES};
use super::timezone::LogTimezone;
use chrono::{DateTime, Utc};
use mxrep_common::lock::MutexExt as _;
use mxrep_proto::v1 as pb;
use std::collections::HashSet;
use std::sync::Mutex;

/// The shared place and sent-ahead connections of one followed log.
#[derive(Debug, Default)]
pub struct AheadLedger(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// The reader's file: its inode, and the follower's epoch (see `LineAt::epoch`).
    file: Option<(u64, u64)>,
    /// Where the reader has read to in that file.
    read_to: u64,
    /// Where the scout's last look ended: (epoch, offset).
    scanned_to: (u64, u64),
    /// (epoch, offset) of the `connect from` lines whose connections were sent ahead and the
    /// reader has not reached.
    sent: HashSet<(u64, u64)>,
    /// Set when the reader stops: the scout sends nothing more.
    closed: bool,
    /// Verdicts sent ahead since the start.
    sent_total: u64,
}

impl AheadLedger {
    /// The reader read `lines` and is now at `read_to` of the file `inode` in `epoch`: for each
    /// line, was the connection it opens sent ahead? Places of earlier epochs are forgotten (the
    /// reader can no longer reach them).
    pub fn reader_read(&self, epoch: u64, inode: u64, read_to: u64, lines: &[LineAt]) -> Vec<bool> {
        let mut s = self.0.locked();
        s.file = Some((inode, epoch));
        s.read_to = read_to;
        if s.sent.is_empty() {
            return vec![false; lines.len()];
        }
        let oldest = lines.first().map_or(epoch, |l| l.epoch.min(epoch));
        s.sent.retain(|(e, _)| *e >= oldest);
        lines
            .iter()
            .map(|l| s.sent.remove(&(l.epoch, l.offset)))
            .collect()
    }

    /// The reader stops: the scout sends nothing more. Returns the places sent ahead in the
    /// current file that the reader has not reached, to be kept across a restart.
    pub fn close(&self) -> Vec<u64> {
        let mut s = self.0.locked();
        s.closed = true;
        let epoch = s.file.map_or(0, |(_, e)| e);
        let mut v: Vec<u64> = s
            .sent
            .iter()
            .filter(|(e, _)| *e == epoch)
            .map(|(_, o)| *o)
            .collect();
        v.sort_unstable();
        v
    }

    /// Takes up places sent ahead before a restart, in the reader's `epoch`.
    pub fn import(&self, epoch: u64, offsets: &[u64]) {
        self.0
            .locked()
            .sent
            .extend(offsets.iter().map(|o| (epoch, *o)));
    }

    pub fn is_closed(&self) -> bool {
        self.0.locked().closed
    }

    /// The inode of the file the reader reads, once it reads one.
    pub fn inode(&self) -> Option<u64> {
        self.0.locked().file.map(|(i, _)| i)
    }

    /// Verdicts sent ahead since the start.
    pub fn sent_total(&self) -> u64 {
        self.0.locked().sent_total
    }

    /// Places sent ahead that the reader has not reached.
    pub fn pending(&self) -> usize {
        self.0.locked().sent.len()
    }

    /// Where the scout should start looking in the file `inode`, now `len` long: None while the
    /// reader is close to the end, or nothing new was written since the last look.
    pub fn next_start(&self, inode: u64, len: u64) -> Option<(u64, u64)> {
        let s = self.0.locked();
        let (file_inode, epoch) = s.file?;
        if s.closed || file_inode != inode || len.saturating_sub(s.read_to) < SCOUT_AFTER {
            return None;
        }
        let mut start = s.read_to.max(len - SCOUT_BYTES.min(len));
        if s.scanned_to.0 == epoch {
            if s.scanned_to.1 >= len {
                return None;
            }
            start = start.max(s.scanned_to.1.saturating_sub(OVERLAP));
        }
        Some((epoch, start))
    }

    /// Looks at `bytes`, read from the file at `start` in `epoch`, and returns the verdicts to send
    /// ahead: those of decisive connections whose `connect from` line the reader has not reached,
    /// and that were not sent before. A first line cut by `start` is skipped.
    pub fn pass(
        &self,
        epoch: u64,
        start: u64,
        bytes: &[u8],
        now: DateTime<Utc>,
        tz: &LogTimezone,
    ) -> Vec<pb::Event> {
        let read_to = self.0.locked().read_to;
        let whole_from = if start == read_to {
            0
        } else {
            match memchr::memchr(b'\n', bytes) {
                Some(i) => i + 1,
                None => return vec![],
            }
        };
        let end = match memchr::memrchr(b'\n', bytes) {
            Some(i) if i + 1 > whole_from => i + 1,
            _ => return vec![],
        };
        // Judged without the lock: the reader goes on meanwhile.
        let found = judge(&bytes[whole_from..end], start + whole_from as u64, now, tz);
        let mut s = self.0.locked();
        if s.closed || s.file.map(|(_, e)| e) != Some(epoch) {
            return vec![];
        }
        s.scanned_to = (epoch, start + end as u64);
        let mut out = vec![];
        for a in found {
            if a.connect_at >= s.read_to && s.sent.insert((epoch, a.connect_at)) {
                s.sent_total += 1;
                out.push(a.event);
            }
        }
        out
    }
}
