//! One verdict per SMTP connection, formed on the MX host from the connection's own lines
//! (`connect from` … `disconnect from` with its command counts, the rejects, `client=` lines,
//! SASL and protocol errors between them), as Haraka's karma and Postfix's own error counting
//! do: a client that delivered is forgiven a few unknown recipients; temporary refusals are
//! neutral; only a connection that failed is bad. The cluster counts these verdicts.
//!
//! smtpd serves one connection at a time per process, so a connection is keyed by the process
//! that logged it and the client address. postscreen's own rejects and verdicts (PREGREET,
//! HANGUP, DNSBL) are bad connections on their own.

use super::postfix::{Line, Parsed};
use mxrep_proto::v1 as pb;
use pb::event::Kind;
use std::collections::HashMap;
use std::net::IpAddr;

/// A connection with no `disconnect` line after this long gets its verdict from what was seen.
pub const IDLE_MS: i64 = 10 * 60 * 1000;
/// Most connections followed at once; the oldest is judged when more arrive.
const MAX_OPEN: usize = 100_000;

/// What one open connection showed so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conn {
    last_ms: i64,
    client_name: String,
    /// `QUEUEID: client=` lines.
    queued: u32,
    unknown_users: u32,
    hard_rejects: u32,
    deferred: u32,
    relay_denied: bool,
    auth_failures: u32,
    protocol_error: Option<String>,
    /// Its verdict was already sent by the tail scout: it ends without one here.
    #[serde(default)]
    sent_ahead: bool,
}

/// An open connection: the process that logs it (program, pid) and its client.
pub type Key = (String, u32, IpAddr);

/// postscreen connections already judged, remembered so a second verdict line of the same
/// connection (PREGREET, then HANGUP) does not count it twice.
const POSTSCREEN_JUDGED: usize = 10_000;

/// Follows the connections of one log and turns each into a verdict event when it ends.
#[derive(Debug, Default)]
pub struct ConnectionTracker {
    open: HashMap<Key, Conn>,
    /// postscreen connections (address, port) judged lately, oldest first, and as a set.
    judged: std::collections::VecDeque<(IpAddr, u16)>,
    judged_set: std::collections::HashSet<(IpAddr, u16)>,
}

impl ConnectionTracker {
    /// Feeds one line; returns the verdicts of connections that ended with it.
    pub fn feed(&mut self, line: Line) -> Vec<pb::Event> {
        self.feed_marked(line, false)
    }

    /// Feeds one line; `sent_ahead` says that the connection this line opens was judged by the
    /// tail scout already (`tail_scout`), whose verdict stands: none is returned for it here.
    pub fn feed_marked(&mut self, line: Line, sent_ahead: bool) -> Vec<pb::Event> {
        let Parsed::Event(e) = line.parsed else {
            return vec![];
        };
        let Ok(addr) = e.client_address.parse::<IpAddr>() else {
            return vec![];
        };
        let (program, pid) = line.process.unwrap_or_default();
        let t = e.time_unix_ms;
        let mut out = vec![];
        if program.ends_with("postscreen") {
            if let Some(port) = line.client_port {
                // One verdict per postscreen connection, from its first verdict line.
                if !self.judged_set.insert((addr, port)) {
                    return out;
                }
                if self.judged.len() >= POSTSCREEN_JUDGED {
                    if let Some(old) = self.judged.pop_front() {
                        self.judged_set.remove(&old);
                    }
                }
                self.judged.push_back((addr, port));
            }
            if let Some(Kind::ProtocolError(p)) = &e.kind {
                let c = Conn {
                    protocol_error: Some(p.detail.clone()),
                    ..Conn::default()
                };
                out.push(verdict(t, addr, &c, None));
            } else if let Some(Kind::Rejected(_)) = &e.kind {
                let c = Conn {
                    hard_rejects: 1,
                    ..Conn::default()
                };
                out.push(verdict(t, addr, &c, None));
            }
            return out;
        }
        let key = (program, pid, addr);
        if let Some(Kind::Connect(_)) = &e.kind {
            if let Some(old) = self.open.remove(&key) {
                out.extend(closed(old.last_ms, addr, &old, None));
            }
            if self.open.len() >= MAX_OPEN {
                out.extend(self.judge_oldest());
            }
            let name = line.client_name.unwrap_or_default();
            self.open.insert(
                key,
                Conn {
                    last_ms: t,
                    client_name: name,
                    sent_ahead,
                    ..Conn::default()
                },
            );
            return out;
        }
        let c = self.open.entry(key.clone()).or_default();
        c.last_ms = c.last_ms.max(t);
        match &e.kind {
            Some(Kind::Rejected(r)) => {
                use pb::RejectClass as C;
                match r.class() {
                    _ if r.code < 500 => c.deferred += 1,
                    C::Greylisted => c.deferred += 1,
                    C::UnknownUser => c.unknown_users += 1,
                    C::RelayDenied => c.relay_denied = true,
                    _ => c.hard_rejects += 1,
                }
            }
            Some(Kind::AuthFailure(_)) => c.auth_failures += 1,
            Some(Kind::Accepted(_)) => c.queued += 1,
            Some(Kind::ProtocolError(p)) => {
                c.protocol_error.get_or_insert_with(|| p.detail.clone());
            }
            Some(Kind::Disconnect(d)) => {
                let c = self.open.remove(&key).unwrap_or_default();
                out.extend(closed(t, addr, &c, Some(&d.commands)));
            }
            _ => {}
        }
        out
    }

    /// Judges connections idle since before `now_ms - IDLE_MS` (their disconnect was never
    /// logged, e.g. the log rotated away or smtpd was killed).
    pub fn expire(&mut self, now_ms: i64) -> Vec<pb::Event> {
        let stale: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, c)| c.last_ms + IDLE_MS < now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|k| {
                let c = self.open.remove(&k)?;
                closed(c.last_ms, k.2, &c, None)
            })
            .collect()
    }

    /// Connections being followed.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// The open connections, to be kept across a restart of the agent: their first lines are
    /// behind the saved log position, their last ones come after it.
    pub fn export(&self) -> Vec<(Key, Conn)> {
        self.open
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect()
    }

    /// Takes up connections exported before a restart.
    pub fn import(&mut self, open: Vec<(Key, Conn)>) {
        self.open.extend(open);
    }

    fn judge_oldest(&mut self) -> Vec<pb::Event> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, c)| c.last_ms)
            .map(|(k, _)| k.clone());
        oldest
            .and_then(|k| {
                self.open
                    .remove(&k)
                    .and_then(|c| closed(c.last_ms, k.2, &c, None))
            })
            .into_iter()
            .collect()
    }
}

/// The verdict of an open connection that ended, unless the tail scout sent it already.
fn closed(
    t: i64,
    addr: IpAddr,
    c: &Conn,
    commands: Option<&[pb::CommandCount]>,
) -> Option<pb::Event> {
    (!c.sent_ahead).then(|| verdict(t, addr, c, commands))
}

/// "1 message", "2 messages".
fn n(count: u32, word: &str) -> String {
    if count == 1 {
        format!("1 {word}")
    } else {
        format!("{count} {word}s")
    }
}

fn count(commands: &[pb::CommandCount], name: &str) -> (u32, u32) {
    commands
        .iter()
        .find(|c| c.command.eq_ignore_ascii_case(name))
        .map_or((0, 0), |c| (c.ok, c.total))
}

/// The verdict of a connection that ended: `commands` are the disconnect line's counts.
fn verdict(t: i64, addr: IpAddr, c: &Conn, commands: Option<&[pb::CommandCount]>) -> pb::Event {
    let cmds = commands.unwrap_or(&[]);
    let (mail_ok, _) = count(cmds, "mail");
    let (rcpt_ok, rcpt_total) = count(cmds, "rcpt");
    // Postfix counts commands at disconnect; Exim logs none, and its accepted messages count.
    let messages = match commands {
        Some(cs) if !cs.is_empty() => count(cmds, "data").0 + count(cmds, "bdat").0,
        _ => c.queued,
    };
    let forgiven = 2.max(rcpt_total / 5);
    let rejected = c.unknown_users + c.hard_rejects + u32::from(c.relay_denied);
    use pb::Verdict::{Bad, Delivered, Neutral};
    let (v, reason) = if messages > 0 {
        if c.unknown_users > forgiven {
            (
                Bad,
                format!(
                    "{} unknown recipients beside {messages} messages",
                    c.unknown_users
                ),
            )
        } else {
            (Delivered, format!("{} accepted", n(messages, "message")))
        }
    } else if c.auth_failures > 0 {
        (
            Bad,
            format!("{} SASL authentication failures", c.auth_failures),
        )
    } else if c.relay_denied {
        (Bad, "relay access denied".into())
    } else if let Some(p) = &c.protocol_error {
        (Bad, p.clone())
    } else if rejected > 0 {
        (
            Bad,
            format!("{rejected} recipients rejected, nothing accepted"),
        )
    } else if c.deferred > 0 {
        (
            Neutral,
            format!("only {}", n(c.deferred, "temporary refusal")),
        )
    } else if rcpt_ok > 0 || mail_ok > 0 {
        (
            Neutral,
            "MAIL/RCPT without DATA (address verification)".into(),
        )
    } else if commands.is_none() {
        (Neutral, "no disconnect logged".into())
    } else if cmds.is_empty() {
        // Exim: nothing logged between connect and close (a sender verification callout, too).
        (Neutral, "nothing logged but the connection".into())
    } else {
        (Bad, "connect and quit: no MAIL command".into())
    };
    pb::Event {
        time_unix_ms: t,
        client_address: addr.to_string(),
        kind: Some(Kind::Verdict(pb::ConnectionVerdict {
            verdict: v as i32,
            reason,
            messages,
            rejected_recipients: rejected,
            deferred: c.deferred,
            auth_failures: c.auth_failures,
            client_name: c.client_name.clone(),
        })),
    }
}
