//! How many bytes of log entries one AppendEntries to a peer may carry, learned from how long
//! the peer took to answer.
//!
//! openraft 0.9 gives every AppendEntries the heartbeat interval to be answered, and a follower
//! that is behind is sent as many entries as `max_payload_entries` allows — entries that hold up to
//! 10,000 addresses each. A follower on a busy machine that cannot take them in within the
//! heartbeat times out on every try and never catches up. So the network sends only a prefix
//! that fits this peer's budget and answers openraft with `PartialSuccess`: the budget halves on
//! a timeout, shrinks when an answer comes close to the limit, and grows again while answers are
//! quick. One entry is always sent, however large. The log store reads entries from disk for
//! replication within the smallest budget, so a follower far behind does not cost the leader
//! decoding entries it will not send.

use super::types::NodeId;
use mxrep_common::lock::MutexExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The budget a peer starts with, and never falls below or rises above.
const START: usize = 1 << 20;
const FLOOR: usize = 16 << 10;
const CEILING: usize = 16 << 20;

/// Every peer's budget, shared by the connections openraft makes to it.
#[derive(Clone, Default)]
pub struct AppendBudgets {
    bytes: Arc<Mutex<HashMap<NodeId, usize>>>,
}

impl AppendBudgets {
    /// The budget for `peer` now, in bytes.
    pub fn of(&self, peer: NodeId) -> usize {
        *self.bytes.locked().get(&peer).unwrap_or(&START)
    }

    /// The smallest budget of any peer: how much the leader reads from disk at once for a
    /// follower catching up (the log reader does not know which follower it serves).
    pub fn smallest(&self) -> usize {
        self.bytes.locked().values().copied().min().unwrap_or(START)
    }

    /// How many of the entries, whose encoded sizes are `sizes` in order, to send to `peer`: the
    /// longest prefix within its budget, and at least one.
    pub fn take(&self, peer: NodeId, sizes: impl IntoIterator<Item = usize>) -> usize {
        let budget = self.of(peer);
        let mut total = 0;
        let mut n = 0;
        for size in sizes {
            total = size.saturating_add(total);
            if n > 0 && total > budget {
                break;
            }
            n += 1;
        }
        n
    }

    /// `peer` answered an AppendEntries of `sent` bytes after `took`, with `limit` to answer.
    /// The budget doubles while full sends are answered within a third of the limit and shrinks
    /// by a quarter once an answer takes three quarters of it: answers stay between the two,
    /// sends as large as the peer takes in comfortably (an answer's time is not proportional to
    /// its size — each append is also flushed to disk — so it is not scaled down in proportion).
    pub fn answered(&self, peer: NodeId, sent: usize, took: Duration, limit: Duration) {
        let mut map = self.bytes.locked();
        let budget = map.entry(peer).or_insert(START);
        if took * 4 >= limit * 3 {
            *budget = *budget / 4 * 3;
        } else if took * 3 <= limit && sent * 2 >= *budget {
            *budget = budget.saturating_mul(2);
        }
        *budget = (*budget).clamp(FLOOR, CEILING);
    }

    /// An AppendEntries of `sent` bytes to `peer` got no answer in time.
    pub fn timed_out(&self, peer: NodeId, sent: usize) {
        let mut map = self.bytes.locked();
        let budget = map.entry(peer).or_insert(START);
        *budget = ((*budget).min(sent) / 2).clamp(FLOOR, CEILING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(100);

    #[test]
    fn a_prefix_within_the_budget_and_never_nothing() {
        let b = AppendBudgets::default();
        assert_eq!(b.take(1, [START / 2, START / 2, 1]), 2);
        assert_eq!(b.take(1, [START * 4, 10]), 1, "one entry always goes");
        assert_eq!(b.take(1, std::iter::empty()), 0);
        assert_eq!(b.take(1, [10; 8]), 8);
        assert_eq!(
            b.take(1, [10, usize::MAX, usize::MAX]),
            1,
            "sizes never overflow"
        );
    }

    #[test]
    fn timeouts_halve_it_down_to_the_floor() {
        let b = AppendBudgets::default();
        b.timed_out(2, 700_000);
        assert_eq!(b.of(2), 350_000);
        assert_eq!(b.of(3), START, "each peer has its own");
        assert_eq!(b.smallest(), 350_000);
        for _ in 0..20 {
            b.timed_out(2, b.of(2));
        }
        assert_eq!(b.of(2), FLOOR);
    }

    #[test]
    fn a_slow_answer_shrinks_it_a_middling_one_leaves_it() {
        let b = AppendBudgets::default();
        b.answered(1, START, Duration::from_millis(80), LIMIT);
        assert_eq!(b.of(1), START / 4 * 3);
        b.answered(1, START / 2, Duration::from_millis(50), LIMIT);
        assert_eq!(b.of(1), START / 4 * 3);
    }

    #[test]
    fn quick_full_answers_grow_it_back_to_the_ceiling() {
        let b = AppendBudgets::default();
        b.timed_out(1, FLOOR);
        assert_eq!(b.of(1), FLOOR);
        b.answered(1, 100, Duration::from_millis(1), LIMIT);
        assert_eq!(b.of(1), FLOOR, "a small send says nothing of a larger one");
        for _ in 0..20 {
            b.answered(1, b.of(1), Duration::from_millis(5), LIMIT);
        }
        assert_eq!(b.of(1), CEILING);
    }
}
