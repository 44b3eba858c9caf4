//! A minimal agent for tests: builds Postfix-like events and sends them over the real
//! `ReportEvents` stream of a node, waiting for every batch's acknowledgement; and a watcher of
//! the `WatchBans` stream.

use mxrep_proto::v1 as pb;
use mxrep_proto::v1::agent_client::AgentClient;
use pb::event::Kind;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Endpoint;

/// Wall-clock unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn event(addr: &str, t: i64, kind: Kind) -> pb::Event {
    pb::Event {
        time_unix_ms: t,
        client_address: addr.into(),
        kind: Some(kind),
    }
}

pub fn connect(addr: &str, t: i64) -> pb::Event {
    event(addr, t, Kind::Connect(pb::Connect {}))
}

/// `disconnect from … ehlo=1 mail=M rcpt=R/1 data=D/…`
pub fn disconnect(addr: &str, t: i64, mail_ok: u32, data_ok: u32) -> pb::Event {
    let c = |command: &str, ok, total| pb::CommandCount {
        command: command.into(),
        ok,
        total,
    };
    event(
        addr,
        t,
        Kind::Disconnect(pb::Disconnect {
            commands: vec![
                c("ehlo", 1, 1),
                c("mail", mail_ok, 1),
                c("data", data_ok, data_ok),
                c("quit", 1, 1),
            ],
        }),
    )
}

/// The verdict of one SMTP connection, as the agent forms it.
pub fn verdict(
    addr: &str,
    t: i64,
    v: pb::Verdict,
    f: impl FnOnce(&mut pb::ConnectionVerdict),
) -> pb::Event {
    let mut c = pb::ConnectionVerdict {
        verdict: v as i32,
        reason: "test".into(),
        ..Default::default()
    };
    f(&mut c);
    event(addr, t, Kind::Verdict(c))
}

/// A connection refused one recipient (`class`) that delivered nothing: bad, or neutral for
/// a temporary refusal (greylisting).
pub fn rejected(addr: &str, t: i64, class: pb::RejectClass) -> pb::Event {
    if class == pb::RejectClass::Greylisted {
        return verdict(addr, t, pb::Verdict::Neutral, |c| c.deferred = 1);
    }
    verdict(addr, t, pb::Verdict::Bad, |c| c.rejected_recipients = 1)
}

/// A connection whose SASL authentication failed.
pub fn auth_failure(addr: &str, t: i64) -> pb::Event {
    verdict(addr, t, pb::Verdict::Bad, |c| c.auth_failures = 1)
}

/// A connection that delivered one message.
pub fn accepted(addr: &str, t: i64) -> pb::Event {
    verdict(addr, t, pb::Verdict::Delivered, |c| c.messages = 1)
}

/// Connect and quit: a bad connection with nothing else.
pub fn quit(addr: &str, t: i64) -> pb::Event {
    verdict(addr, t, pb::Verdict::Bad, |c| {
        c.reason = "connect and quit".into()
    })
}

/// A connection that is refused a recipient and leaves.
pub fn rejected_session(addr: &str, t: i64) -> Vec<pb::Event> {
    vec![rejected(addr, t, pb::RejectClass::UnknownUser)]
}

/// A connection that delivers one message.
pub fn delivering_session(addr: &str, t: i64) -> Vec<pb::Event> {
    vec![accepted(addr, t)]
}

/// Sends `batches` as MX host `mx_host` to the node at `api` over one stream; returns the acks.
pub async fn send(
    api: &str,
    mx_host: &str,
    batches: Vec<Vec<pb::Event>>,
) -> Result<Vec<pb::EventAck>, tonic::Status> {
    let ch = Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = AgentClient::new(ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let n = batches.len();
    let msgs: Vec<pb::EventBatch> = batches
        .into_iter()
        .enumerate()
        .map(|(i, events)| pb::EventBatch {
            seq: i as u64 + 1,
            session: 0,
            traceparent: String::new(),
            mx_host: mx_host.into(),
            events,
        })
        .collect();
    // Keep the request stream open until every ack is in.
    let (tx, rx) = tokio::sync::mpsc::channel(n.max(1));
    for m in msgs {
        tx.send(m).await.expect("queue batch");
    }
    let mut acks_stream = client
        .report_events(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut acks = Vec::new();
    while acks.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), acks_stream.message()).await {
            Err(_) => return Err(tonic::Status::deadline_exceeded("no ack within 30 s")),
            Ok(Ok(Some(a))) => acks.push(a),
            Ok(Ok(None)) => return Err(tonic::Status::aborted("stream closed before all acks")),
            Ok(Err(s)) => return Err(s),
        }
    }
    drop(tx);
    Ok(acks)
}

/// Like [`send`], one batch, on a private runtime; panics on a transport error.
pub fn send_blocking(api: &str, mx_host: &str, events: Vec<pb::Event>) -> pb::EventAck {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(send(api, mx_host, vec![events]))
        .expect("send events")
        .remove(0)
}

/// Opens `WatchBans` on `api` from `from_version`.
pub async fn watch(api: &str, from_version: u64) -> tonic::Streaming<pb::BanUpdate> {
    let ch = Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    AgentClient::new(ch)
        .watch_bans(pb::WatchBansRequest {
            from_version,
            mx_host: "test".into(),
        })
        .await
        .expect("watch")
        .into_inner()
}

/// The next update of a watch, within 30 s.
pub async fn next_update(s: &mut tonic::Streaming<pb::BanUpdate>) -> pb::ban_update::Update {
    tokio::time::timeout(Duration::from_secs(30), s.message())
        .await
        .expect("an update within 30 s")
        .expect("stream ok")
        .expect("stream open")
        .update
        .expect("update set")
}

/// Waits up to `limit` until every verdict pushed into `uplinks` was acknowledged by the cluster
/// (none queued, none in flight), then checks that none was dropped.
pub fn wait_all_acknowledged(uplinks: &[mxrep_agent::uplink::Uplink], limit: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    crate::wait_until(limit, "every verdict acknowledged", || {
        uplinks
            .iter()
            .all(|u| {
                let s = u.stats();
                u.queued() == 0 && s.acked.load(Relaxed) == s.pushed.load(Relaxed)
            })
            .then_some(())
    });
    let dropped: u64 = uplinks
        .iter()
        .map(|u| u.stats().dropped.load(Relaxed))
        .sum();
    assert_eq!(dropped, 0, "an uplink dropped verdicts");
}
