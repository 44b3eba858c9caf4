//! Forward-confirmed reverse DNS (FCrDNS), as Postfix verifies `client_name`: the PTR names of
//! an address, then each name's addresses; the first name (of at most [`MAX_NAMES`]) whose
//! addresses include the client is its verified name. A client without PTR, or whose names all
//! point elsewhere (a forged PTR), has none.

use super::resolver::{ListResolver, NEGATIVE_TTL, QUERY_TIMEOUT};
use hickory_resolver::proto::rr::RData;
use std::net::IpAddr;

/// PTR names tried per address.
const MAX_NAMES: usize = 3;

/// A verified name (lowercase, no trailing dot) or none, and how long that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAnswer {
    pub name: Option<String>,
    pub ttl: u32,
}

impl ListResolver {
    /// The forward-confirmed name of `addr`; an error only when DNS itself failed.
    pub async fn verified_name(&self, addr: IpAddr) -> Result<NameAnswer, String> {
        let none = NameAnswer {
            name: None,
            ttl: NEGATIVE_TTL,
        };
        let ptr = match tokio::time::timeout(QUERY_TIMEOUT, self.r.reverse_lookup(addr)).await {
            Err(_) => return Err(format!("PTR {addr}: no answer within {QUERY_TIMEOUT:?}")),
            Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => return Ok(none),
            Ok(Err(e)) => return Err(format!("PTR {addr}: {e}")),
            Ok(Ok(l)) => l,
        };
        let names: Vec<(String, u32)> = ptr
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::PTR(p) => Some((p.0.to_ascii().to_ascii_lowercase(), rec.ttl)),
                _ => None,
            })
            .take(MAX_NAMES)
            .collect();
        for (name, ttl) in names {
            let forward = tokio::time::timeout(QUERY_TIMEOUT, self.r.lookup_ip(name.as_str()));
            let Ok(Ok(ips)) = forward.await else {
                continue;
            };
            if ips.iter().any(|ip| ip == addr) {
                return Ok(NameAnswer {
                    name: Some(name.trim_end_matches('.').to_string()),
                    ttl,
                });
            }
        }
        Ok(none)
    }
}
