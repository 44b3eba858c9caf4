//! The tail scout: when a followed log is far behind (a burst of mail, a catch-up after a
//! restart), the decisive line just written sits behind everything not yet read, and the in-order
//! reader reaches it only after parsing all of that. Beside the in-order reader, a task of its own
//! looks at the newest bytes every few milliseconds, finds the connections there that may decide
//! a ban, and sends their verdicts ahead; the in-order reader, reaching those connections, drops
//! its own verdict for them ([`AheadLedger`] keeps the two apart). Every connection is still
//! counted exactly once.
//!
//! The scout is cheap: it reads only the headers, and parses only the lines of suspect
//! connections. A `disconnect from` line whose command counts all succeeded and include a
//! message (`… data=1 quit=1 commands=5`) is delivered mail; any other (`rcpt=0/3`, `auth=0/1`, no
//! DATA at all) makes its connection a suspect: the lines of its process from that process's last
//! `connect from` up to it. Every one of them is parsed, so the scout's verdict is the one the
//! in-order reader would reach, and it is sent ahead only if decisive. Connections that straddle
//! the bytes looked at, postscreen's lines and Exim's lines are left to the in-order reader.

pub use super::ahead_ledger::AheadLedger;
use super::connections::{ConnectionTracker, Key};
use super::postfix::bsd_header::bsd_fields;
use super::postfix::{parse_line_in, Parsed};
use super::timezone::LogTimezone;
use crate::uplink::priority::is_decisive;
use crate::uplink::Uplink;
use chrono::{DateTime, Utc};
use memchr::memmem;
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The scout looks only when the unread part of a log is at least this long: below it the
/// in-order reader reaches the end within a chunk or two anyway.
pub const SCOUT_AFTER: u64 = 512 * 1024;
/// Most bytes looked at in one pass, the newest: about 70,000 lines, some 30 ms of header
/// reading.
pub const SCOUT_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes before where the last pass ended looked at again, so that a connection whose lines
/// began just before it is judged whole.
pub const OVERLAP: u64 = 64 * 1024;
/// How often the scout looks.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// A decisive verdict found ahead, and where its connection's `connect from` line starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Ahead {
    /// The byte offset of the connection's `connect from` line in its file.
    pub connect_at: u64,
    /// The connection's verdict.
    pub event: pb::Event,
}

/// The scout of the log at `path`: until `stopping`, looks at its newest bytes whenever its
/// in-order reader (whose place `ledger` holds) is far behind, and pushes what it sends ahead.
pub async fn run(
    path: &Path,
    ledger: Arc<AheadLedger>,
    uplink: Uplink,
    tz: LogTimezone,
    stopping: Arc<AtomicBool>,
) {
    let mut file: Option<(u64, File)> = None;
    while !stopping.load(Ordering::SeqCst) && !ledger.is_closed() {
        tokio::time::sleep(LOOK_EVERY).await;
        let Some(inode) = ledger.inode() else {
            continue;
        };
        // The file the in-order reader reads: the path's, unless it was rotated away.
        if file.as_ref().is_none_or(|(i, _)| *i != inode) {
            file = File::open(path)
                .ok()
                .filter(|f| f.metadata().is_ok_and(|m| m.ino() == inode))
                .map(|f| (inode, f));
        }
        let Some((_, f)) = file.as_ref() else {
            continue;
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            continue;
        };
        let Some((epoch, start)) = ledger.next_start(inode, len) else {
            continue;
        };
        let mut bytes = vec![0u8; (len - start) as usize];
        if f.read_exact_at(&mut bytes, start).is_err() {
            continue;
        }
        let ahead = ledger.pass(epoch, start, &bytes, chrono::Utc::now(), &tz);
        if !ahead.is_empty() {
            tracing::debug!(
                "{}: {} decisive verdicts sent ahead of the unread part",
                path.display(),
                ahead.len()
            );
            crate::metrics::agent()
                .verdicts_sent_ahead
                .add(ahead.len() as u64, &[]);
        }
        for e in ahead {
            uplink.push(e);
        }
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

/// Does this `disconnect from` message's command list show anything but delivered mail?
fn suspect_disconnect(msg: &[u8]) -> bool {
    // The counts follow the client's `NAME[ADDR]`.
    let counts = match memchr::memchr(b']', msg) {
        Some(i) => &msg[i + 1..],
        None => return true,
    };
    memchr::memchr(b'/', counts).is_some()
        || (memmem::find(counts, b" data=").is_none() && memmem::find(counts, b" bdat=").is_none())
}

/// The process that wrote a line, as far as a quick look at its header tells.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer<'a> {
    /// A plain header naming the program and its process id.
    Process(&'a str, u32),
    /// A plain header without a process id: no connection's line.
    Nobody,
    /// A header the quick look is not sure of: parsed whole where it matters.
    Unknown,
}

/// Longest span, in lines, from a connection's first line to its last that the scout follows.
const MAX_SPAN: usize = 20_000;

/// The decisive verdicts of the connections wholly inside `region` (whole lines, the first at
/// file offset `base`). A quick pass reads only the headers and finds each suspect connection's
/// span (its process's last `connect from` before the suspect `disconnect from`); only the lines
/// of those spans are parsed, through a tracker of their own.
pub fn judge(region: &[u8], base: u64, now: DateTime<Utc>, tz: &LogTimezone) -> Vec<Ahead> {
    let mut seen: Vec<(u64, &[u8], Writer)> = Vec::new();
    let mut last_connect: HashMap<(&str, u32), usize> = HashMap::new();
    let mut spans: Vec<(Writer, usize, usize)> = Vec::new();
    for (offset, raw) in lines(region, base) {
        let i = seen.len();
        let fields = std::str::from_utf8(raw).ok().and_then(bsd_fields);
        let writer = match fields.map(|f| (f, f.pid.map(str::parse::<u32>))) {
            None | Some((_, Some(Err(_)))) => Writer::Unknown,
            Some((_, None)) => Writer::Nobody,
            Some((f, Some(Ok(pid)))) => {
                let msg = f.msg.as_bytes();
                if msg.starts_with(b"connect from ") {
                    last_connect.insert((f.program, pid), i);
                } else if msg.starts_with(b"disconnect from ") && suspect_disconnect(msg) {
                    if let Some(c) = last_connect.get(&(f.program, pid)) {
                        spans.push((Writer::Process(f.program, pid), *c, i));
                    }
                }
                Writer::Process(f.program, pid)
            }
        };
        seen.push((offset, raw, writer));
    }
    let mut out = vec![];
    for (writer, c, d) in spans {
        if d - c > MAX_SPAN {
            continue;
        }
        let mut tracker = ConnectionTracker::default();
        let mut verdict = None;
        let mut keys: Vec<Key> = vec![];
        for (_, raw, w) in &seen[c..=d] {
            if *w != writer && *w != Writer::Unknown {
                continue;
            }
            let line = parse_line_in(&String::from_utf8_lossy(raw), now, tz);
            if let (Parsed::Event(e), Some((program, pid))) = (&line.parsed, &line.process) {
                if let (Some(Kind::Connect(_) | Kind::Disconnect(_)), Ok(addr)) =
                    (&e.kind, e.client_address.parse::<IpAddr>())
                {
                    keys.push((program.clone(), *pid, addr));
                }
            }
            verdict = tracker.feed(line).into_iter().last();
        }
        // The span's first line opened the connection its last line closed.
        let whole = keys.len() == 2 && keys[0] == keys[1] && !keys[0].0.ends_with("postscreen");
        if let (true, Some(event)) = (whole, verdict) {
            if is_decisive(&event) {
                out.push(Ahead {
                    connect_at: seen[c].0,
                    event,
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "tail_scout_tests.rs"]
mod tests;
