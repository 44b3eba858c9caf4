//! The log pump: follows each log file (rotation and restarts included), parses its lines,
//! turns each SMTP connection into one verdict (`connections`), and pushes the verdicts to the
//! uplink; remembers how far each log was read, so a restart neither loses nor repeats lines.
//! A file is either a syslog-style Postfix log or a container log in the CRI format.
//!
//! A log is read in chunks of a few megabytes; while a syslog-style log is far behind, its tail
//! scout (`tail_scout`, a task beside the reader) sends decisive verdicts ahead of the backlog.

use super::connections::{Conn, ConnectionTracker, Key as OpenKey};
use super::cri::CriJoiner;
use super::log_follower::LogFollower;
use super::postfix::{parse_line_in, Line, Parsed};
use super::stamp_skew::{Stamp, StampSkew};
use super::tail_scout::{self, AheadLedger};
use super::timezone::LogTimezone;
use crate::state_dir::{Position, SentAhead, StateDir};
use crate::uplink::Uplink;
use mxrep_common::lock::MutexExt as _;
use mxrep_common::telemetry::instruments::kv;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often followed logs are checked for new lines.
const LOG_POLL: Duration = Duration::from_millis(10);
/// Most bytes read in one go: a log far behind (a catch-up of a large file) is read chunk by
/// chunk, never whole into memory.
const CHUNK: u64 = 4 * 1024 * 1024;
/// A container log gone this long belongs to a pod that is gone: stop following it.
const GONE_AFTER: Duration = Duration::from_secs(300);

/// How a followed file's lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Postfix's `maillog_file` or syslog lines.
    Syslog,
    /// Kubernetes container logs (`TIME STREAM F|P LINE`), the Postfix line inside.
    Cri,
}

/// Starts followers; shared by the fixed files and the container-log discovery.
#[derive(Clone)]
pub struct Pump {
    state: StateDir,
    uplink: Uplink,
    tz: LogTimezone,
    /// The MX host, for container lines that carry no header of their own.
    host: String,
    positions: Arc<Mutex<BTreeMap<PathBuf, Position>>>,
    /// Paths followed now.
    followed: Arc<Mutex<HashSet<PathBuf>>>,
    /// Connections open in each log when the agent last stopped (taken up by its follower), and
    /// those open now that it stops.
    open_connections: Arc<Mutex<OpenConnections>>,
    /// Connections the tail scout sent ahead in each log when the agent last stopped (taken up by
    /// its follower), and those of now when it stops.
    sent_ahead: Arc<Mutex<BTreeMap<PathBuf, SentAhead>>>,
    /// Set when the agent stops: followers read no further.
    stopping: Arc<AtomicBool>,
    /// Followers still running.
    active: Arc<AtomicUsize>,
}

/// Connections open per followed log.
type OpenConnections = BTreeMap<PathBuf, Vec<(OpenKey, Conn)>>;

/// Counts a follower as running until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(active: &Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::SeqCst);
        Self(active.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pump {
    pub fn new(state: &StateDir, uplink: &Uplink, tz: &LogTimezone, host: &str) -> Self {
        Self {
            positions: Arc::new(Mutex::new(state.positions())),
            open_connections: Arc::new(Mutex::new(state.take_open_connections())),
            sent_ahead: Arc::new(Mutex::new(state.take_sent_ahead())),
            state: state.clone(),
            uplink: uplink.clone(),
            tz: tz.clone(),
            host: host.to_string(),
            followed: Arc::default(),
            stopping: Arc::default(),
            active: Arc::default(),
        }
    }

    /// Stops reading: every follower ends after the lines it is handling (their verdicts are
    /// pushed, their position saved). Waits for that up to `limit`; false if one did not end.
    pub async fn stop(&self, limit: Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + limit;
        while self.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Remembers in the state dir how far `f` was read.
    fn save_position(&self, f: &LogFollower) {
        let mut p = self.positions.locked();
        p.insert(f.path().to_path_buf(), f.position());
        if let Err(e) = self.state.save_positions(&p) {
            tracing::warn!("cannot save log positions: {e}");
        }
    }

    /// Is `path` followed now?
    pub fn follows(&self, path: &Path) -> bool {
        self.followed.locked().contains(path)
    }

    /// Follows `path` from where it was left, or else from its end — or its start with
    /// `from_start` (a file that appeared while the agent ran: every line of it is new).
    pub fn follow(&self, path: &Path, format: FileFormat, from_start: bool) {
        if !self.followed.locked().insert(path.to_path_buf()) {
            return;
        }
        let saved = self.positions.locked().get(path).copied();
        // A position no file has: the file is read whole.
        let saved = saved.or(from_start.then(Position::default));
        let f = LogFollower::new(path, saved);
        let running = Running::new(&self.active);
        let ledger = Arc::new(AheadLedger::default());
        if let Some(saved) = self.sent_ahead.locked().remove(path) {
            if saved.inode == f.position().inode {
                ledger.import(f.epoch(), &saved.offsets);
            }
        }
        if format == FileFormat::Syslog {
            let (path, ledger, uplink) = (path.to_path_buf(), ledger.clone(), self.uplink.clone());
            let (tz, stopping) = (self.tz.clone(), self.stopping.clone());
            tokio::spawn(async move { tail_scout::run(&path, ledger, uplink, tz, stopping).await });
        }
        tokio::spawn(self.clone().run(f, format, ledger, running));
    }

    async fn run(
        self,
        mut f: LogFollower,
        format: FileFormat,
        ledger: Arc<AheadLedger>,
        _running: Running,
    ) {
        let mut not_understood = 0u64;
        let mut shapes = HashSet::new();
        let mut connections = ConnectionTracker::default();
        if let Some(open) = self.open_connections.locked().remove(f.path()) {
            connections.import(open);
        }
        let mut cri = CriJoiner::default();
        let mut missing_since: Option<Instant> = None;
        let mut skew = StampSkew::default();
        // The first read after opening is a catch-up: its old stamps are old, not skewed.
        let mut live = false;
        // Where following starts is saved at once: a file followed from its end and an agent
        // stopped before its first line would otherwise start from the (newer) end again and
        // never read the lines written while it was down.
        self.save_position(&f);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                // Connections half read are kept for the next run, which reads the rest.
                let mut open = self.open_connections.locked();
                open.insert(f.path().to_path_buf(), connections.export());
                if let Err(e) = self.state.save_open_connections(&open) {
                    tracing::warn!("cannot save the open connections: {e}");
                }
                let mut sent = self.sent_ahead.locked();
                let offsets = ledger.close();
                if !offsets.is_empty() {
                    let inode = f.position().inode;
                    sent.insert(f.path().to_path_buf(), SentAhead { inode, offsets });
                }
                if let Err(e) = self.state.save_sent_ahead(&sent) {
                    tracing::warn!("cannot save the connections sent ahead: {e}");
                }
                return;
            }
            let before = f.position();
            let now = chrono::Utc::now();
            for e in connections.expire(now.timestamp_millis()) {
                self.uplink.push(e);
            }
            let mut lines = [0u64; 4];
            let now_ms = now.timestamp_millis();
            let read = f.poll_at(CHUNK);
            let pos = f.position();
            let sent_ahead = ledger.reader_read(f.epoch(), pos.inode, pos.offset, &read);
            for (at, sent_ahead) in read.into_iter().zip(sent_ahead) {
                let line = at.text;
                let mut read = match format {
                    FileFormat::Syslog => parse_line_in(&line, now, &self.tz),
                    FileFormat::Cri => match cri.push(&line) {
                        Ok(None) => continue,
                        Ok(Some(c)) => c.to_line(&self.host, now, &self.tz),
                        Err(_) => Line::not_understood(),
                    },
                };
                lines[match &read.parsed {
                    Parsed::Event(_) => 0,
                    Parsed::Ignored => 1,
                    Parsed::NotUnderstood => 2,
                    Parsed::UnknownShape(_) => 3,
                }] += 1;
                if let (true, Parsed::Event(e)) = (live, &mut read.parsed) {
                    if skew.judge(e.time_unix_ms, now_ms) == Stamp::Skewed {
                        e.time_unix_ms = now_ms;
                    }
                }
                match &read.parsed {
                    Parsed::Event(_) => {
                        for e in connections.feed_marked(read, sent_ahead) {
                            self.uplink.push(e);
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
            if let Some(why) = skew.report() {
                tracing::warn!("{}: {why}", f.path().display());
            }
            live = true;
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
                self.save_position(&f);
            }
            if format == FileFormat::Cri && f.path().exists() {
                missing_since = None;
            } else if format == FileFormat::Cri {
                let since = *missing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GONE_AFTER {
                    tracing::info!(
                        "{}: gone (its pod ended); no longer followed",
                        f.path().display()
                    );
                    self.followed.locked().remove(f.path());
                    self.positions.locked().remove(f.path());
                    ledger.close();
                    return;
                }
            }
            if f.capped() {
                // More is there now: the next chunk at once (after letting other tasks run).
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(LOG_POLL).await;
            }
        }
    }
}

/// Starts one follower per log in `paths`; returns the pump for more.
pub fn start(
    paths: &[PathBuf],
    state: &StateDir,
    uplink: &Uplink,
    tz: &LogTimezone,
    host: &str,
) -> Pump {
    let pump = Pump::new(state, uplink, tz, host);
    for path in paths {
        pump.follow(path, FileFormat::Syslog, false);
    }
    pump
}
