//! The log pump: follows each Postfix log (rotation and restarts included), parses its lines,
//! turns each SMTP connection into one verdict (`connections`), and pushes the verdicts to the
//! uplink; remembers how far each log was read, so a restart neither loses nor repeats lines.

use super::connections::ConnectionTracker;
use super::log_follower::LogFollower;
use super::postfix::{parse_line_in, Parsed};
use super::timezone::LogTimezone;
use crate::state_dir::StateDir;
use crate::uplink::Uplink;
use mxrep_common::lock::MutexExt as _;
use mxrep_common::telemetry::instruments::kv;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often followed logs are checked for new lines.
const LOG_POLL: Duration = Duration::from_millis(20);

/// Starts one task per log in `paths`.
pub fn start(paths: &[PathBuf], state: &StateDir, uplink: &Uplink, tz: &LogTimezone) {
    let saved = state.positions();
    let positions = Arc::new(Mutex::new(saved.clone()));
    for path in paths {
        let mut f = LogFollower::new(path, saved.get(path).copied());
        let uplink = uplink.clone();
        let positions = positions.clone();
        let state = state.clone();
        let tz = tz.clone();
        tokio::spawn(async move {
            let mut not_understood = 0u64;
            let mut shapes = std::collections::HashSet::new();
            let mut connections = ConnectionTracker::default();
            loop {
                let before = f.position();
                let now = chrono::Utc::now();
                for e in connections.expire(now.timestamp_millis()) {
                    uplink.push(e);
                }
                let mut lines = [0u64; 4];
                for line in f.poll() {
                    let read = parse_line_in(&line, now, &tz);
                    lines[match &read.parsed {
                        Parsed::Event(_) => 0,
                        Parsed::Ignored => 1,
                        Parsed::NotUnderstood => 2,
                        Parsed::UnknownShape(_) => 3,
                    }] += 1;
                    match &read.parsed {
                        Parsed::Event(_) => {
                            for e in connections.feed(read) {
                                uplink.push(e);
                            }
                        }
                        Parsed::Ignored => {}
                        Parsed::UnknownShape(shape) => {
                            // Once per shape (up to a thousand shapes): a new kind of line.
                            if shapes.len() < 1000 && shapes.insert(shape.clone()) {
                                tracing::warn!(
                                    "{}: a Postfix line about a client in a shape mxrep does not know (reported once): {shape}",
                                    f.path().display()
                                );
                            }
                        }
                        Parsed::NotUnderstood => {
                            not_understood += 1;
                            if not_understood.is_power_of_two() {
                                tracing::warn!(
                                    "{}: {not_understood} lines not understood so far, e.g. {:?}",
                                    f.path().display(),
                                    line.chars().take(100).collect::<String>()
                                );
                            }
                        }
                    }
                }
                for (n, result) in
                    lines
                        .into_iter()
                        .zip(["event", "ignored", "not_understood", "unknown_shape"])
                {
                    if n > 0 {
                        crate::metrics::agent()
                            .log_lines
                            .add(n, &[kv("result", result)]);
                    }
                }
                if f.position() != before {
                    let mut p = positions.locked();
                    p.insert(f.path().to_path_buf(), f.position());
                    if let Err(e) = state.save_positions(&p) {
                        tracing::warn!("cannot save log positions: {e}");
                    }
                }
                tokio::time::sleep(LOG_POLL).await;
            }
        });
    }
}
