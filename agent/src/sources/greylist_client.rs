//! The policy service's line to the cluster for greylisting. It must never stall Postfix: every
//! question has a deadline ([`DEADLINE`]); when the cluster does not answer in time the policy
//! service answers `DUNNO` (fail open, as operators expect of a greylister), counts it and says
//! so in its log, and for a moment ([`BACKOFF`]) asks the next node instead of waiting again. A
//! cluster that says greylisting is off is not asked again for [`OFF_FOR`].

use mxrep_common::clock::unix_ms;
use mxrep_common::lock::MutexExt as _;
use mxrep_proto::v1 as pb;
use pb::agent_client::AgentClient;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::Channel;

/// Longest a policy answer waits for the cluster.
pub const DEADLINE: Duration = Duration::from_millis(100);
/// After a failure, answers fail open without asking for this long.
const BACKOFF: Duration = Duration::from_secs(1);
/// After "greylisting is off", the cluster is not asked for this long.
const OFF_FOR: Duration = Duration::from_secs(10);

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
    pub passed: AtomicU64,
    /// Answered DUNNO because the cluster did not answer in time.
    pub failed_open: AtomicU64,
}

/// Asks the cluster's nodes in turn.
pub struct GreylistClient {
    nodes: Vec<String>,
    mx_host: String,
    /// The node asked now, and its channel (connected lazily).
    current: Mutex<(usize, Option<Channel>)>,
    ask_after_ms: AtomicI64,
    pub stats: GreylistStats,
}

impl GreylistClient {
    pub fn new(nodes: Vec<String>, mx_host: String) -> Self {
        Self {
            nodes,
            mx_host,
            current: Mutex::new((0, None)),
            ask_after_ms: AtomicI64::new(0),
            stats: GreylistStats::default(),
        }
    }

    fn channel(&self) -> Option<Channel> {
        let mut cur = self.current.locked();
        if cur.1.is_none() {
            let addr = self.nodes.get(cur.0 % self.nodes.len().max(1))?;
            cur.1 = Some(mxrep_common::endpoint::endpoint(addr).ok()?.connect_lazy());
        }
        cur.1.clone()
    }

    fn failed(&self, why: &str) {
        let n = self.stats.failed_open.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!("greylisting: {why}; answering DUNNO (fail open), {n} times so far");
        }
        let mut cur = self.current.locked();
        *cur = (cur.0.wrapping_add(1), None);
        self.ask_after_ms
            .store(unix_ms() + BACKOFF.as_millis() as i64, Ordering::Relaxed);
    }

    /// The greylisting verdict for one RCPT request; never waits longer than [`DEADLINE`].
    pub async fn check(
        &self,
        client: &str,
        client_name: &str,
        sender: &str,
        recipient: &str,
    ) -> Verdict {
        if unix_ms() < self.ask_after_ms.load(Ordering::Relaxed) {
            return Verdict::Dunno;
        }
        let Some(ch) = self.channel() else {
            return Verdict::Dunno;
        };
        let req = pb::GreylistRequest {
            client_address: client.into(),
            client_name: client_name.into(),
            sender: sender.into(),
            recipient: recipient.into(),
            mx_host: self.mx_host.clone(),
        };
        let mut client = AgentClient::new(ch);
        let call = client.check_greylist(req);
        let reply = match tokio::time::timeout(DEADLINE, call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(s)) if s.code() == tonic::Code::InvalidArgument => return Verdict::Dunno,
            Ok(Err(s)) => {
                self.failed(&format!("the cluster refused: {}", s.message()));
                return Verdict::Dunno;
            }
            Err(_) => {
                self.failed(&format!("no answer within {DEADLINE:?}"));
                return Verdict::Dunno;
            }
        };
        match reply.action() {
            pb::GreylistAction::Defer => {
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                Verdict::Defer(format!("Greylisted by mxrep: {}", clean(&reply.reason)))
            }
            pb::GreylistAction::Disabled => {
                self.ask_after_ms
                    .store(unix_ms() + OFF_FOR.as_millis() as i64, Ordering::Relaxed);
                Verdict::Dunno
            }
            _ => {
                self.stats.passed.fetch_add(1, Ordering::Relaxed);
                Verdict::Dunno
            }
        }
    }
}

/// A reason safe to put in a policy answer: one line, printable, bounded.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}
