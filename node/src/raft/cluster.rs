//! The cluster handle: how the API writes to the replicated state from any node.
//!
//! A write (a state-machine command or a membership change) is executed where the leader is. On a
//! follower the operation is forwarded over the peer port to the leader that openraft names; while
//! an election is under way the handle waits and retries, so no "not the leader" error reaches a
//! user while a leader can be found within the write deadline.
//!
//! The leader stamps every command with its wall-clock time when it proposes it: this is the
//! only clock the state machine ever sees (and it keeps that time monotone itself).

use super::ban_feed::Subscription;
use super::codec;
use super::greylist_feed::KeySubscription;
use super::network::PeerChannels;
use super::state_store::{SharedState, StateMachineStore};
use super::types::{MxNode, NodeId, Raft};
use crate::state::{Command, Request, Response};
use mxrep_proto::v1::RaftMessage;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a write may wait for a leader before it fails.
const WRITE_DEADLINE: Duration = Duration::from_secs(15);

/// An operation that must run on the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClusterOp {
    Write(Command),
    AddMember { id: NodeId, node: MxNode },
    RemoveMember { id: NodeId },
}

/// What a leader-side operation returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClusterOpResult {
    Written {
        log_index: u64,
        response: Response,
    },
    Membership {
        log_index: u64,
        members: BTreeMap<NodeId, (MxNode, bool)>,
    },
}

/// Why a leader-side operation did not run, as sent back to a forwarding follower.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("not the leader")]
    NotLeader { leader: Option<(NodeId, MxNode)> },
    #[error("{0}")]
    Failed(String),
}

/// Why a write failed, as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("no leader could be reached within {0:?}; is a majority of the cluster up?")]
    NoLeader(Duration),
    #[error("{0}")]
    Rejected(String),
}

/// A node's handle on the cluster.
#[derive(Clone)]
pub struct Cluster {
    pub id: NodeId,
    pub raft: Raft,
    pub state: SharedState,
    peers: PeerChannels,
    store: StateMachineStore,
    clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Cluster {
    pub fn new(id: NodeId, raft: Raft, store: StateMachineStore, peers: PeerChannels) -> Self {
        Self {
            id,
            raft,
            state: store.shared(),
            peers,
            store,
            clock: Default::default(),
        }
    }

    /// Follows the ban set from `from_version` (0: none held): a snapshot or the changes after
    /// it, then every change as this node applies it.
    pub fn subscribe_bans(&self, from_version: u64) -> Subscription {
        self.store.feed().subscribe(&self.state, from_version)
    }

    /// Calls `tap` with every address of every observation this node applies (the DNS lookups:
    /// the leader asks about each address once for the cluster). Set once; `tap` must not block.
    pub fn on_observed(&self, tap: impl Fn(std::net::IpAddr) + Send + Sync + 'static) {
        self.store.set_observed_tap(Box::new(tap));
    }

    /// Every remembered triplet key, then the keys of each sighting batch applied after.
    pub fn subscribe_greylist(&self) -> KeySubscription {
        self.store.greylist_feed().subscribe(&self.state)
    }

    /// Runs `op` on the leader, wherever it is, waiting through elections up to a deadline.
    pub async fn execute(&self, op: ClusterOp) -> Result<ClusterOpResult, WriteError> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        let mut pause = Duration::from_millis(20);
        let mut hint: Option<(NodeId, MxNode)> = None;
        for tries in 0u32.. {
            let (tried, attempt) = match &hint {
                Some((id, node)) if *id != self.id => (*id, self.forward(node, &op).await),
                _ => (self.id, self.execute_local(op.clone()).await),
            };
            match attempt {
                Ok(r) => return Ok(r),
                Err(ForwardError::Failed(msg)) => return Err(WriteError::Rejected(msg)),
                Err(ForwardError::NotLeader { leader }) => {
                    // A fresh hint is tried at once; without one, wait for the election.
                    let fresh = leader.is_some() && leader != hint;
                    hint = leader;
                    if Instant::now() >= deadline {
                        return Err(WriteError::NoLeader(WRITE_DEADLINE));
                    }
                    if !fresh || tries > 1 {
                        // Wait for the election's outcome (a leader other than the node just
                        // tried), at most `pause`: a new leader is tried the moment it is known.
                        let mut metrics = self.raft.metrics();
                        let elected =
                            metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != tried));
                        let _ = tokio::time::timeout(pause, elected).await;
                        pause = (pause * 2).min(Duration::from_millis(300));
                        if hint.is_none() {
                            hint = self.known_leader();
                        }
                    }
                }
            }
        }
        unreachable!("the attempt counter is unbounded")
    }

    /// Writes one state-machine command through the leader.
    pub async fn write(&self, command: Command) -> Result<(u64, Response), WriteError> {
        match self.execute(ClusterOp::Write(command)).await? {
            ClusterOpResult::Written {
                log_index,
                response,
            } => Ok((log_index, response)),
            other => Err(WriteError::Rejected(format!("unexpected answer {other:?}"))),
        }
    }

    fn known_leader(&self) -> Option<(NodeId, MxNode)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    /// Sends `op` to the leader's peer service.
    async fn forward(
        &self,
        leader: &MxNode,
        op: &ClusterOp,
    ) -> Result<ClusterOpResult, ForwardError> {
        let unreachable = |e: String| {
            tracing::debug!(leader = %leader, "forward failed: {e}");
            ForwardError::NotLeader { leader: None }
        };
        let mut client = self
            .peers
            .client(&leader.peer_addr)
            .map_err(|e| unreachable(e.to_string()))?;
        let payload = codec::encode(op).map_err(|e| ForwardError::Failed(e.to_string()))?;
        let fut = client.forward(RaftMessage { payload });
        let msg = match tokio::time::timeout(Duration::from_secs(5), fut).await {
            Err(_) => return Err(unreachable("timeout".into())),
            Ok(Err(s)) => return Err(unreachable(s.to_string())),
            Ok(Ok(r)) => r.into_inner(),
        };
        codec::decode::<Result<ClusterOpResult, ForwardError>>(&msg.payload)
            .map_err(|e| ForwardError::Failed(format!("bad answer from leader: {e}")))?
    }

    /// The leader's wall-clock time, never behind a time it stamped before.
    fn stamp(&self) -> i64 {
        let wall = mxrep_common::clock::unix_ms();
        let prev = self
            .clock
            .fetch_max(wall, std::sync::atomic::Ordering::SeqCst);
        prev.max(wall)
    }

    /// Runs `op` on this node, which must be the leader.
    pub async fn execute_local(&self, op: ClusterOp) -> Result<ClusterOpResult, ForwardError> {
        match op {
            ClusterOp::Write(command) => {
                let req = Request {
                    now_ms: self.stamp(),
                    command,
                };
                let r = self.raft.client_write(req).await.map_err(write_error)?;
                Ok(ClusterOpResult::Written {
                    log_index: r.log_id.index,
                    response: r.data,
                })
            }
            ClusterOp::AddMember { id, node } => {
                // Asked again by a restarted node: nothing to change.
                if self.members().get(&id) == Some(&(node.clone(), true)) {
                    let index = self
                        .raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .log_id()
                        .map_or(0, |l| l.index);
                    return Ok(self.membership_result(index));
                }
                self.raft
                    .add_learner(id, node, true)
                    .await
                    .map_err(write_error)?;
                let r = self
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(write_error)?;
                Ok(self.membership_result(r.log_id.index))
            }
            ClusterOp::RemoveMember { id } => {
                let m = self.raft.metrics().borrow().membership_config.clone();
                let change = if m.membership().voter_ids().any(|v| v == id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else if m.membership().get_node(&id).is_some() {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                } else {
                    return Err(ForwardError::Failed(format!("node {id} is not a member")));
                };
                let r = self
                    .raft
                    .change_membership(change, false)
                    .await
                    .map_err(write_error)?;
                Ok(self.membership_result(r.log_id.index))
            }
        }
    }

    fn membership_result(&self, log_index: u64) -> ClusterOpResult {
        ClusterOpResult::Membership {
            log_index,
            members: self.members(),
        }
    }

    /// Current members: id → (node, is voter).
    pub fn members(&self) -> BTreeMap<NodeId, (MxNode, bool)> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<NodeId> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, n)| (*id, (n.clone(), voters.contains(id))))
            .collect()
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, MxNode>>) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardError::NotLeader {
            leader: f.leader_id.zip(f.leader_node),
        },
        other => ForwardError::Failed(other.to_string()),
    }
}
