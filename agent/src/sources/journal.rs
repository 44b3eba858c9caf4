//! The systemd journal: where Debian 12 and most current distributions have Postfix log, with no
//! mail.log at all. The agent runs `journalctl --follow --output=json` on Postfix's identifiers
//! (or the matches given), from the saved cursor after a restart (neither losing nor repeating
//! entries) or from the agent's first start (kept until a cursor exists); journalctl follows the
//! journal across rotation. Each entry becomes a line for the Postfix parser, stamped with the
//! journal's own UTC time.

use super::connections::ConnectionTracker;
use super::postfix::{parse_line_in, Parsed};
use super::timezone::LogTimezone;
use crate::state_dir::StateDir;
use crate::uplink::Uplink;
use mxrep_common::shutdown::Shutdown;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;

/// The matches when none are given: Postfix's smtpd and postscreen.
pub const DEFAULT_MATCHES: [&str; 2] = [
    "SYSLOG_IDENTIFIER=postfix/smtpd",
    "SYSLOG_IDENTIFIER=postfix/postscreen",
];
/// How often the cursor is saved while entries flow.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// What to follow.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// A journal directory (`journalctl --directory`); None: the system journal.
    pub dir: Option<PathBuf>,
    /// `FIELD=VALUE` matches (ORed for one field, as journalctl does).
    pub matches: Vec<String>,
    /// Host name for entries without `_HOSTNAME`.
    pub host: String,
}

/// One journal entry as the Postfix parser reads it, and its cursor; None for an entry that is
/// not a log message.
pub fn entry_line(json: &str, default_host: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let field = |k: &str| -> Option<String> {
        match &v[k] {
            serde_json::Value::String(s) => Some(s.clone()),
            // journalctl writes a non-UTF-8 value as an array of bytes.
            serde_json::Value::Array(bytes) => Some(
                String::from_utf8_lossy(
                    &bytes
                        .iter()
                        .filter_map(|b| b.as_u64().map(|b| b as u8))
                        .collect::<Vec<_>>(),
                )
                .into_owned(),
            ),
            _ => None,
        }
    };
    let cursor = field("__CURSOR")?;
    let micros: i64 = field("__REALTIME_TIMESTAMP")?.parse().ok()?;
    let when = chrono::DateTime::from_timestamp_micros(micros)?
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let ident = field("SYSLOG_IDENTIFIER").or_else(|| field("_COMM"))?;
    let pid = field("SYSLOG_PID")
        .or_else(|| field("_PID"))
        .unwrap_or_default();
    let host = field("_HOSTNAME").unwrap_or_else(|| default_host.to_string());
    let message = field("MESSAGE")?;
    let tag = if pid.is_empty() {
        ident
    } else {
        format!("{ident}[{pid}]")
    };
    Some((format!("{when} {host} {tag}: {message}"), cursor))
}

/// Follows the journal until `stop` fires, restarting journalctl if it ends. A stop reads no
/// further and saves the cursor of the last entry whose verdict was queued, so that the agent's
/// drain covers everything behind the saved cursor.
pub async fn follow(
    cfg: JournalConfig,
    state: StateDir,
    uplink: Uplink,
    tz: LogTimezone,
    stop: Shutdown,
) {
    let mut connections = ConnectionTracker::default();
    // The first start's moment, kept until a cursor exists: a run stopped before its first entry
    // must not move it on, or what was logged while no agent ran would be skipped.
    let started = state.journal_since().unwrap_or_else(|| {
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = state.save_journal_since(now) {
            tracing::warn!("cannot save where the journal is read from: {e}");
        }
        now
    });
    while !stop.is_fired() {
        let run = session(&cfg, &state, &uplink, &tz, &mut connections, started, &stop);
        if let Err(e) = run.await {
            tracing::warn!("journal: {e:#}; starting journalctl again in 1 s");
            tokio::select! {
                _ = stop.clone().wait() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    tracing::info!("journal: stopped; reading on from the saved cursor next time");
}

/// Runs journalctl once, from the saved cursor or else from `started` (Unix seconds); Ok when
/// `stop` fired.
async fn session(
    cfg: &JournalConfig,
    state: &StateDir,
    uplink: &Uplink,
    tz: &LogTimezone,
    connections: &mut ConnectionTracker,
    started: i64,
    stop: &Shutdown,
) -> anyhow::Result<()> {
    let mut cursor = state.journal_cursor();
    let mut cmd = tokio::process::Command::new("journalctl");
    cmd.args(["--follow", "--output=json", "--no-pager", "--quiet"]);
    if let Some(d) = &cfg.dir {
        cmd.arg(format!("--directory={}", d.display()));
    }
    if cursor.is_empty() {
        // First start: from the moment the agent started (history is not replayed), a boundary
        // that does not depend on when journalctl reaches the journal's end.
        cmd.arg(format!("--since=@{started}"));
    } else {
        cmd.arg(format!("--after-cursor={cursor}"));
    }
    cmd.args(&cfg.matches)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run journalctl: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no journalctl output"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tracing::info!(
        "following the journal{} ({})",
        cfg.dir
            .as_ref()
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default(),
        if cursor.is_empty() {
            "from the agent's first start".to_string()
        } else {
            "from the saved cursor".to_string()
        }
    );
    let mut saved_at = Instant::now();
    let mut expire = tokio::time::interval(Duration::from_secs(1));
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.clone().wait() => {
                // Everything behind the cursor was queued for the uplink, which the agent drains.
                save(state, &cursor);
                return Ok(());
            }
            l = lines.next_line() => l?,
            _ = expire.tick() => {
                for e in connections.expire(chrono::Utc::now().timestamp_millis()) {
                    uplink.push(e);
                }
                continue;
            }
        };
        let Some(json) = next else {
            anyhow::bail!("journalctl ended ({})", child.wait().await?);
        };
        let Some((line, c)) = entry_line(&json, &cfg.host) else {
            continue;
        };
        let read = parse_line_in(&line, chrono::Utc::now(), tz);
        if matches!(read.parsed, Parsed::Event(_)) {
            for e in connections.feed(read) {
                uplink.push(e);
            }
        }
        cursor = c;
        if saved_at.elapsed() >= SAVE_EVERY {
            save(state, &cursor);
            saved_at = Instant::now();
        }
        // Nothing more waiting: save now, so a stop right after loses nothing.
        if lines.get_ref().buffer().is_empty() {
            save(state, &cursor);
        }
    }
}

fn save(state: &StateDir, cursor: &str) {
    if let Err(e) = state.save_journal_cursor(cursor) {
        tracing::warn!("cannot save the journal cursor: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_becomes_a_stamped_postfix_line() {
        let json = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795811035461466","_HOSTNAME":"mx-j","SYSLOG_IDENTIFIER":"postfix/smtpd","SYSLOG_PID":"77","MESSAGE":"connect from unknown[192.0.2.9]"}"#;
        let (line, cursor) = entry_line(json, "fallback").unwrap();
        assert_eq!(cursor, "s=1;i=2");
        assert_eq!(
            line,
            "2026-11-27T20:23:55.461466Z mx-j postfix/smtpd[77]: connect from unknown[192.0.2.9]"
        );
        // A message journald stored as bytes (not UTF-8), no host: the fallback.
        let bytes = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"postfix/smtpd","MESSAGE":[113,117,105,116,255]}"#;
        let (line, _) = entry_line(bytes, "fallback").unwrap();
        assert!(
            line.ends_with("fallback postfix/smtpd: quit\u{fffd}"),
            "{line}"
        );
        assert_eq!(entry_line("not json", "h"), None);
        assert_eq!(entry_line(r#"{"__CURSOR":"c"}"#, "h"), None);
    }
}
