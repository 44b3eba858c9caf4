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

pub fn rejected(addr: &str, t: i64, class: pb::RejectClass) -> pb::Event {
    event(
        addr,
        t,
        Kind::Rejected(pb::RecipientRejected {
            code: 550,
            enhanced_code: "5.1.1".into(),
            class: class as i32,
            sender: "bulk@spam.test".into(),
            recipient: "nosuchuser@mx.test".into(),
            helo: "spam.test".into(),
        }),
    )
}

pub fn auth_failure(addr: &str, t: i64) -> pb::Event {
    event(
        addr,
        t,
        Kind::AuthFailure(pb::AuthFailure {
            mechanism: "LOGIN".into(),
        }),
    )
}

pub fn accepted(addr: &str, t: i64) -> pb::Event {
    event(
        addr,
        t,
        Kind::Accepted(pb::MessageAccepted {
            queue_id: "2B066B6317".into(),
        }),
    )
}

/// A connection that is refused a recipient and leaves.
pub fn rejected_session(addr: &str, t: i64) -> Vec<pb::Event> {
    vec![
        connect(addr, t),
        rejected(addr, t, pb::RejectClass::UnknownUser),
        disconnect(addr, t, 1, 0),
    ]
}

/// A connection that delivers one message.
pub fn delivering_session(addr: &str, t: i64) -> Vec<pb::Event> {
    vec![
        connect(addr, t),
        accepted(addr, t),
        disconnect(addr, t, 1, 1),
    ]
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
