//! Follows a log file as `tail -F` does: across rename-and-create rotation (the old file is read
//! to its end first), across copy-truncate (the offset falls back to 0), and across agent
//! restarts (the position is kept in the state dir, so a restart neither loses nor repeats
//! lines). A file seen for the first time is read from its end, like `tail -F`.

use crate::state_dir::Position;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Longest line kept; longer ones are cut (and counted as not understood downstream).
const MAX_LINE: usize = 64 * 1024;
/// Bytes remembered before the offset to recognise the file.
const FINGERPRINT: usize = 64;

/// One line read, and where in which file it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAt {
    /// The follower's epoch when the line was read: it changes when the follower moves to
    /// another file (rotation) or the file starts over (truncation), so (epoch, offset) names
    /// one line for as long as the follower runs.
    pub epoch: u64,
    /// The byte offset of the line's first byte in its file.
    pub offset: u64,
    pub text: String,
}

/// Follows one log file: the file open now, where it was read to, and how to tell it changed.
pub struct LogFollower {
    /// The path followed.
    path: PathBuf,
    /// The file being read (the old one, after a rotation, until its end is read).
    file: Option<File>,
    /// Its inode and how far it was read.
    pos: Position,
    /// The last bytes read before `pos.offset`, to notice an in-place truncation.
    tail: Vec<u8>,
    /// Counts moves to another file or back to the start of this one (see [`LineAt::epoch`]).
    epoch: u64,
    /// Did the last read stop at its limit (more is there to read at once)?
    capped: bool,
}

impl LogFollower {
    /// Starts following `path` from `saved` if it still names the same file, else from its end.
    pub fn new(path: &Path, saved: Option<Position>) -> Self {
        let mut f = Self {
            path: path.to_path_buf(),
            file: None,
            pos: Position::default(),
            tail: Vec::new(),
            epoch: 0,
            capped: false,
        };
        if let Ok(file) = File::open(path) {
            if let Ok(meta) = file.metadata() {
                let offset = match saved {
                    Some(p) if p.inode == meta.ino() && p.offset <= meta.len() => p.offset,
                    // Rotated while we were away: the new file is read whole.
                    Some(p) if p.inode != meta.ino() => 0,
                    _ => meta.len(),
                };
                f.pos = Position {
                    inode: meta.ino(),
                    offset,
                };
                f.file = Some(file);
            }
        }
        f
    }

    pub fn position(&self) -> Position {
        self.pos
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current epoch (see [`LineAt::epoch`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Did the last poll stop at its limit, with more to read at once?
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// How long the file being read is now (None: no file).
    pub fn file_len(&self) -> Option<u64> {
        self.file.as_ref()?.metadata().ok().map(|m| m.len())
    }

    /// The bytes of the file being read from `from` to `to` (fewer if it is shorter), without
    /// moving the read position.
    pub fn bytes(&self, from: u64, to: u64) -> Vec<u8> {
        let Some(file) = self.file.as_ref() else {
            return vec![];
        };
        let mut buf = vec![0u8; to.saturating_sub(from) as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], from + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        buf.truncate(got);
        buf
    }

    /// Reads every complete line appended since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        self.poll_at(u64::MAX).into_iter().map(|l| l.text).collect()
    }

    /// Reads the complete lines appended since the last call, about `limit` bytes of them at
    /// most (a rotated file's rest is read whole), each with its place.
    pub fn poll_at(&mut self, limit: u64) -> Vec<LineAt> {
        self.capped = false;
        let mut lines = Vec::new();
        let current = std::fs::metadata(&self.path).ok();
        match (&self.file, &current) {
            (None, Some(_)) => {
                // The file appeared (or reappeared): read it from the start.
                if let Ok(file) = File::open(&self.path) {
                    let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
                    self.file = Some(file);
                    self.pos = Position {
                        inode: ino,
                        offset: 0,
                    };
                    self.tail.clear();
                    self.epoch += 1;
                }
            }
            (Some(_), Some(meta)) if meta.ino() != self.pos.inode => {
                // Rotated by rename: finish the old file, then switch to the new one.
                self.read_available(&mut lines, u64::MAX);
                self.flush_partial(&mut lines);
                if let Ok(file) = File::open(&self.path) {
                    self.file = Some(file);
                    self.pos = Position {
                        inode: meta.ino(),
                        offset: 0,
                    };
                    self.tail.clear();
                    self.epoch += 1;
                }
            }
            _ => {}
        }
        let shrunk = current.as_ref().is_some_and(|m| m.len() < self.pos.offset);
        if self.file.is_some() && (shrunk || self.truncated_in_place()) {
            // Truncated in place (copytruncate): start over.
            self.pos.offset = 0;
            self.tail.clear();
            self.epoch += 1;
        }
        self.read_available(&mut lines, limit);
        lines
    }

    fn read_available(&mut self, lines: &mut Vec<LineAt>, limit: u64) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(self.pos.offset)).is_err()
            || file.take(limit).read_to_end(&mut buf).is_err()
        {
            return;
        }
        self.capped = buf.len() as u64 == limit;
        let (epoch, start) = (self.epoch, self.pos.offset);
        let at = |i: usize, text: &[u8]| LineAt {
            epoch,
            offset: start + i as u64,
            text: String::from_utf8_lossy(text).into_owned(),
        };
        // Complete lines only: an unfinished last line is read again, whole, next time.
        let consumed = match buf.iter().rposition(|b| *b == b'\n') {
            Some(last) => {
                let mut from = 0;
                for line in buf[..last].split(|b| *b == b'\n') {
                    lines.push(at(from, line));
                    from += line.len() + 1;
                }
                last + 1
            }
            None if buf.len() > MAX_LINE => {
                lines.push(at(0, &buf[..MAX_LINE]));
                buf.len()
            }
            None => 0,
        };
        if consumed > 0 {
            self.pos.offset += consumed as u64;
            let keep = consumed.min(FINGERPRINT);
            self.tail = buf[consumed - keep..consumed].to_vec();
        }
    }

    /// True when the bytes just before the offset are no longer those we read: the file was
    /// truncated (and possibly written past the old offset again) in place.
    fn truncated_in_place(&mut self) -> bool {
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        if self.tail.is_empty() {
            return false;
        }
        let start = self.pos.offset - self.tail.len() as u64;
        let mut now = vec![0u8; self.tail.len()];
        file.seek(SeekFrom::Start(start)).is_err()
            || file.read_exact(&mut now).is_err()
            || now != self.tail
    }

    fn flush_partial(&mut self, lines: &mut Vec<LineAt>) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(self.pos.offset)).is_ok()
            && file.read_to_end(&mut buf).is_ok()
            && !buf.is_empty()
        {
            lines.push(LineAt {
                epoch: self.epoch,
                offset: self.pos.offset,
                text: String::from_utf8_lossy(&buf).into_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    #[test]
    fn follows_appends_partial_lines_rotation_truncation_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        append(&log, "old line before the agent started\n");
        let mut f = LogFollower::new(&log, None);
        assert!(f.poll().is_empty(), "a new file is followed from its end");
        append(&log, "one\ntw");
        assert_eq!(f.poll(), vec!["one"]);
        append(&log, "o\n");
        assert_eq!(f.poll(), vec!["two"]);

        // Rename and create: the rest of the old file, then the new one.
        append(&log, "last of old\n");
        std::fs::rename(&log, dir.path().join("mail.log.1")).unwrap();
        append(&log, "first of new\n");
        assert_eq!(f.poll(), vec!["last of old", "first of new"]);

        // Copy-truncate.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        append(&log, "after truncate\n");
        assert_eq!(f.poll(), vec!["after truncate"]);

        // Restart: neither lose nor repeat.
        let saved = f.position();
        drop(f);
        append(&log, "while down\n");
        let mut f = LogFollower::new(&log, Some(saved));
        assert_eq!(f.poll(), vec!["while down"]);
        assert!(f.poll().is_empty());

        // Rotated while the agent was down: the new file is read whole.
        let saved = f.position();
        drop(f);
        std::fs::rename(&log, dir.path().join("mail.log.2")).unwrap();
        append(&log, "new file while down\n");
        let mut f = LogFollower::new(&log, Some(saved));
        assert_eq!(f.poll(), vec!["new file while down"]);

        // The file disappears and comes back.
        std::fs::remove_file(&log).unwrap();
        assert!(f.poll().is_empty());
        append(&log, "reborn\n");
        let mut got = f.poll();
        if got.is_empty() {
            got = f.poll();
        }
        assert_eq!(got, vec!["reborn"]);
    }
}
