//! RFC 5782 probes: every few minutes the leader asks each list about 127.0.0.2 (a list must
//! list it, with a real listing code) and 127.0.0.1 (a list must not: one that does is broken or
//! a wildcard). A list that fails is taken out of scoring on every node (`Command::ListHealth`),
//! with a log line; it comes back when it passes again.

use super::resolver::ListResolver;
use crate::raft::Cluster;
use crate::state::dnsbl::site::{Code, Site};
use crate::state::dnsbl::ListHealth;
use crate::state::Command;
use mxrep_common::lock::RwLockExt as _;
use openraft::ServerState;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often each list is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(300);

/// One list's health, asked now.
pub async fn probe(resolver: &ListResolver, site: &Site) -> ListHealth {
    let test: IpAddr = [127, 0, 0, 2].into();
    let never: IpAddr = [127, 0, 0, 1].into();
    let fail = |reason: String| ListHealth {
        zone: site.zone.clone(),
        healthy: false,
        reason,
    };
    match resolver.query(test, &site.zone).await {
        Err(e) => return fail(format!("probe of 127.0.0.2 failed: {e}")),
        Ok(a) if a.codes.is_empty() => {
            return fail("the RFC 5782 test entry 127.0.0.2 is not listed".into())
        }
        Ok(a) if a.codes.iter().any(|c| site.classify(*c) == Code::ListError) => {
            return fail(format!(
                "127.0.0.2 answered with a list error ({:?})",
                a.codes
            ))
        }
        Ok(_) => {}
    }
    match resolver.query(never, &site.zone).await {
        Err(e) => fail(format!("probe of 127.0.0.1 failed: {e}")),
        Ok(a) if !a.codes.is_empty() => fail(format!(
            "127.0.0.1 is listed ({:?}): the list is broken or a wildcard",
            a.codes
        )),
        Ok(_) => ListHealth {
            zone: site.zone.clone(),
            healthy: true,
            reason: String::new(),
        },
    }
}

/// Probes every list while this node leads — every [`PROBE_EVERY`], and at once when the
/// policy's lists change — and proposes the changes.
pub async fn run(cluster: Cluster, resolver: Arc<ListResolver>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut last: Option<(Instant, Vec<String>)> = None;
    loop {
        every.tick().await;
        if cluster.raft.metrics().borrow().state != ServerState::Leader {
            last = None;
            continue;
        }
        let (names, failing) = {
            let a = cluster.state.read_locked();
            (
                a.state.policy.dnsbl.sites.clone(),
                a.state.dnsbl.failing.clone(),
            )
        };
        let due = match &last {
            Some((t, n)) => *n != names || t.elapsed() >= PROBE_EVERY,
            None => true,
        };
        if !due || names.is_empty() {
            continue;
        }
        last = Some((Instant::now(), names.clone()));
        let sites: Vec<Site> = names.iter().filter_map(|s| Site::parse(s).ok()).collect();
        let mut changes = vec![];
        for site in &sites {
            let h = probe(&resolver, site).await;
            if h.healthy == failing.contains_key(&h.zone) {
                if h.healthy {
                    tracing::info!(
                        "DNS list {} passes its probes again: back in scoring",
                        h.zone
                    );
                } else {
                    tracing::error!(
                        "DNS list {} fails its probe ({}): out of scoring on every node",
                        h.zone,
                        h.reason
                    );
                }
                changes.push(h);
            }
        }
        if !changes.is_empty() {
            if let Err(e) = cluster.write(Command::ListHealth(changes)).await {
                tracing::warn!("list health not recorded: {e}");
            }
        }
    }
}
