//! Looking up addresses as they first appear: every node hands the address of each observation
//! it applies to [`DnsLookups::want`], and only the leader asks — every observation passes
//! through it — skipping an address whose verdict the applied state already holds (within its
//! TTL) or that it asked about a minute ago, so the whole cluster asks once per address per TTL. Queries run with bounded concurrency and a timeout;
//! each list has a daily query budget, counted and logged when spent. Answers are proposed in
//! the background (`Command::Dnsbl`). With `verify_client_names` the same lookup also finds the
//! address's forward-confirmed name (`super::names`).

use super::resolver::ListResolver;
use crate::ingest::proposer::Proposer;
use crate::metrics::kv;
use crate::raft::Cluster;
use crate::state::dnsbl::site::Site;
use crate::state::dnsbl::{Answer, Lookup};
use crate::state::Command;
use mxrep_common::clock::unix_ms;
use mxrep_common::lock::{MutexExt as _, RwLockExt as _};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Queries in flight at once.
const CONCURRENCY: usize = 32;
/// An address this node asked about is not asked again for this long (the answer is on its way
/// through the log).
const RECENT: Duration = Duration::from_secs(60);

/// Queries per list today, and what failed; shown by `mxrepctl status`.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Zone → (UTC day number, queries that day).
    pub queries: Mutex<BTreeMap<String, (i64, u64)>>,
    /// Queries that failed (timeout, server failure).
    pub errors: AtomicU64,
    /// Addresses not looked up because a list's budget was spent.
    pub over_budget: AtomicU64,
    /// Forward-confirmed reverse DNS checks (PTR, then the names' addresses).
    pub names: AtomicU64,
}

impl DnsStats {
    /// Counts one query to `zone` if today's `budget` allows it.
    fn take(&self, zone: &str, budget: u64) -> bool {
        let day = unix_ms() / 86_400_000;
        let mut q = self.queries.locked();
        let e = q.entry(zone.to_string()).or_insert((day, 0));
        if e.0 != day {
            *e = (day, 0);
        }
        if e.1 >= budget {
            if self
                .over_budget
                .fetch_add(1, Ordering::Relaxed)
                .is_power_of_two()
            {
                tracing::warn!("DNS list {zone}: today's budget of {budget} queries is spent; not asked until tomorrow (UTC)");
            }
            return false;
        }
        e.1 += 1;
        true
    }

    /// Counts a failed query, logging the first and then every power of two.
    fn failed(&self, e: &str) {
        if self
            .errors
            .fetch_add(1, Ordering::Relaxed)
            .is_power_of_two()
        {
            tracing::warn!("DNS query failed: {e}");
        }
    }

    /// Queries to `zone` today.
    pub fn today(&self, zone: &str) -> u64 {
        let day = unix_ms() / 86_400_000;
        self.queries
            .locked()
            .get(zone)
            .filter(|(d, _)| *d == day)
            .map_or(0, |(_, n)| *n)
    }
}

/// Handle for the lookups of one node.
#[derive(Clone, Debug)]
pub struct DnsLookups {
    tx: mpsc::Sender<IpAddr>,
    pub stats: Arc<DnsStats>,
    /// The policy names lists (refreshed every 2 s): otherwise `want` does nothing at all.
    active: Arc<AtomicBool>,
    /// This node leads: only the leader looks up, so the cluster asks once per address.
    leading: Arc<AtomicBool>,
}

impl DnsLookups {
    pub fn start(cluster: Cluster, resolver: Arc<ListResolver>) -> Self {
        let (tx, rx) = mpsc::channel(100_000);
        let stats = Arc::new(DnsStats::default());
        let out = Proposer::start(cluster.clone(), "DNS list answers", Command::Dnsbl);
        let active = Arc::new(AtomicBool::new(false));
        let leading = Arc::new(AtomicBool::new(false));
        tokio::spawn(watch_policy(cluster.clone(), active.clone()));
        tokio::spawn(watch_leadership(cluster.clone(), leading.clone()));
        tokio::spawn(run(cluster, resolver, stats.clone(), rx, out));
        Self {
            tx,
            stats,
            active,
            leading,
        }
    }

    /// An address was observed (every node applies every observation): on the leader, look it
    /// up if the cluster does not know it yet. Never waits.
    pub fn want(&self, addr: IpAddr) {
        if self.active.load(Ordering::Relaxed) && self.leading.load(Ordering::Relaxed) {
            let _ = self.tx.try_send(addr);
        }
    }
}

async fn watch_leadership(cluster: Cluster, leading: Arc<AtomicBool>) {
    let mut metrics = cluster.raft.metrics();
    loop {
        let lead = metrics.borrow().current_leader == Some(cluster.id);
        leading.store(lead, Ordering::Relaxed);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

async fn watch_policy(cluster: Cluster, active: Arc<AtomicBool>) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        every.tick().await;
        let on = {
            let a = cluster.state.read_locked();
            let d = &a.state.policy.dnsbl;
            !d.sites.is_empty() || d.verify_client_names
        };
        active.store(on, Ordering::Relaxed);
    }
}

async fn run(
    cluster: Cluster,
    resolver: Arc<ListResolver>,
    stats: Arc<DnsStats>,
    mut rx: mpsc::Receiver<IpAddr>,
    out: Proposer<Lookup>,
) {
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut asked: HashMap<IpAddr, Instant> = HashMap::new();
    while let Some(addr) = rx.recv().await {
        if asked.get(&addr).is_some_and(|t| t.elapsed() < RECENT) {
            continue;
        }
        if asked.len() > 1_000_000 {
            asked.retain(|_, t| t.elapsed() < RECENT);
        }
        let (sites, budget, names) = {
            let a = cluster.state.read_locked();
            let s = &a.state;
            let now = (s.clock_ms.max(0) / 1000) as u32;
            let names = s.policy.dnsbl.verify_client_names;
            if (s.policy.dnsbl.sites.is_empty() && !names) || s.dnsbl.fresh(addr, now) {
                continue;
            }
            let sites: Vec<Site> = s
                .policy
                .dnsbl
                .sites
                .iter()
                .filter_map(|t| Site::parse(t).ok())
                .filter(|site| !s.dnsbl.failing.contains_key(&site.zone))
                .collect();
            (sites, s.policy.dnsbl.daily_budget, names)
        };
        asked.insert(addr, Instant::now());
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (resolver, stats, out) = (resolver.clone(), stats.clone(), out.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut answers = vec![];
            let mut ttl = u32::MAX;
            for site in sites {
                if !stats.take(&site.zone, budget) {
                    continue;
                }
                let result = resolver.query(addr, &site.zone).await;
                let outcome = match &result {
                    Ok(a) if a.codes.is_empty() => "clean",
                    Ok(_) => "listed",
                    Err(_) => "error",
                };
                crate::metrics::node()
                    .dns_lookups
                    .add(1, &[kv("list", site.zone.clone()), kv("result", outcome)]);
                match result {
                    Ok(a) => {
                        ttl = ttl.min(a.ttl);
                        answers.push(Answer {
                            zone: site.zone,
                            codes: a.codes,
                            text: a.text,
                        });
                    }
                    Err(e) => stats.failed(&e),
                }
            }
            let mut verified_name = None;
            let mut checked = false;
            if names {
                stats.names.fetch_add(1, Ordering::Relaxed);
                match resolver.verified_name(addr).await {
                    Ok(n) => {
                        (ttl, verified_name, checked) = (ttl.min(n.ttl), n.name, true);
                    }
                    Err(e) => stats.failed(&e),
                }
            }
            if !answers.is_empty() || checked {
                out.push(Lookup {
                    addr,
                    answers,
                    ttl_secs: ttl,
                    verified_name,
                });
            }
        });
    }
}
