//! Small pieces the admin handlers share: who asked (for the change log), how a failed write
//! becomes a gRPC status, and the check of a `HOST:PORT` argument.

use crate::raft::WriteError;
use crate::state::Command;
use tonic::{Request, Status};

/// Who asked, for the log of administrative changes: the certificate subject ("dev" without
/// TLS) and the peer address.
pub fn who<T>(req: &Request<T>) -> String {
    let addr = req
        .remote_addr()
        .map_or_else(|| "unknown".into(), |a| a.to_string());
    format!("{} from {addr}", super::roles::actor(req))
}

/// `command`, recorded in the audit trail as done by `actor`.
pub fn audited(actor: &str, command: Command) -> Command {
    Command::Audited {
        actor: actor.to_string(),
        command: Box::new(command),
    }
}

pub fn write_status(e: WriteError) -> Status {
    match e {
        WriteError::NoLeader(_) => Status::unavailable(e.to_string()),
        WriteError::Rejected(m) => Status::failed_precondition(m),
    }
}

pub fn check_addr(what: &str, addr: &str) -> Result<(), Status> {
    mxrep_common::addr::host_port(addr)
        .map(|_| ())
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}
