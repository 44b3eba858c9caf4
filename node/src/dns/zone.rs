//! mxrep as a DNSBL: every node answers DNS for its applied ban list, so any MTA (Postfix's
//! `reject_rbl_client` or `postscreen_dnsbl_sites`, Exim, rspamd) can use mxrep's decisions
//! without an agent. `A 127.0.0.2` for an address that is banned or inside a banned prefix, `TXT`
//! with the ban's reason, NXDOMAIN otherwise; IPv4 reversed octets and IPv6 reversed nibbles
//! (RFC 5782), an SOA at the apex and in negative answers, and the RFC 5782 test entries
//! (127.0.0.2 and ::FFFF:7F00:2 listed, 127.0.0.1 not). Temporary refusals are not listings.

use crate::raft::state_store::SharedState;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use mxrep_common::lock::RwLockExt as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

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
    /// "." and the zone: what a query name ends with.
    suffix: String,
    /// The SOA's names: apex, primary server, responsible mailbox (parsed once).
    soa_names: Option<(Name, Name, Name)>,
    state: SharedState,
}

impl BanZone {
    pub fn new(zone: &str, state: SharedState) -> Self {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        let name = |prefix: &str| Name::from_str(&format!("{prefix}{zone}.")).ok();
        let soa_names = name("")
            .zip(name("ns."))
            .zip(name("hostmaster."))
            .map(|((a, m), r)| (a, m, r));
        Self {
            suffix: format!(".{zone}"),
            zone,
            soa_names,
            state,
        }
    }

    /// What `name` (fully qualified or not) holds.
    pub fn listing(&self, name: &str) -> Listing {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == self.zone {
            return Listing::Apex;
        }
        let Some(labels) = name.strip_suffix(self.suffix.as_str()) else {
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
        let (apex, mname, rname) = self.soa_names.clone()?;
        let serial = (self.state.read_locked().state.version % u32::MAX as u64) as u32;
        let soa = SOA::new(mname, rname, serial, 600, 300, 86400, TTL);
        Some(Record::from_rdata(apex, TTL, RData::SOA(soa)))
    }
}

/// The records of one answer: its response code, answer and authority sections.
pub struct Records {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

impl BanZone {
    /// The answer to a question for `qname` of type `qtype`.
    pub fn records(&self, qname: &Name, qtype: RecordType) -> Records {
        let soa = || self.soa();
        let mut r = Records {
            code: ResponseCode::NoError,
            answers: vec![],
            authority: vec![],
        };
        match self.listing(&qname.to_ascii()) {
            Listing::Apex if matches!(qtype, RecordType::SOA | RecordType::ANY) => {
                r.answers.extend(soa())
            }
            Listing::Apex => r.authority.extend(soa()),
            Listing::Listed(reason) => {
                if matches!(qtype, RecordType::A | RecordType::ANY) {
                    let a = RData::A(A(Ipv4Addr::new(127, 0, 0, 2)));
                    r.answers.push(Record::from_rdata(qname.clone(), TTL, a));
                }
                if matches!(qtype, RecordType::TXT | RecordType::ANY) {
                    let text: String = reason
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(250)
                        .collect();
                    let txt = RData::TXT(TXT::new(vec![text]));
                    r.answers.push(Record::from_rdata(qname.clone(), TTL, txt));
                }
                if r.answers.is_empty() {
                    r.authority.extend(soa());
                }
            }
            Listing::NotListed | Listing::NoSuchName => {
                r.code = ResponseCode::NXDomain;
                r.authority.extend(soa());
            }
        }
        r
    }
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
