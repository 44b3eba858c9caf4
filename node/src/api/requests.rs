//! Small pieces the admin handlers share: who asked (for the change log), how a failed write
//! becomes a gRPC status, and the check of a `HOST:PORT` argument.

use crate::raft::WriteError;
use tonic::{Request, Status};

/// Who asked, for the log of administrative changes (the peer address until certificates say
/// more).
pub fn who<T>(req: &Request<T>) -> String {
    req.remote_addr()
        .map_or_else(|| "unknown".into(), |a| a.to_string())
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
