//! What the agent remembers across restarts, in `--state-dir`: the position reached in each
//! followed log (inode and offset), the connections open in it at a stop, the journal cursor (and
//! the first start's moment, while no cursor exists), the connections the tail scout sent ahead
//! and the in-order reader had not reached, and the ban-list version it holds. Files
//! are replaced atomically (write, then rename), so a crash leaves the old or the new state,
//! never half.

use crate::sources::connections::{Conn, Key as OpenKey};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a followed file was read up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub inode: u64,
    pub offset: u64,
}

/// The `connect from` lines, in one file, whose connections' verdicts were sent ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentAhead {
    pub inode: u64,
    pub offsets: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create state dir {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn load<T: DeserializeOwned + Default>(&self, name: &str) -> T {
        let p = self.dir.join(name);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", p.display());
                T::default()
            }),
            Err(_) => T::default(),
        }
    }

    fn store<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(value)?)?;
        std::fs::rename(tmp, self.dir.join(name))
    }

    pub fn positions(&self) -> BTreeMap<PathBuf, Position> {
        self.load("positions.json")
    }

    pub fn save_positions(&self, p: &BTreeMap<PathBuf, Position>) -> std::io::Result<()> {
        self.store("positions.json", p)
    }

    /// The cursor of the last journal entry read (empty: none).
    pub fn journal_cursor(&self) -> String {
        self.load("journal-cursor.json")
    }

    pub fn save_journal_cursor(&self, cursor: &str) -> std::io::Result<()> {
        self.store("journal-cursor.json", &cursor)
    }

    /// Where the journal is read from while no cursor is saved (Unix seconds): the first start's
    /// moment, kept so that a run stopped before its first entry does not move it on.
    pub fn journal_since(&self) -> Option<i64> {
        self.load("journal-since.json")
    }

    pub fn save_journal_since(&self, unix_secs: i64) -> std::io::Result<()> {
        self.store("journal-since.json", &unix_secs)
    }

    /// Connections open in each followed log when the agent stopped, taken once: the next run
    /// judges them when their `disconnect` line comes.
    pub fn take_open_connections(&self) -> BTreeMap<PathBuf, Vec<(OpenKey, Conn)>> {
        let open = self.load("open-connections.json");
        let _ = std::fs::remove_file(self.dir.join("open-connections.json"));
        open
    }

    pub fn save_open_connections(
        &self,
        open: &BTreeMap<PathBuf, Vec<(OpenKey, Conn)>>,
    ) -> std::io::Result<()> {
        self.store("open-connections.json", open)
    }

    /// Connections the tail scout sent ahead in each followed log and the in-order reader had not
    /// reached when the agent stopped, taken once: the next run drops their verdicts.
    pub fn take_sent_ahead(&self) -> BTreeMap<PathBuf, SentAhead> {
        let sent = self.load("sent-ahead.json");
        let _ = std::fs::remove_file(self.dir.join("sent-ahead.json"));
        sent
    }

    pub fn save_sent_ahead(&self, sent: &BTreeMap<PathBuf, SentAhead>) -> std::io::Result<()> {
        self.store("sent-ahead.json", sent)
    }

    pub fn ban_version(&self) -> u64 {
        self.load("ban-version.json")
    }

    pub fn save_ban_version(&self, v: u64) -> std::io::Result<()> {
        self.store("ban-version.json", &v)
    }
}
