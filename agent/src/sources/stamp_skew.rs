//! Log stamps that disagree with this host's clock, found while following live: a line read
//! within moments of being written whose stamp is far off was stamped in another zone (a syslog
//! writing local time read as this host's, or the reverse). Such an event counts at the moment
//! it was read — when it happened — and the systematic offset is reported once, with the fix.
//! Lines read in a catch-up (after a start or a gap) keep their stamps: there, old is old.

/// A live line this far off its arrival is mis-stamped, not late.
pub const SKEW_MS: i64 = 10 * 60 * 1000;
/// Mis-stamped lines seen before the offset is reported.
const REPORT_AFTER: usize = 20;

/// What one followed log's stamps have shown.
#[derive(Debug, Default)]
pub struct StampSkew {
    offsets: Vec<i64>,
    reported: bool,
}

/// The verdict on one live line's stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Within [`SKEW_MS`] of now: as it is.
    Fine,
    /// Off by more: count it now.
    Skewed,
}

impl StampSkew {
    /// Judges the stamp `t` of a line read live at `now` (unix ms).
    pub fn judge(&mut self, t: i64, now: i64) -> Stamp {
        let off = t - now;
        if off.abs() <= SKEW_MS {
            return Stamp::Fine;
        }
        if self.offsets.len() < 1000 {
            self.offsets.push(off);
        }
        Stamp::Skewed
    }

    /// Once enough lines were skewed: the systematic offset, rounded to a quarter hour, and the
    /// sentence that tells the operator what to do; then never again.
    pub fn report(&mut self) -> Option<String> {
        if self.reported || self.offsets.len() < REPORT_AFTER {
            return None;
        }
        self.reported = true;
        let mut o = self.offsets.clone();
        o.sort_unstable();
        let median = o[o.len() / 2];
        let quarter = 15 * 60 * 1000;
        let rounded = (median as f64 / quarter as f64).round() as i64 * quarter;
        let mins = rounded.abs() / 60_000;
        let (h, m) = (mins / 60, mins % 60);
        let direction = if rounded > 0 { "ahead of" } else { "behind" };
        // Stamps ahead of UTC-now were written in a zone east of the one used to read them.
        let sign = if rounded > 0 { '+' } else { '-' };
        Some(format!(
            "its time stamps are {h} h {m:02} min {direction} this host's clock: they were written in another time zone than the one mxrep reads them in. Events read live are counted at the moment they are read until this is fixed: give --log-timezone with the zone the log is written in (if the stamps are UTC{sign}{h:02}:{m:02} local time, --log-timezone {sign}{h:02}:{m:02}, or a zone name)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_hour_offset_is_counted_now_and_reported_once() {
        let mut s = StampSkew::default();
        let now = 1_800_000_000_000;
        assert_eq!(
            s.judge(now - 5_000, now),
            Stamp::Fine,
            "seconds late is fine"
        );
        assert_eq!(s.judge(now - 9 * 60_000, now), Stamp::Fine);
        for i in 0..REPORT_AFTER as i64 {
            assert_eq!(s.report(), None);
            assert_eq!(s.judge(now + 2 * 3_600_000 + i * 1000, now), Stamp::Skewed);
        }
        let r = s.report().expect("reported");
        assert!(r.contains("2 h 00 min ahead of"), "{r}");
        assert!(r.contains("--log-timezone +02:00"), "{r}");
        assert_eq!(s.report(), None, "once");
    }

    #[test]
    fn five_hours_behind() {
        let mut s = StampSkew::default();
        let now = 1_800_000_000_000;
        for _ in 0..REPORT_AFTER {
            s.judge(now - 5 * 3_600_000 - 3_000, now);
        }
        let r = s.report().unwrap();
        assert!(r.contains("5 h 00 min behind"), "{r}");
        assert!(r.contains("-05:00"), "{r}");
    }
}
