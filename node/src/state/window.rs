//! A sliding-window event counter in six equal buckets: integer arithmetic only, so every node
//! computes the same counts, and 16 bytes whatever the traffic (12 with byte-sized buckets, for
//! counts that only need to reach a small limit; buckets saturate, never wrap).
//!
//! Time is in whole seconds of cluster (or event) time. A bucket is `width` seconds wide, where
//! `width = window / 6`; the count "in the window" at time `now` is the sum of the buckets that
//! overlap `(now - window, now]`, so the window is exact to one bucket's width.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Number of buckets per window.
pub const BUCKETS: usize = 6;

/// A bucket's count: `u16` (up to 65,535 a bucket), `u8` (up to 255), or two `u8` lanes side
/// by side (two counters of the same window in the space of one).
pub trait Bucket: Copy + Default + Eq + std::fmt::Debug + Serialize + DeserializeOwned {
    /// `n` more in `lane`, saturating.
    fn plus(self, lane: usize, n: u32) -> Self;
    fn get(self, lane: usize) -> u32;
    fn is_zero(self) -> bool;
}

impl Bucket for u16 {
    fn plus(self, _: usize, n: u32) -> Self {
        self.saturating_add(n.min(u16::MAX as u32) as u16)
    }
    fn get(self, _: usize) -> u32 {
        self as u32
    }
    fn is_zero(self) -> bool {
        self == 0
    }
}

impl Bucket for u8 {
    fn plus(self, _: usize, n: u32) -> Self {
        self.saturating_add(n.min(u8::MAX as u32) as u8)
    }
    fn get(self, _: usize) -> u32 {
        self as u32
    }
    fn is_zero(self) -> bool {
        self == 0
    }
}

impl Bucket for [u8; 2] {
    fn plus(mut self, lane: usize, n: u32) -> Self {
        let l = lane.min(1);
        self[l] = self[l].plus(0, n);
        self
    }
    fn get(self, lane: usize) -> u32 {
        self[lane.min(1)] as u32
    }
    fn is_zero(self) -> bool {
        self == [0, 0]
    }
}

/// A window of counts; `B` is the bucket size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Window<B: Bucket = u16> {
    /// Index (time / width) of the newest bucket written.
    newest: u32,
    counts: [B; BUCKETS],
}

/// A window with byte-sized buckets.
pub type SmallWindow = Window<u8>;
/// Two byte-sized counters of one window, in 16 bytes.
pub type PairWindow = Window<[u8; 2]>;

/// Bucket width for a window of `window_secs`.
pub fn width(window_secs: u32) -> u32 {
    (window_secs / BUCKETS as u32).max(1)
}

impl<B: Bucket> Window<B> {
    /// Counts `n` events at time `t` (seconds). Events older than the window are ignored.
    pub fn add(&mut self, t: u32, window_secs: u32, n: u32) {
        self.add_to(0, t, window_secs, n)
    }

    /// Events in the window ending at `now`.
    pub fn sum(&self, now: u32, window_secs: u32) -> u32 {
        self.sum_of(0, now, window_secs)
    }

    /// [`Window::add`] for one lane of a two-lane window.
    pub fn add_to(&mut self, lane: usize, t: u32, window_secs: u32, n: u32) {
        let b = t / width(window_secs);
        if b > self.newest {
            let steps = (b - self.newest).min(BUCKETS as u32);
            for i in 1..=steps {
                self.counts[((self.newest + i) as usize) % BUCKETS] = B::default();
            }
            if self.is_blank() || b - self.newest >= BUCKETS as u32 {
                self.counts = [B::default(); BUCKETS];
            }
            self.newest = b;
        } else if self.newest - b >= BUCKETS as u32 {
            return;
        }
        let slot = &mut self.counts[(b as usize) % BUCKETS];
        *slot = slot.plus(lane, n);
    }

    /// [`Window::sum`] for one lane of a two-lane window.
    pub fn sum_of(&self, lane: usize, now: u32, window_secs: u32) -> u32 {
        let cur = now / width(window_secs);
        let lo = cur
            .saturating_sub(BUCKETS as u32 - 1)
            .max(self.newest.saturating_sub(BUCKETS as u32 - 1));
        let hi = cur.min(self.newest);
        if lo > hi {
            return 0;
        }
        (lo..=hi)
            .map(|b| self.counts[(b as usize) % BUCKETS].get(lane))
            .sum()
    }

    /// True when nothing counted is inside the window ending at `now`.
    pub fn is_idle(&self, now: u32, window_secs: u32) -> bool {
        self.is_blank() || self.newest + (BUCKETS as u32) <= now / width(window_secs)
    }

    fn is_blank(&self) -> bool {
        self.counts.iter().all(|c| c.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buckets_saturate_instead_of_wrapping() {
        let mut w = SmallWindow::default();
        w.add(1000, 60, 300);
        w.add(1001, 60, 300);
        assert_eq!(w.sum(1001, 60), 255);
        assert_eq!(std::mem::size_of::<SmallWindow>(), 12);
        assert_eq!(std::mem::size_of::<Window>(), 16);
        assert_eq!(std::mem::size_of::<PairWindow>(), 16);
    }

    #[test]
    fn two_lanes_count_apart() {
        let mut w = PairWindow::default();
        w.add_to(0, 1000, 60, 3);
        w.add_to(1, 1001, 60, 5);
        assert_eq!((w.sum_of(0, 1001, 60), w.sum_of(1, 1001, 60)), (3, 5));
        w.add_to(1, 2000, 60, 1);
        assert_eq!((w.sum_of(0, 2000, 60), w.sum_of(1, 2000, 60)), (0, 1));
    }

    #[test]
    fn counts_inside_the_window_only() {
        let mut w: Window = Window::default();
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
        let mut w: Window = Window::default();
        w.add(600, 600, 1);
        w.add(300, 600, 1);
        assert_eq!(w.sum(600, 600), 2);
    }
}
