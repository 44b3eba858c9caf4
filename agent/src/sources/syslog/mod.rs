//! The syslog receiver: rsyslog, syslog-ng or a network device forwards mail logs to the agent
//! over UDP (one message per datagram) and TCP (octet-counted or newline framing), RFC 5424 or
//! RFC 3164. The host name in each message becomes the MX host of its events: every host gets
//! its own connection tracker and its own uplink (session and batches), so one agent can speak
//! for a whole fleet that forwards to it. When the agent stops, the sockets close (a TCP sender
//! such as rsyslog queues and resends what it could not deliver), the messages received are
//! parsed, and every host's verdicts are sent and acknowledged before the agent exits.
//!
//! # Layout
//! - [`frame`]: TCP framing; [`message`]: a message's host and the line to parse;
//! - this file: the sockets, and the per-host trackers and uplinks.

pub mod frame;
pub mod message;

use super::connections::ConnectionTracker;
use super::postfix::{parse_line_in, Parsed};
use super::timezone::LogTimezone;
use crate::uplink::{Uplink, UplinkConfig};
use anyhow::Context as _;
use mxrep_common::shutdown::Shutdown;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most distinct hosts followed; messages of more are refused (and counted).
const MAX_HOSTS: usize = 10_000;
/// Messages waiting for the parser before receivers are held back.
const QUEUE: usize = 65_536;

/// What the receiver counted, for logs and tests.
#[derive(Debug, Default)]
pub struct SyslogStats {
    pub messages: AtomicU64,
    /// Not syslog, an unusable host name, a framing error, or over the host limit.
    pub refused: AtomicU64,
}

/// One received message and where it came from.
struct Received {
    text: String,
    peer: String,
}

/// A running receiver.
pub struct SyslogReceiver {
    pub stats: Arc<SyslogStats>,
    /// The parser; it ends once every socket closed, with the uplink of every host it saw.
    parser: JoinHandle<Vec<Uplink>>,
}

impl SyslogReceiver {
    /// Once `stop` fired: waits for what was received to be parsed, then for the cluster to
    /// acknowledge every host's verdicts, within `limit`. Returns the verdicts not acknowledged;
    /// None if the messages received were not all parsed in time.
    pub async fn drain(self, limit: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + limit;
        let uplinks = tokio::time::timeout_at(deadline, self.parser)
            .await
            .ok()?
            .ok()?;
        let mut left = 0;
        for u in uplinks {
            left += u
                .drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
        }
        Some(left)
    }
}

/// Binds UDP and TCP on `addr` and starts receiving until `stop`; events go to `cluster` under
/// each message's host name.
pub async fn start(
    addr: SocketAddr,
    cluster: Vec<String>,
    tz: LogTimezone,
    stop: Shutdown,
) -> anyhow::Result<SyslogReceiver> {
    let udp = UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot receive syslog on udp {addr}"))?;
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot receive syslog on tcp {addr}"))?;
    let stats = Arc::new(SyslogStats::default());
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(receive_udp(udp, tx.clone(), stop.clone()));
    tokio::spawn(accept_tcp(tcp, tx, stats.clone(), stop));
    let parser = tokio::spawn(parse(rx, cluster, tz, stats.clone()));
    Ok(SyslogReceiver { stats, parser })
}

async fn receive_udp(socket: UdpSocket, tx: mpsc::Sender<Received>, stop: Shutdown) {
    let mut buf = vec![0u8; frame::MAX_MESSAGE];
    loop {
        let got = tokio::select! {
            biased;
            _ = stop.clone().wait() => return,
            got = socket.recv_from(&mut buf) => got,
        };
        let Ok((n, peer)) = got else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let peer = peer.ip().to_string();
        if tx.send(Received { text, peer }).await.is_err() {
            return;
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    tx: mpsc::Sender<Received>,
    stats: Arc<SyslogStats>,
    stop: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.clone().wait() => return,
            a = listener.accept() => a,
        };
        let Ok((mut stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (tx, stats, stop) = (tx.clone(), stats.clone(), stop.clone());
        tokio::spawn(async move {
            let mut framer = frame::Framer::default();
            let mut buf = vec![0u8; 16 * 1024];
            let peer = peer.ip().to_string();
            loop {
                let read = tokio::select! {
                    biased;
                    _ = stop.clone().wait() => return,
                    r = stream.read(&mut buf) => r,
                };
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                match framer.push(&buf[..n]) {
                    Ok(messages) => {
                        for text in messages {
                            let peer = peer.clone();
                            if tx.send(Received { text, peer }).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("syslog from {peer}: {e}; closing the connection");
                        return;
                    }
                }
            }
        });
    }
}

/// One sending host: its connections and its uplink.
struct Host {
    tracker: ConnectionTracker,
    uplink: Uplink,
}

/// Parses until every sender is gone (the sockets closed); returns every host's uplink.
async fn parse(
    mut rx: mpsc::Receiver<Received>,
    cluster: Vec<String>,
    tz: LogTimezone,
    stats: Arc<SyslogStats>,
) -> Vec<Uplink> {
    let mut hosts: HashMap<String, Host> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let r = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => return hosts.into_values().map(|h| h.uplink).collect(),
            },
            _ = tick.tick() => {
                let now = chrono::Utc::now().timestamp_millis();
                for h in hosts.values_mut() {
                    for e in h.tracker.expire(now) {
                        h.uplink.push(e);
                    }
                }
                continue;
            }
        };
        stats.messages.fetch_add(1, Ordering::Relaxed);
        let Some((name, line)) = message::split(&r.text, &r.peer) else {
            refuse(&stats, &r);
            continue;
        };
        if !hosts.contains_key(&name) && hosts.len() >= MAX_HOSTS {
            refuse(&stats, &r);
            continue;
        }
        let read = parse_line_in(&line, chrono::Utc::now(), &tz);
        if !matches!(read.parsed, Parsed::Event(_)) {
            continue;
        }
        let host = hosts.entry(name).or_insert_with_key(|name| {
            tracing::info!("syslog: events from host {name} go to the cluster as MX host {name}");
            Host {
                tracker: ConnectionTracker::default(),
                uplink: Uplink::start(UplinkConfig::new(cluster.clone(), name.clone())),
            }
        });
        for e in host.tracker.feed(read) {
            host.uplink.push(e);
        }
    }
}

fn refuse(stats: &SyslogStats, r: &Received) {
    let n = stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            "syslog from {}: {n} messages refused so far (not syslog, a bad host name, or over {MAX_HOSTS} hosts), e.g. {:?}",
            r.peer,
            r.text.chars().take(100).collect::<String>()
        );
    }
}
