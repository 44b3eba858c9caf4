//! One DNS list query through hickory-resolver, to the server the operator configured
//! (`--dns-resolver`) or the system's: the A records of `reversed-address.zone.` and, when
//! listed, its TXT. NXDOMAIN or no records is "not listed"; anything else is an error.

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Longest one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// TTL assumed for a "not listed" answer.
pub const NEGATIVE_TTL: u32 = 900;

/// What a list answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAnswer {
    pub codes: Vec<Ipv4Addr>,
    pub text: String,
    pub ttl: u32,
}

/// The query name of `addr` in `zone`: reversed octets (IPv4) or nibbles (IPv6), RFC 5782.
pub fn query_name(addr: IpAddr, zone: &str) -> String {
    let rev = match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => a
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0xf, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    };
    format!("{rev}.{zone}.")
}

/// A resolver for list queries.
pub struct ListResolver {
    pub(super) r: TokioResolver,
}

impl ListResolver {
    /// Uses `server` (HOST:PORT), or /etc/resolv.conf when None. Must run inside Tokio.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut opts = ResolverOpts::default();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = 1;
        let r = match server {
            Some(s) => {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                let cfg = ResolverConfig::from_name_servers(vec![ns]);
                Resolver::builder_with_config(cfg, TokioRuntimeProvider::default())
                    .with_options(opts)
                    .build()?
            }
            None => Resolver::builder_tokio()?.with_options(opts).build()?,
        };
        Ok(Self { r })
    }

    /// Asks `zone` about `addr`.
    pub async fn query(&self, addr: IpAddr, zone: &str) -> Result<ListAnswer, String> {
        let name = query_name(addr, zone);
        let lookup = tokio::time::timeout(QUERY_TIMEOUT, self.r.ipv4_lookup(name.as_str()));
        let a = match lookup.await {
            Err(_) => return Err(format!("{zone}: no answer within {QUERY_TIMEOUT:?}")),
            Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => {
                return Ok(ListAnswer {
                    codes: vec![],
                    text: String::new(),
                    ttl: NEGATIVE_TTL,
                })
            }
            Ok(Err(e)) => return Err(format!("{zone}: {e}")),
            Ok(Ok(l)) => l,
        };
        let mut codes = vec![];
        let mut ttl = u32::MAX;
        for rec in a.answers() {
            if let RData::A(x) = &rec.data {
                codes.push(x.0);
                ttl = ttl.min(rec.ttl);
            }
        }
        if codes.is_empty() {
            return Ok(ListAnswer {
                codes,
                text: String::new(),
                ttl: NEGATIVE_TTL,
            });
        }
        let text = match tokio::time::timeout(QUERY_TIMEOUT, self.r.txt_lookup(name.as_str())).await
        {
            Ok(Ok(t)) => t
                .answers()
                .iter()
                .find_map(|rec| match &rec.data {
                    RData::TXT(txt) => Some(txt.to_string()),
                    _ => None,
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        Ok(ListAnswer {
            codes,
            text: text.chars().filter(|c| !c.is_control()).take(200).collect(),
            ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_5782_query_names() {
        assert_eq!(
            super::query_name("192.0.2.99".parse().unwrap(), "bl.test"),
            "99.2.0.192.bl.test."
        );
        let v6 = super::query_name("2001:db8::1".parse().unwrap(), "bl.test");
        assert_eq!(
            v6,
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test."
        );
    }
}
