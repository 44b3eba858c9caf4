//! The `Query` service for SOC tooling (role mxrep:reader or mxrep:admin): many addresses looked
//! up in one call, and bans filtered by source, rule, time and prefix, a page at a time. Both
//! read this node's applied state. [`show_ip`] is also `Admin.ShowIp`.

use super::convert::{ban_to_pb, counter_to_pb, dns_to_pb};
use crate::raft::Cluster;
use crate::state::{parse_prefix, Ban, BanSource, ReputationState};
use ipnet::IpNet;
use mxrep_common::lock::RwLockExt as _;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::query_server::Query;
use tonic::{Request, Response, Status};

/// Most addresses in one lookup, and most bans in one page.
const MAX_LOOKUP: usize = 10_000;
const MAX_PAGE: usize = 10_000;
const DEFAULT_PAGE: usize = 1_000;

/// What the cluster knows about an address or prefix (`query`).
pub fn show_ip(state: &ReputationState, query: &str) -> Result<pb::ShowIpResponse, Status> {
    let net = parse_prefix(query).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let single = net.prefix_len() == net.max_prefix_len();
    let r = match single {
        true => state.report(net.addr()),
        false => state.prefix_report(net),
    };
    Ok(pb::ShowIpResponse {
        address: if single {
            r.address.to_string()
        } else {
            net.to_string()
        },
        covering_bans: r.bans.iter().map(ban_to_pb).collect(),
        counters: r.counters.iter().map(counter_to_pb).collect(),
        mx_hosts: r.mx_hosts,
        prefix: r.prefix.to_string(),
        prefix_counters: r.prefix_counters.iter().map(counter_to_pb).collect(),
        prefix_mx_hosts: r.prefix_mx_hosts,
        observed: r.observed.iter().map(ban_to_pb).collect(),
        allowlisted: r.allowlisted,
        suppressed_until_unix_ms: r.suppressed_until_ms.unwrap_or(0),
        offences: r.offences,
        greylist: r.greylist.map(|(net, c)| pb::GreylistState {
            network: net.to_string(),
            triplets_seen: c.seen,
            triplets_passed: c.passed,
            passes: c.passes,
            allowlisted_until_unix_ms: c.allowlisted_until as i64 * 1000,
        }),
        dns: r.dns.as_ref().map(dns_to_pb),
        distances: r
            .distances
            .into_iter()
            .map(|d| pb::RuleDistance {
                rule: d.rule,
                key: d.key.to_string(),
                text: d.text,
                would_ban: d.would_ban,
            })
            .collect(),
    })
}

/// The filters of one ban query, checked.
struct BanFilter {
    source: Option<&'static str>,
    rule: String,
    since: i64,
    before: i64,
    within: Option<IpNet>,
}

impl BanFilter {
    fn parse(r: &pb::QueryBansRequest) -> Result<Self, Status> {
        let source = match r.source.trim() {
            "" => None,
            "automatic" => Some("automatic"),
            "manual" => Some("manual"),
            "dnsbl" => Some("dnsbl"),
            other => {
                return Err(Status::invalid_argument(format!(
                    "source '{other}': expected automatic, manual or dnsbl"
                )))
            }
        };
        let within = match r.within.trim() {
            "" => None,
            w => Some(
                parse_prefix(w).map_err(|e| Status::invalid_argument(format!("within: {e}")))?,
            ),
        };
        Ok(Self {
            source,
            rule: r.rule.trim().to_string(),
            since: r.created_since_unix_ms,
            before: r.created_before_unix_ms,
            within,
        })
    }

    fn matches(&self, b: &Ban) -> bool {
        let dnsbl = b.evidence.iter().any(|e| e.rule == "dnsbl");
        let source_ok = match self.source {
            None => true,
            Some("manual") => b.source == BanSource::Manual,
            Some("dnsbl") => dnsbl,
            Some(_) => b.source == BanSource::Automatic && !dnsbl,
        };
        source_ok
            && (self.rule.is_empty() || b.evidence.iter().any(|e| e.rule == self.rule))
            && b.created_ms >= self.since
            && (self.before == 0 || b.created_ms < self.before)
            && self.within.is_none_or(|w| w.contains(&b.prefix))
    }
}

/// The page token: the last ban of the page, as "created_ms/prefix".
fn token(b: &Ban) -> String {
    format!("{}/{}", b.created_ms, b.prefix)
}

fn after_token(t: &str) -> Result<Option<(i64, IpNet)>, Status> {
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || Status::invalid_argument(format!("page_token '{t}' is not one this API gave"));
    let (ms, prefix) = t.split_once('/').ok_or_else(bad)?;
    Ok(Some((
        ms.parse().map_err(|_| bad())?,
        prefix.parse().map_err(|_| bad())?,
    )))
}

/// The `Query` service of one node.
pub struct QueryService {
    pub cluster: Cluster,
}

#[tonic::async_trait]
impl Query for QueryService {
    async fn lookup_addresses(
        &self,
        req: Request<pb::LookupAddressesRequest>,
    ) -> Result<Response<pb::LookupAddressesResponse>, Status> {
        let asked = req.into_inner().addresses;
        if asked.len() > MAX_LOOKUP {
            return Err(Status::invalid_argument(format!(
                "{} addresses in one lookup; at most {MAX_LOOKUP}",
                asked.len()
            )));
        }
        let a = self.cluster.state.read_locked();
        let results = asked
            .into_iter()
            .map(|query| match show_ip(&a.state, &query) {
                Ok(info) => pb::AddressLookup {
                    query,
                    info: Some(info),
                    error: String::new(),
                },
                Err(s) => pb::AddressLookup {
                    query,
                    info: None,
                    error: s.message().to_string(),
                },
            })
            .collect();
        Ok(Response::new(pb::LookupAddressesResponse { results }))
    }

    async fn query_bans(
        &self,
        req: Request<pb::QueryBansRequest>,
    ) -> Result<Response<pb::QueryBansResponse>, Status> {
        let r = req.into_inner();
        let filter = BanFilter::parse(&r)?;
        let after = after_token(&r.page_token)?;
        let size = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let a = self.cluster.state.read_locked();
        let mut matching: Vec<&Ban> = a
            .state
            .bans
            .values()
            .filter(|b| filter.matches(b))
            .collect();
        matching.sort_by_key(|b| (b.created_ms, b.prefix));
        let total = matching.len() as u64;
        let start = match after {
            None => 0,
            Some(key) => matching.partition_point(|b| (b.created_ms, b.prefix) <= key),
        };
        let page: Vec<&Ban> = matching.iter().skip(start).take(size).copied().collect();
        let more = start + page.len() < matching.len();
        Ok(Response::new(pb::QueryBansResponse {
            next_page_token: match (more, page.last()) {
                (true, Some(last)) => token(last),
                _ => String::new(),
            },
            bans: page.into_iter().map(ban_to_pb).collect(),
            total,
        }))
    }
}
