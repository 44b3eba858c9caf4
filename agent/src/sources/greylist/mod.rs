//! Greylisting in the policy service, answered for the whole fleet.
//!
//! A never-seen triplet of a client the cluster greylists is answered here, at once: a deferral,
//! reported to the cluster in the background. That needs two things from the cluster, and
//! without either the request is asked of a node as before: a current lease on the client
//! (from a recent reply: the client is greylisted, its network, the delay — [`leases`]) and the
//! complete, live set of triplet keys the cluster remembers ([`known`]). Everything else — a
//! retry, a triplet that passed, a client not seen for a while — is asked of a node
//! ([`ask`]), with a deadline; when the cluster is away the answer is `DUNNO` (fail open), and
//! the log and counters say so.
//!
//! - [`ask`]: one question to a node, with deadline and backoff;
//! - [`known`]: the followed set of remembered triplet keys;
//! - [`leases`]: per-client leases from the replies;
//! - [`report`]: sightings answered here, sent to the cluster in batches.

pub mod ask;
pub mod known;
pub mod leases;
pub mod report;

use ask::{Asker, NoReply};
use known::KnownTriplets;
use leases::{ClientLeases, Lease};
use mxrep_common::clock::unix_ms;
use mxrep_common::triplet::triplet_key;
use mxrep_proto::v1 as pb;
use report::SightingReporter;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use ask::DEADLINE;

/// What greylisting says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to add (off, passed, allowlisted, or the cluster away: fail open).
    Dunno,
    /// Refuse temporarily, with this text.
    Defer(String),
}

/// Counters an operator (and a test) can read.
#[derive(Debug, Default)]
pub struct GreylistStats {
    pub deferred: AtomicU64,
    /// Of those, answered here without asking (a never-seen triplet of a leased client).
    pub deferred_here: AtomicU64,
    pub passed: AtomicU64,
    /// Answered DUNNO because the cluster did not answer in time.
    pub failed_open: AtomicU64,
}

/// Greylisting for one agent.
pub struct GreylistClient {
    mx_host: String,
    asker: Asker,
    known: Arc<KnownTriplets>,
    leases: ClientLeases,
    reporter: SightingReporter,
    pub stats: GreylistStats,
}

impl GreylistClient {
    /// Starts following the cluster's triplet keys and reporting sightings (needs a runtime).
    pub fn start(nodes: Vec<String>, mx_host: String) -> Arc<Self> {
        let known = Arc::new(KnownTriplets::default());
        if !nodes.is_empty() {
            let (k, n, h) = (known.clone(), nodes.clone(), mx_host.clone());
            tokio::spawn(async move {
                mxrep_common::backoff::reconnect_forever("greylisting keys", &n, |addr| {
                    let (k, h, addr) = (k.clone(), h.clone(), addr.to_string());
                    async move { k.follow(&addr, &h).await }
                })
                .await
            });
        }
        Arc::new(Self {
            reporter: SightingReporter::start(nodes.clone(), mx_host.clone()),
            asker: Asker::new(nodes),
            mx_host,
            known,
            leases: ClientLeases::default(),
            stats: GreylistStats::default(),
        })
    }

    /// The followed set of remembered triplet keys.
    pub fn known(&self) -> &KnownTriplets {
        &self.known
    }

    /// Sightings reported or lost.
    pub fn reported(&self) -> &report::ReportStats {
        &self.reporter.stats
    }

    /// The greylisting verdict for one RCPT request; never waits longer than [`DEADLINE`].
    pub async fn check(
        &self,
        client: &str,
        client_name: &str,
        sender: &str,
        recipient: &str,
    ) -> Verdict {
        let addr = client.trim().parse::<IpAddr>().ok();
        if let Some(v) = addr.and_then(|a| self.answer_here(a, client_name, sender, recipient)) {
            decided("defer", "agent");
            return v;
        }
        let req = pb::GreylistRequest {
            client_address: client.into(),
            client_name: client_name.into(),
            sender: sender.into(),
            recipient: recipient.into(),
            mx_host: self.mx_host.clone(),
        };
        let reply = match self.asker.ask(req).await {
            Ok(r) => r,
            Err(NoReply::Failed(why)) => {
                let n = self.stats.failed_open.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(
                        "greylisting: {why}; answering DUNNO (fail open), {n} times so far"
                    );
                }
                decided("fail_open", "agent");
                return Verdict::Dunno;
            }
            Err(_) => {
                decided("fail_open", "agent");
                return Verdict::Dunno;
            }
        };
        if let Some(a) = addr {
            let lease = (reply.client_greylisted)
                .then(|| reply.network.parse().ok())
                .flatten()
                .map(|network| {
                    let delay_secs = reply.delay_seconds;
                    (
                        Lease {
                            network,
                            delay_secs,
                        },
                        reply.lease_seconds,
                    )
                });
            self.leases.put(a, client_name, lease, unix_ms());
        }
        match reply.action() {
            pb::GreylistAction::Defer => {
                decided("defer", "cluster");
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                Verdict::Defer(format!("Greylisted by mxrep: {}", clean(&reply.reason)))
            }
            pb::GreylistAction::Pass => {
                decided("pass", "cluster");
                self.stats.passed.fetch_add(1, Ordering::Relaxed);
                Verdict::Dunno
            }
            _ => Verdict::Dunno,
        }
    }

    /// A deferral for a never-seen triplet of a leased client, when the key set is live.
    fn answer_here(&self, addr: IpAddr, name: &str, sender: &str, rcpt: &str) -> Option<Verdict> {
        let lease = self.leases.get(addr, name, unix_ms())?;
        let key = triplet_key(&lease.network, sender, rcpt);
        if !self.known.insert_if_new(key)? {
            return None;
        }
        self.reporter.push(key, lease.network.to_string());
        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
        self.stats.deferred_here.fetch_add(1, Ordering::Relaxed);
        let delay = lease.delay_secs;
        Some(Verdict::Defer(format!(
            "Greylisted by mxrep: first delivery attempt, retry in {delay} s"
        )))
    }
}

/// A reason safe to put in a policy answer: one line, printable, bounded.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Counts one greylisting decision.
fn decided(decision: &'static str, by: &'static str) {
    crate::metrics::agent().greylist_decisions.add(
        1,
        &[
            mxrep_common::telemetry::instruments::kv("decision", decision),
            mxrep_common::telemetry::instruments::kv("by", by),
        ],
    );
}
