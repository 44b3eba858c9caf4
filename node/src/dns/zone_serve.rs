//! Serving the DNSBL zone: UDP — what MTAs ask — on a lean loop of our own (hickory-proto parses
//! and encodes each message; two tasks share the socket), TCP through hickory-server. Both
//! answer from [`BanZone::records`]. A packet that does not parse as a DNS query is counted and
//! answered `FORMERR` when its header can be read, dropped otherwise; never a panic.

use super::zone::BanZone;
use hickory_server::proto::op::{Header, HeaderCounts, Message, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Name;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// UDP tasks answering on the one socket.
const UDP_TASKS: usize = 2;

/// Queries that did not parse.
static MALFORMED: AtomicU64 = AtomicU64::new(0);

/// The answer to one UDP packet, encoded; `None` when it cannot be answered at all.
pub fn answer_packet(zone: &BanZone, packet: &[u8]) -> Option<Vec<u8>> {
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(_) => {
            let n = MALFORMED.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!("DNSBL zone: {n} malformed queries so far");
            }
            // FORMERR to a readable header; nothing to a fragment.
            let id = u16::from_be_bytes([*packet.first()?, *packet.get(1)?]);
            let mut reply = Message::response(id, OpCode::Query);
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply.to_vec().ok();
        }
    };
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata = Metadata::response_from_request(&request.metadata);
    reply.metadata.authoritative = true;
    match request.queries.first() {
        Some(q) if request.queries.len() == 1 => {
            let r = zone.records(q.name(), q.query_type());
            reply.metadata.response_code = r.code;
            reply.add_query(q.clone());
            reply.add_answers(r.answers);
            reply.add_authorities(r.authority);
        }
        _ => reply.metadata.response_code = ResponseCode::FormErr,
    }
    reply.to_vec().ok()
}

async fn serve_udp(socket: Arc<tokio::net::UdpSocket>, zone: Arc<BanZone>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer_packet(&zone, &buf[..n]) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// The TCP side, through hickory-server.
struct TcpZone(Arc<BanZone>);

#[async_trait::async_trait]
impl RequestHandler for TcpZone {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        let failed = |mut m: Metadata, code| {
            m.response_code = code;
            ResponseInfo::from(Header {
                metadata: m,
                counts: HeaderCounts::default(),
            })
        };
        let Ok(info) = request.request_info() else {
            return failed(meta, ResponseCode::FormErr);
        };
        let qname: Name = info.query.name().into();
        let r = self.0.records(&qname, info.query.query_type());
        meta.response_code = r.code;
        let builder = MessageResponseBuilder::from_message_request(request);
        let msg = builder.build(meta, r.answers.iter(), [], r.authority.iter(), []);
        match response.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("DNSBL answer not sent: {e}");
                failed(meta, ResponseCode::ServFail)
            }
        }
    }
}

/// Serves `zone` on `listen` (UDP and TCP) until the process ends.
pub async fn serve(listen: SocketAddr, zone: BanZone) -> anyhow::Result<()> {
    let zone = Arc::new(zone);
    let udp = Arc::new(tokio::net::UdpSocket::bind(listen).await?);
    let tcp = tokio::net::TcpListener::bind(listen).await?;
    for _ in 0..UDP_TASKS {
        tokio::spawn(serve_udp(udp.clone(), zone.clone()));
    }
    let mut server = Server::new(TcpZone(zone));
    server.register_listener(tcp, Duration::from_secs(5), 64);
    tracing::info!("DNSBL zone served on {listen} (UDP and TCP)");
    server.block_until_done().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_store::SharedState;

    #[test]
    fn garbage_is_formerr_or_nothing_never_a_panic() {
        let zone = BanZone::new("bl.test", SharedState::default());
        assert!(answer_packet(&zone, &[]).is_none());
        assert!(answer_packet(&zone, &[7]).is_none());
        let reply = answer_packet(&zone, &[0x12, 0x34, 0xff, 0xff, 0, 9]).unwrap();
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        let mut q = Message::query();
        q.metadata.id = 9;
        q.add_query(hickory_server::proto::op::Query::query(
            "2.0.0.127.bl.test.".parse().unwrap(),
            hickory_server::proto::rr::RecordType::A,
        ));
        let m = Message::from_vec(&answer_packet(&zone, &q.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1, "the RFC 5782 test entry");
    }
}
