//! mxrep as a DNSBL: every node answers DNS for its applied ban list, so any MTA (Postfix's
//! `reject_rbl_client` or `postscreen_dnsbl_sites`, Exim, rspamd) can use mxrep's decisions
//! without an agent. `A 127.0.0.2` for an address that is banned or inside a banned prefix, `TXT`
//! with the ban's reason, NXDOMAIN otherwise; IPv4 reversed octets and IPv6 reversed nibbles
//! (RFC 5782), an SOA at the apex and in negative answers, and the RFC 5782 test entries
//! (127.0.0.2 and ::FFFF:7F00:2 listed, 127.0.0.1 not). Temporary refusals are not listings.

use crate::raft::state_store::SharedState;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use mxrep_common::lock::RwLockExt as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// TTL of listings and of the SOA's negative caching: short, bans change.
const TTL: u32 = 60;

/// What a name in the zone holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The zone apex.
    Apex,
    /// A listed address, with its reason.
    Listed(String),
    NotListed,
    /// Not a name this zone has (bad label, wrong length).
    NoSuchName,
}

/// The address encoded by `labels` (the part of the name before the zone), RFC 5782.
pub fn address_of(labels: &str) -> Option<IpAddr> {
    let parts: Vec<&str> = labels.split('.').collect();
    match parts.len() {
        4 => {
            let o: Vec<u8> = parts
                .iter()
                .rev()
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            Some(IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])))
        }
        32 => {
            let mut v: u128 = 0;
            for p in parts.iter().rev() {
                if p.len() != 1 {
                    return None;
                }
                v = (v << 4) | u128::from_str_radix(p, 16).ok()?;
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}

/// The DNSBL zone of one node.
pub struct BanZone {
    /// The zone, lowercase, without the trailing dot.
    zone: String,
    state: SharedState,
}

impl BanZone {
    pub fn new(zone: &str, state: SharedState) -> Self {
        Self {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            state,
        }
    }

    /// What `name` (fully qualified or not) holds.
    pub fn listing(&self, name: &str) -> Listing {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == self.zone {
            return Listing::Apex;
        }
        let Some(labels) = name.strip_suffix(&format!(".{}", self.zone)) else {
            return Listing::NoSuchName;
        };
        let Some(addr) = address_of(labels) else {
            return Listing::NoSuchName;
        };
        let test_v4: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
        let test_v6: IpAddr = Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped().into();
        if addr == test_v4 || addr == test_v6 {
            return Listing::Listed("RFC 5782 test entry".into());
        }
        let a = self.state.read_locked();
        match a
            .state
            .bans_covering(addr)
            .into_iter()
            .find(|b| b.refuses())
        {
            Some(b) => Listing::Listed(format!("{} ({})", b.reason, b.prefix)),
            None => Listing::NotListed,
        }
    }

    fn soa(&self) -> Option<Record> {
        let apex = Name::from_str(&format!("{}.", self.zone)).ok()?;
        let mname = Name::from_str(&format!("ns.{}.", self.zone)).ok()?;
        let rname = Name::from_str(&format!("hostmaster.{}.", self.zone)).ok()?;
        let serial = (self.state.read_locked().state.version % u32::MAX as u64) as u32;
        let soa = SOA::new(mname, rname, serial, 600, 300, 86400, TTL);
        Some(Record::from_rdata(apex, TTL, RData::SOA(soa)))
    }
}

#[async_trait::async_trait]
impl RequestHandler for BanZone {
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
        let qtype = info.query.query_type();
        let soa = self.soa();
        let mut answers = vec![];
        let mut authority = vec![];
        match self.listing(&qname.to_ascii()) {
            Listing::Apex if matches!(qtype, RecordType::SOA | RecordType::ANY) => {
                answers.extend(soa)
            }
            Listing::Apex => authority.extend(soa),
            Listing::Listed(reason) => {
                if matches!(qtype, RecordType::A | RecordType::ANY) {
                    answers.push(Record::from_rdata(
                        qname.clone(),
                        TTL,
                        RData::A(A(Ipv4Addr::new(127, 0, 0, 2))),
                    ));
                }
                if matches!(qtype, RecordType::TXT | RecordType::ANY) {
                    let text: String = reason
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(250)
                        .collect();
                    answers.push(Record::from_rdata(
                        qname.clone(),
                        TTL,
                        RData::TXT(TXT::new(vec![text])),
                    ));
                }
                if answers.is_empty() {
                    authority.extend(soa);
                }
            }
            Listing::NotListed | Listing::NoSuchName => {
                meta.response_code = ResponseCode::NXDomain;
                authority.extend(soa);
            }
        }
        let builder = MessageResponseBuilder::from_message_request(request);
        let msg = builder.build(meta, answers.iter(), [], authority.iter(), []);
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
    let udp = tokio::net::UdpSocket::bind(listen).await?;
    let tcp = tokio::net::TcpListener::bind(listen).await?;
    let mut server = Server::new(zone);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 64);
    tracing::info!("DNSBL zone served on {listen} (UDP and TCP)");
    server.block_until_done().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5782_names() {
        assert_eq!(
            address_of("9.113.0.203"),
            Some("203.0.113.9".parse().unwrap())
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2";
        assert_eq!(address_of(v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(address_of("1.2.3"), None);
        assert_eq!(address_of("256.0.0.1"), None);
        assert_eq!(address_of("x.0.0.1"), None);
    }
}
