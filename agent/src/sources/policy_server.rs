//! The Postfix policy service (`check_policy_service inet:ADDR`): the SMTP access policy
//! delegation protocol. A request is `name=value` lines ended by an empty line; the answer is one
//! `action=…` line and an empty line; Postfix keeps the connection open for many requests, and
//! many connections run at once.
//!
//! Every request becomes an event for the cluster and is answered at once from the agent's own
//! ban view — `REJECT` with a clear text for a banned address the firewall has not dropped (dry
//! run, or the moment before the set is updated), `DEFER_IF_PERMIT` (450) for an address the
//! cluster refuses temporarily (too many connections that were not mail), `DUNNO` otherwise. It never waits on the
//! cluster. With greylisting, an RCPT request that no ban answered asks the cluster, with a
//! deadline of 100 ms and DUNNO when it is away (`greylist`). A malformed or oversized
//! request closes that connection only, as the protocol expects.

use crate::enforce::view::{BanView, Refusal};
use crate::sources::greylist::{GreylistClient, Verdict};
use crate::uplink::Uplink;
use mxrep_common::telemetry::instruments::kv;
use mxrep_proto::v1 as pb;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::policy_request::RequestReader;
pub use super::policy_request::MAX_REQUEST;
/// Idle time after which a policy connection is closed.
const IDLE: Duration = Duration::from_secs(600);

/// What the policy server needs: the ban view, where events go, and the cluster's greylisting.
#[derive(Clone)]
pub struct PolicyService {
    pub view: BanView,
    pub uplink: Option<Uplink>,
    /// Greylisting at RCPT (None: off on this agent).
    pub greylist: Option<std::sync::Arc<GreylistClient>>,
}

use mxrep_common::clock::unix_ms as now_ms;

impl PolicyService {
    /// The `action=` for one request: a ban first, then greylisting at RCPT.
    pub async fn answer(&self, attrs: &HashMap<String, String>) -> String {
        let banned = self.ban_answer(attrs);
        if banned != "DUNNO" {
            return banned;
        }
        let get = |k: &str| attrs.get(k).map(String::as_str).unwrap_or("");
        let rcpt = matches!(
            get("protocol_state").to_ascii_uppercase().as_str(),
            "RCPT" | ""
        );
        match &self.greylist {
            Some(g) if rcpt && !get("client_address").is_empty() => {
                match g
                    .check(
                        get("client_address"),
                        get("client_name"),
                        get("sender"),
                        get("recipient"),
                    )
                    .await
                {
                    Verdict::Defer(text) => format!("DEFER_IF_PERMIT {text}"),
                    Verdict::Dunno => banned,
                }
            }
            _ => banned,
        }
    }

    /// The answer from the ban view alone.
    fn ban_answer(&self, attrs: &HashMap<String, String>) -> String {
        let Some(addr) = attrs
            .get("client_address")
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            return "DUNNO".into();
        };
        let now = now_ms();
        if let Some(up) = &self.uplink {
            let get = |k: &str| attrs.get(k).cloned().unwrap_or_default();
            up.push(pb::Event {
                time_unix_ms: now,
                client_address: addr.to_string(),
                kind: Some(pb::event::Kind::PolicyRequest(pb::PolicyRequest {
                    protocol_state: get("protocol_state"),
                    helo: get("helo_name"),
                    sender: get("sender"),
                    recipient: get("recipient"),
                })),
            });
        }
        match self.view.covering(addr, now) {
            Some((net, k)) => {
                let reason: String = k
                    .reason
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                match k.refusal {
                    // A DNS list's verdict: in the words operators know from postscreen.
                    _ if reason.starts_with("Service unavailable; client [") => {
                        format!("REJECT 5.7.1 {reason}")
                    }
                    Refusal::Tempfail => {
                        let left = (k.expires_ms - now).max(0) / 1000;
                        format!("DEFER_IF_PERMIT 4.7.1 mxrep: {addr} refused for now, try again in {left} s ({reason})")
                    }
                    Refusal::Drop | Refusal::Reject => {
                        format!("REJECT 5.7.1 mxrep: {addr} is banned ({net}: {reason})")
                    }
                }
            }
            None => "DUNNO".into(),
        }
    }

    /// Serves policy connections until the listener fails.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let svc = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = svc.connection(stream).await {
                            tracing::debug!("policy connection closed: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("policy listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(&self, stream: TcpStream) -> Result<(), String> {
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut reader = RequestReader::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(
                IDLE,
                (&mut r)
                    .take((reader.room() + 1) as u64)
                    .read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| "idle".to_string())?
            .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            let Some(attrs) = reader.push_line(&line)? else {
                continue;
            };
            let started = std::time::Instant::now();
            let action = self.answer(&attrs).await;
            let m = crate::metrics::agent();
            m.policy_duration
                .record(started.elapsed().as_secs_f64(), &[]);
            m.policy_requests
                .add(1, &[kv("answer", answer_kind(&action))]);
            w.write_all(format!("action={action}\n\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

/// The kind of a policy answer, for the request counter.
fn answer_kind(action: &str) -> &'static str {
    match action.split(' ').next().unwrap_or("") {
        "DUNNO" => "dunno",
        "REJECT" => "reject",
        "DEFER_IF_PERMIT" if action.contains("Greylisted") => "greylist",
        "DEFER_IF_PERMIT" | "DEFER" => "tempfail",
        _ => "other",
    }
}
