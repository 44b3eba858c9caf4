//! A sliding-window event counter in six equal buckets: integer arithmetic only, so every node
//! computes the same counts, and 16 bytes whatever the traffic.
//!
//! Time is in whole seconds of cluster (or event) time. A bucket is `width` seconds wide, where
//! `width = window / 6`; the count "in the window" at time `now` is the sum of the buckets that
//! overlap `(now - window, now]`, so the window is exact to one bucket's width.

use serde::{Deserialize, Serialize};

/// Number of buckets per window.
pub const BUCKETS: usize = 6;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Index (time / width) of the newest bucket written.
    newest: u32,
    counts: [u16; BUCKETS],
}

/// Bucket width for a window of `window_secs`.
pub fn width(window_secs: u32) -> u32 {
    (window_secs / BUCKETS as u32).max(1)
}

impl Window {
    /// Counts `n` events at time `t` (seconds). Events older than the window are ignored.
    pub fn add(&mut self, t: u32, window_secs: u32, n: u32) {
        let b = t / width(window_secs);
        if b > self.newest {
            let steps = (b - self.newest).min(BUCKETS as u32);
            for i in 1..=steps {
                self.counts[((self.newest + i) as usize) % BUCKETS] = 0;
            }
            if self.is_blank() || b - self.newest >= BUCKETS as u32 {
                self.counts = [0; BUCKETS];
            }
            self.newest = b;
        } else if self.newest - b >= BUCKETS as u32 {
            return;
        }
        let slot = &mut self.counts[(b as usize) % BUCKETS];
        *slot = slot.saturating_add(n.min(u16::MAX as u32) as u16);
    }

    /// Events in the window ending at `now`.
    pub fn sum(&self, now: u32, window_secs: u32) -> u32 {
        let cur = now / width(window_secs);
        let lo = cur
            .saturating_sub(BUCKETS as u32 - 1)
            .max(self.newest.saturating_sub(BUCKETS as u32 - 1));
        let hi = cur.min(self.newest);
        if lo > hi {
            return 0;
        }
        (lo..=hi)
            .map(|b| self.counts[(b as usize) % BUCKETS] as u32)
            .sum()
    }

    /// True when nothing counted is inside the window ending at `now`.
    pub fn is_idle(&self, now: u32, window_secs: u32) -> bool {
        self.is_blank() || self.newest + (BUCKETS as u32) <= now / width(window_secs)
    }

    fn is_blank(&self) -> bool {
        self.counts.iter().all(|c| *c == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_inside_the_window_only() {
        let mut w = Window::default();
        for t in [1000, 1010, 1020, 1050] {
            w.add(t, 60, 1);
        }
        assert_eq!(w.sum(1050, 60), 4);
        // At 1075 the window (1015, 1075] at 10 s buckets keeps 1020 and 1050.
        assert_eq!(w.sum(1075, 60), 2);
        assert_eq!(w.sum(1200, 60), 0);
        assert!(w.is_idle(1200, 60));
        // Too old to count.
        w.add(900, 60, 5);
        assert_eq!(w.sum(1050, 60), 4);
        // A jump far ahead clears everything.
        w.add(5000, 60, 1);
        assert_eq!(w.sum(5000, 60), 1);
    }

    #[test]
    fn late_event_inside_window_counts() {
        let mut w = Window::default();
        w.add(600, 600, 1);
        w.add(300, 600, 1);
        assert_eq!(w.sum(600, 600), 2);
    }
}
