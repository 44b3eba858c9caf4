//! The policy service's line to the cluster for one greylisting question. It must never stall
//! Postfix: every question has a deadline ([`DEADLINE`]); when the cluster does not answer in
//! time the caller answers `DUNNO` (fail open), and for a moment ([`BACKOFF`]) this asks the
//! next node instead of waiting again. A cluster that says greylisting is off is not asked
//! again for [`OFF_FOR`].

use mxrep_common::clock::unix_ms;
use mxrep_common::lock::MutexExt as _;
use mxrep_proto::v1 as pb;
use pb::agent_client::AgentClient;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::Channel;

/// Longest a policy answer waits for the cluster.
pub const DEADLINE: Duration = Duration::from_millis(100);
/// After a failure, answers fail open without asking for this long.
const BACKOFF: Duration = Duration::from_secs(1);
/// After "greylisting is off", the cluster is not asked for this long.
const OFF_FOR: Duration = Duration::from_secs(10);

/// Why no reply came.
pub enum NoReply {
    /// Not asked: backing off after a failure, or greylisting is off.
    NotAsked,
    /// The request itself was refused as malformed (nothing wrong with the cluster).
    Malformed,
    /// The cluster failed or did not answer in time; why.
    Failed(String),
}

/// Asks the cluster's nodes in turn.
pub struct Asker {
    nodes: Vec<String>,
    /// The node asked now, and its channel (connected lazily).
    current: Mutex<(usize, Option<Channel>)>,
    ask_after_ms: AtomicI64,
}

impl Asker {
    pub fn new(nodes: Vec<String>) -> Self {
        Self {
            nodes,
            current: Mutex::new((0, None)),
            ask_after_ms: AtomicI64::new(0),
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

    fn hold_off(&self, d: Duration) {
        self.ask_after_ms
            .store(unix_ms() + d.as_millis() as i64, Ordering::Relaxed);
    }

    fn failed(&self, why: String) -> NoReply {
        let mut cur = self.current.locked();
        *cur = (cur.0.wrapping_add(1), None);
        drop(cur);
        self.hold_off(BACKOFF);
        NoReply::Failed(why)
    }

    /// The cluster's reply to `req`, within [`DEADLINE`].
    pub async fn ask(&self, req: pb::GreylistRequest) -> Result<pb::GreylistReply, NoReply> {
        if unix_ms() < self.ask_after_ms.load(Ordering::Relaxed) {
            return Err(NoReply::NotAsked);
        }
        let ch = self.channel().ok_or(NoReply::NotAsked)?;
        let mut client = AgentClient::new(ch);
        let call = client.check_greylist(req);
        match tokio::time::timeout(DEADLINE, call).await {
            Ok(Ok(r)) => {
                let reply = r.into_inner();
                if reply.action() == pb::GreylistAction::Disabled {
                    self.hold_off(OFF_FOR);
                }
                Ok(reply)
            }
            Ok(Err(s)) if s.code() == tonic::Code::InvalidArgument => Err(NoReply::Malformed),
            Ok(Err(s)) => Err(self.failed(format!("the cluster refused: {}", s.message()))),
            Err(_) => Err(self.failed(format!("no answer within {DEADLINE:?}"))),
        }
    }
}
