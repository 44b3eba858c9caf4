//! Wall-clock time for the edges of the system (event stamps, leader stamps, ages). The state
//! machine never reads it: it gets its "now" from the entries it applies.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch (0 if the clock is set before 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn after_2020() {
        assert!(super::unix_ms() > 1_577_836_800_000);
    }
}
