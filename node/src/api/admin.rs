//! The `Admin` gRPC service: status, bans, addresses and membership for mxrepctl and SOC tooling.
//!
//! Reads are answered from this node's applied state; writes go through the cluster handle, which
//! forwards them to the leader. Bad arguments are `InvalidArgument` with a message that names them.

use super::convert::{ban_to_pb, member_to_pb};
use super::requests::{audited, check_addr, who, write_status};
use super::roles::actor;
use crate::dns::lookups::DnsStats;
use crate::raft::{Cluster, ClusterOp, ClusterOpResult, MxNode};
use crate::state::{parse_prefix, parse_prefix_strict, BanChangeKind, BanSource, Command, Policy};
use mxrep_common::lock::RwLockExt as _;
use mxrep_common::telemetry::propagate;
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::admin_server::Admin;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

/// Longest manual ban accepted: ten years.
const MAX_BAN_SECONDS: u64 = 10 * 365 * 24 * 3600;

pub struct AdminService {
    cluster: Cluster,
    /// This node's DNS list query counters (None: no resolver).
    dns: Option<Arc<DnsStats>>,
}

impl AdminService {
    pub fn new(cluster: Cluster, dns: Option<Arc<DnsStats>>) -> Self {
        Self { cluster, dns }
    }

    fn read<T>(&self, f: impl FnOnce(&crate::raft::state_store::AppliedState) -> T) -> T {
        let guard = self.cluster.state.read_locked();
        f(&guard)
    }

    /// Records a change that is not a command (membership) in the audit trail; a failure to
    /// record is logged, the change stands.
    async fn audit_note(&self, actor: &str, what: String) {
        let note = audited(actor, Command::AuditNote(what));
        if let Err(e) = self.cluster.write(note).await {
            tracing::warn!("audit trail: membership change not recorded: {e}");
        }
    }

    fn membership_response(
        &self,
        r: ClusterOpResult,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        match r {
            ClusterOpResult::Membership { log_index, members } => {
                Ok(Response::new(pb::MembershipResponse {
                    log_index,
                    members: members
                        .iter()
                        .map(|(id, (n, voter))| member_to_pb(*id, n, *voter))
                        .collect(),
                }))
            }
            other => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(super::status::status(
            &self.cluster,
            self.dns.as_deref(),
        )))
    }

    async fn list_bans(
        &self,
        _: Request<pb::ListBansRequest>,
    ) -> Result<Response<pb::ListBansResponse>, Status> {
        Ok(Response::new(self.read(|a| pb::ListBansResponse {
            version: a.state.version,
            bans: a.state.bans.values().map(ban_to_pb).collect(),
        })))
    }

    async fn ban(&self, req: Request<pb::BanRequest>) -> Result<Response<pb::BanResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        // A caller's trace (SOC tooling, mxrepctl under OTEL_*) continues through the decision to
        // the agents' enforcement.
        let span = tracing::info_span!("admin.ban");
        propagate::parent_from(&span, req.metadata());
        let r = req.into_inner();
        let prefix =
            parse_prefix_strict(&r.prefix).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !r.force {
            let nodes: Vec<(u64, std::net::IpAddr)> = self
                .cluster
                .members()
                .into_iter()
                .flat_map(|(id, (n, _))| [n.peer_addr, n.api_addr].map(move |a| (id, a)))
                .filter_map(|(id, a)| {
                    let host = a.rsplit_once(':')?.0.trim_matches(['[', ']']).to_string();
                    Some((id, host.parse().ok()?))
                })
                .collect();
            if let Some(why) = self.read(|a| a.state.manual_ban_refusal(&prefix, &nodes)) {
                return Err(Status::failed_precondition(why));
            }
        }
        if r.duration_seconds == 0 || r.duration_seconds > MAX_BAN_SECONDS {
            return Err(Status::invalid_argument(format!(
                "ban duration must be between 1 s and {MAX_BAN_SECONDS} s, got {} s",
                r.duration_seconds
            )));
        }
        let reason = match r.reason.trim() {
            "" => "manual ban".to_string(),
            s => s.to_string(),
        };
        let command = audited(
            &actor,
            Command::Ban {
                prefix,
                duration_ms: r.duration_seconds * 1000,
                reason: reason.clone(),
                source: BanSource::Manual,
            },
        );
        let (_, response) = self
            .cluster
            .write(Command::traced(propagate::traceparent(&span), command))
            .instrument(span)
            .await
            .map_err(write_status)?;
        tracing::info!(%who, force = r.force, "manual ban of {prefix} for {} s: {reason}", r.duration_seconds);
        // The change carries the ban as the leader applied it; this node may not have yet.
        let ban = response
            .changes
            .iter()
            .rev()
            .find(|c| c.ban.prefix == prefix)
            .map(|c| ban_to_pb(&c.ban))
            .or_else(|| self.read(|a| a.state.bans.get(&prefix).map(ban_to_pb)));
        Ok(Response::new(pb::BanResponse {
            ban,
            version: response.version,
        }))
    }

    async fn unban(
        &self,
        req: Request<pb::UnbanRequest>,
    ) -> Result<Response<pb::UnbanResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        let r = req.into_inner();
        let prefix =
            parse_prefix(&r.prefix).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (_, response) = self
            .cluster
            .write(audited(&actor, Command::Unban { prefix }))
            .await
            .inspect(|_| tracing::info!(%who, "manual unban of {prefix}"))
            .map_err(write_status)?;
        let removed = response
            .changes
            .iter()
            .any(|c| c.ban.prefix == prefix && c.kind == BanChangeKind::Removed);
        Ok(Response::new(pb::UnbanResponse {
            removed,
            version: response.version,
        }))
    }

    async fn show_ip(
        &self,
        req: Request<pb::ShowIpRequest>,
    ) -> Result<Response<pb::ShowIpResponse>, Status> {
        let r = req.into_inner();
        self.read(|a| super::query::show_ip(&a.state, &r.address))
            .map(Response::new)
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        let r = req.into_inner();
        if r.id == 0 {
            return Err(Status::invalid_argument(
                "node id must be a positive integer",
            ));
        }
        check_addr("peer address", &r.peer_addr)?;
        check_addr("API address", &r.api_addr)?;
        let what = format!(
            "node {} (peer {}, API {}) added",
            r.id, r.peer_addr, r.api_addr
        );
        let op = ClusterOp::AddMember {
            id: r.id,
            node: MxNode {
                peer_addr: r.peer_addr,
                api_addr: r.api_addr,
            },
        };
        let res = self.cluster.execute(op).await.map_err(write_status)?;
        tracing::info!(%who, "{what}");
        self.audit_note(&actor, what).await;
        self.membership_response(res)
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        let id = req.into_inner().id;
        let res = self
            .cluster
            .execute(ClusterOp::RemoveMember { id })
            .await
            .map_err(write_status)?;
        tracing::info!(%who, "node {id} removed");
        self.audit_note(&actor, format!("node {id} removed")).await;
        self.membership_response(res)
    }

    async fn get_policy(
        &self,
        _: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::PolicyDocument>, Status> {
        Ok(Response::new(pb::PolicyDocument {
            toml: self.read(|a| a.state.policy.to_toml()),
        }))
    }

    async fn set_policy(
        &self,
        req: Request<pb::PolicyDocument>,
    ) -> Result<Response<pb::SetPolicyResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        let policy = Policy::from_toml(&req.into_inner().toml)
            .map_err(|e| Status::invalid_argument(format!("policy refused: {e}")))?;
        let (log_index, _) = self
            .cluster
            .write(audited(&actor, Command::SetPolicy(Box::new(policy))))
            .await
            .map_err(write_status)?;
        tracing::info!(%who, "policy replaced at log index {log_index}");
        Ok(Response::new(pb::SetPolicyResponse { log_index }))
    }

    async fn allow(
        &self,
        req: Request<pb::AllowRequest>,
    ) -> Result<Response<pb::AllowResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        let r = req.into_inner();
        let prefix =
            parse_prefix(&r.prefix).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (log_index, response) = self
            .cluster
            .write(audited(&actor, Command::Allow { prefix, add: r.add }))
            .await
            .map_err(write_status)?;
        let verb = if r.add { "added to" } else { "removed from" };
        tracing::info!(%who, "{prefix} {verb} the allowlist");
        let bans_lifted = response
            .changes
            .iter()
            .filter(|c| c.kind == BanChangeKind::Removed)
            .count() as u32;
        Ok(Response::new(pb::AllowResponse {
            log_index,
            bans_lifted,
        }))
    }

    async fn list_allow(
        &self,
        _: Request<pb::ListAllowRequest>,
    ) -> Result<Response<pb::ListAllowResponse>, Status> {
        Ok(Response::new(self.read(|a| {
            pb::ListAllowResponse {
                operator_entries: a.state.allow.iter().map(|p| p.to_string()).collect(),
                policy_entries: a
                    .state
                    .policy
                    .safety
                    .allow
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            }
        })))
    }

    async fn clear_observe_only(
        &self,
        req: Request<pb::ClearObserveOnlyRequest>,
    ) -> Result<Response<pb::ClearObserveOnlyResponse>, Status> {
        let who = who(&req);
        let actor = actor(&req);
        let (log_index, _) = self
            .cluster
            .write(audited(&actor, Command::ClearObserveOnly))
            .await
            .map_err(write_status)?;
        tracing::info!(%who, "observe-only cleared");
        Ok(Response::new(pb::ClearObserveOnlyResponse { log_index }))
    }

    async fn list_audit(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let since = req.into_inner().since_unix_ms;
        let entries = self.read(|a| crate::state::audit::since(&a.state.audit, since));
        Ok(Response::new(pb::ListAuditResponse {
            entries: entries.iter().map(super::convert::audit_to_pb).collect(),
        }))
    }

    async fn report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        super::report::report(&self.cluster, &req.into_inner()).map(Response::new)
    }
}
