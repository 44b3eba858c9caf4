//! The tail scout: when a followed log is far behind (a burst of mail, a catch-up after a
//! restart), the decisive line just written sits behind everything not yet read, and the in-order
//! reader reaches it only after parsing all of that. Between two chunks of the in-order reader the
//! scout looks at the newest bytes, finds the connections there that may decide a ban, and sends
//! their verdicts ahead; the in-order reader, reaching those connections, drops its own verdict
//! for them. Every connection is still counted exactly once.
//!
//! The scout is cheap: it parses only the lines of suspect connections. A `disconnect from` line
//! whose command counts all succeeded and include a message (`… data=1 quit=1 commands=5`) is
//! delivered mail; any other (`rcpt=0/3`, `auth=0/1`, no DATA at all) makes its smtpd process a
//! suspect. Only lines of suspect processes are parsed, and a suspect connection is sent ahead
//! only when its `connect from` line and its `disconnect from` line are both in the bytes looked
//! at and its verdict is decisive. Every line of that process between them is parsed, so the
//! scout's verdict is the one the in-order reader would reach. Connections that straddle the
//! bytes looked at, postscreen's lines and Exim's lines are left to the in-order reader.

use super::connections::{ConnectionTracker, Key};
use super::postfix::bsd_header::bsd_fields;
use super::postfix::{parse_line_in, Parsed};
use super::timezone::LogTimezone;
use crate::uplink::priority::is_decisive;
use chrono::{DateTime, Utc};
use memchr::memmem;
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// The scout looks only when the unread part of a log is at least this long: below it the
/// in-order reader reaches the end within a chunk or two anyway.
pub const SCOUT_AFTER: u64 = 512 * 1024;
/// Most bytes looked at in one pass, the newest: about 70,000 lines, a few milliseconds of
/// byte searching.
pub const SCOUT_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes before where the last pass ended looked at again, so that a connection whose lines
/// began just before it is judged whole.
const OVERLAP: u64 = 64 * 1024;

/// A decisive verdict found ahead, and where its connection's `connect from` line starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Ahead {
    pub connect_at: u64,
    pub event: pb::Event,
}

/// Connections sent ahead in one followed log, by the place of their `connect from` line.
#[derive(Debug, Default)]
pub struct TailScout {
    /// (epoch of the follower, offset) of the connect lines whose verdicts were sent ahead and
    /// the in-order reader has not reached yet.
    sent: HashSet<(u64, u64)>,
    /// Where the last pass ended: (epoch, offset).
    scanned_to: (u64, u64),
    /// Verdicts sent ahead since the start, for tests and metrics.
    pub sent_total: u64,
}

impl TailScout {
    /// Was the connection opened by the line at (`epoch`, `offset`) sent ahead? Forgets it: the
    /// in-order reader is there now.
    pub fn take(&mut self, epoch: u64, offset: u64) -> bool {
        !self.sent.is_empty() && self.sent.remove(&(epoch, offset))
    }

    /// Forgets what the in-order reader can no longer reach: places in files of an epoch before
    /// `epoch` (rotated away or truncated).
    pub fn forget_before(&mut self, epoch: u64) {
        self.sent.retain(|(e, _)| *e >= epoch);
    }

    /// The places sent ahead in `epoch`, to be kept across a restart of the agent.
    pub fn export(&self, epoch: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .sent
            .iter()
            .filter(|(e, _)| *e == epoch)
            .map(|(_, o)| *o)
            .collect();
        v.sort_unstable();
        v
    }

    /// Takes up places sent ahead before a restart, in the follower's `epoch`.
    pub fn import(&mut self, epoch: u64, offsets: &[u64]) {
        self.sent.extend(offsets.iter().map(|o| (epoch, *o)));
    }

    /// Where the next pass starts reading, given the in-order reader at `read_to` and the file
    /// `len` long (both in `epoch`), or None when the scout need not look.
    pub fn next_start(&self, epoch: u64, read_to: u64, len: u64) -> Option<u64> {
        if len.saturating_sub(read_to) < SCOUT_AFTER {
            return None;
        }
        let mut start = read_to.max(len - SCOUT_BYTES.min(len));
        if self.scanned_to.0 == epoch {
            if self.scanned_to.1 >= len {
                return None;
            }
            start = start.max(self.scanned_to.1.saturating_sub(OVERLAP));
        }
        Some(start)
    }

    /// Looks at `bytes`, read from the file at `start` (in `epoch`) while the in-order reader is at
    /// `read_to`; returns the verdicts to send ahead and remembers their places. A first line
    /// cut by `start` is skipped.
    pub fn pass(
        &mut self,
        epoch: u64,
        read_to: u64,
        start: u64,
        bytes: &[u8],
        now: DateTime<Utc>,
        tz: &LogTimezone,
    ) -> Vec<pb::Event> {
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
        self.scanned_to = (epoch, start + end as u64);
        let base = start + whole_from as u64;
        let mut out = vec![];
        for a in judge(&bytes[whole_from..end], base, now, tz) {
            if a.connect_at >= read_to && self.sent.insert((epoch, a.connect_at)) {
                self.sent_total += 1;
                out.push(a.event);
            }
        }
        out
    }
}

/// The lines of `region` (whole lines, the first starting at file offset `base`) with their
/// offsets.
fn lines(region: &[u8], base: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= region.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &region[at..]).map_or(region.len(), |i| at + i);
        let line = (base + at as u64, &region[at..end]);
        at = end + 1;
        Some(line)
    })
}

/// Does this `disconnect from` line's command list show anything but delivered mail?
fn suspect_disconnect(line: &[u8]) -> bool {
    let Some(at) = memmem::find(line, b": disconnect from ") else {
        return false;
    };
    let rest = &line[at..];
    // The counts follow the client's `NAME[ADDR]`.
    let counts = match memchr::memchr(b']', rest) {
        Some(i) => &rest[i + 1..],
        None => return true,
    };
    memchr::memchr(b'/', counts).is_some()
        || (memmem::find(counts, b" data=").is_none() && memmem::find(counts, b" bdat=").is_none())
}

/// The smtpd process id in `line`'s header, or None when the header is not a plain one (the
/// line is then parsed whole).
fn header_pid(line: &str) -> Option<Option<u32>> {
    let f = bsd_fields(line)?;
    Some(f.pid.and_then(|p| p.parse().ok()))
}

/// The decisive verdicts of the connections wholly inside `region`.
pub fn judge(region: &[u8], base: u64, now: DateTime<Utc>, tz: &LogTimezone) -> Vec<Ahead> {
    // 1. Suspect processes, from their disconnect lines.
    let mut suspects: HashSet<u32> = HashSet::new();
    for (_, raw) in lines(region, base) {
        if suspect_disconnect(raw) {
            let text = String::from_utf8_lossy(raw);
            if let Some((_, pid)) = parse_line_in(&text, now, tz).process {
                suspects.insert(pid);
            }
        }
    }
    if suspects.is_empty() {
        return vec![];
    }
    // 2. Every line of a suspect process, through a tracker of its own.
    let mut tracker = ConnectionTracker::default();
    let mut opened: HashMap<Key, u64> = HashMap::new();
    let mut out = vec![];
    for (offset, raw) in lines(region, base) {
        let text = String::from_utf8_lossy(raw);
        if let Some(pid) = header_pid(&text) {
            if !pid.is_some_and(|p| suspects.contains(&p)) {
                continue;
            }
        }
        let line = parse_line_in(&text, now, tz);
        let Parsed::Event(e) = &line.parsed else {
            continue;
        };
        let Some((program, pid)) = line.process.clone() else {
            continue;
        };
        if program.ends_with("postscreen") || !suspects.contains(&pid) {
            continue;
        }
        let Ok(addr) = e.client_address.parse::<IpAddr>() else {
            continue;
        };
        let key = (program, pid, addr);
        let kind = e.kind.clone();
        let verdicts = tracker.feed(line);
        match kind {
            Some(Kind::Connect(_)) => {
                opened.insert(key, offset);
            }
            Some(Kind::Disconnect(_)) => {
                let connect_at = opened.remove(&key);
                if let (Some(connect_at), Some(event)) = (connect_at, verdicts.into_iter().last()) {
                    if is_decisive(&event) {
                        out.push(Ahead { connect_at, event });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[path = "tail_scout_tests.rs"]
mod tests;
