//! Exactly-once counting of agent batches. An agent resends every batch it has no
//! acknowledgement for after a failover, and the first copy may well have been committed (the
//! old node died between commit and ack): without this ledger those events count twice, and an
//! inflated count is a false ban. Each agent session's highest sequence number and a bitmap of
//! the 128 before it are kept; a batch seen before is skipped whole.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many sequence numbers below the highest are remembered one by one.
const SPAN: u64 = 128;
/// Sessions idle this long (cluster time) are forgotten.
pub const SESSION_IDLE_MS: i64 = 3_600_000;

/// What is known of one agent session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMark {
    /// Highest sequence number applied.
    pub high: u64,
    /// Bit i set: `high - i` was applied.
    pub seen: u128,
    /// Cluster time of the last batch.
    pub last_ms: i64,
}

/// Applied batches per (MX host, agent session).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLedger {
    sessions: BTreeMap<(String, u64), SessionMark>,
}

impl BatchLedger {
    /// Records batch `seq` of `session` from `host`; false if it was applied before (or is
    /// older than anything remembered, which is treated as seen: never count twice).
    pub fn first_time(&mut self, host: &str, session: u64, seq: u64, now_ms: i64) -> bool {
        if session == 0 {
            return true;
        }
        let m = self
            .sessions
            .entry((host.to_string(), session))
            .or_default();
        m.last_ms = m.last_ms.max(now_ms);
        if seq > m.high || m.seen == 0 {
            let shift = seq.saturating_sub(m.high);
            m.seen = if shift >= SPAN { 0 } else { m.seen << shift };
            m.seen |= 1;
            m.high = seq;
            return true;
        }
        let d = m.high - seq;
        if d >= SPAN {
            return false;
        }
        let was = m.seen & (1u128 << d) != 0;
        m.seen |= 1u128 << d;
        !was
    }

    /// Forgets sessions idle since before `now_ms - SESSION_IDLE_MS`.
    pub fn sweep(&mut self, now_ms: i64) {
        self.sessions
            .retain(|_, m| m.last_ms.saturating_add(SESSION_IDLE_MS) > now_ms);
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_batch_once_in_any_order() {
        let mut l = BatchLedger::default();
        assert!(l.first_time("mx1", 9, 1, 0));
        assert!(l.first_time("mx1", 9, 3, 0));
        assert!(!l.first_time("mx1", 9, 1, 0), "resent after failover");
        assert!(l.first_time("mx1", 9, 2, 0), "late but new");
        assert!(!l.first_time("mx1", 9, 2, 0));
        assert!(!l.first_time("mx1", 9, 3, 0));
        // Other hosts and sessions are separate.
        assert!(l.first_time("mx2", 9, 1, 0));
        assert!(l.first_time("mx1", 10, 1, 0));
        // Session 0 asks for no deduplication.
        assert!(l.first_time("mx1", 0, 1, 0) && l.first_time("mx1", 0, 1, 0));
        // Far ahead, then something older than the span: treated as seen.
        assert!(l.first_time("mx1", 9, 1000, 0));
        assert!(!l.first_time("mx1", 9, 500, 0));
        assert!(l.first_time("mx1", 9, 999, 0));
    }

    #[test]
    fn idle_sessions_are_forgotten() {
        let mut l = BatchLedger::default();
        l.first_time("mx1", 1, 1, 0);
        l.first_time("mx1", 2, 1, SESSION_IDLE_MS);
        l.sweep(SESSION_IDLE_MS + 1);
        assert_eq!(l.len(), 1);
    }
}
