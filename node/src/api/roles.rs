//! Who may call what, from the client certificate. The role is the certificate's Subject
//! Organization (as Kubernetes maps O to groups): `mxrep:admin`, `mxrep:reader`, `mxrep:agent`
//! or `mxrep:node`. A client without a certificate from the CA never gets past the TLS handshake;
//! one whose role may not call a method gets `PERMISSION_DENIED` naming the roles that may.
//! Health checking and reflection are open to every authenticated client.
//!
//! [`RoleLayer`] wraps a whole tonic server (API or peer port), so no method can be added
//! without a rule: an unknown method is refused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a certificate lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Reader,
    Agent,
    Node,
}

impl Role {
    fn from_organization(o: &str) -> Option<Self> {
        Some(match o {
            "mxrep:admin" => Role::Admin,
            "mxrep:reader" => Role::Reader,
            "mxrep:agent" => Role::Agent,
            "mxrep:node" => Role::Node,
            _ => return None,
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "mxrep:admin",
            Role::Reader => "mxrep:reader",
            Role::Agent => "mxrep:agent",
            Role::Node => "mxrep:node",
        })
    }
}

/// Which port a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Api,
    Peer,
}

/// The roles that may call `path` (`/package.Service/Method`) on `port`; empty: any role.
pub fn allowed(port: Port, path: &str) -> Option<&'static [Role]> {
    use Role::*;
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
        return Some(&[]);
    }
    Some(match (port, service, method) {
        (Port::Peer, "mxrep.v1.Peer", _) => &[Node],
        (Port::Api, "mxrep.v1.Admin", m) => match m {
            "Status" | "ListBans" | "ShowIp" | "GetPolicy" | "ListAllow" | "ListAudit"
            | "Report" => &[Admin, Reader],
            // A node started with --join asks to be added with its own certificate.
            "AddMember" => &[Admin, Node],
            _ => &[Admin],
        },
        (Port::Api, "mxrep.v1.Query", _) => &[Admin, Reader],
        (Port::Api, "mxrep.v1.Agent", m) => match m {
            "WatchBans" => &[Agent, Reader, Admin],
            _ => &[Agent, Admin],
        },
        _ => return None,
    })
}

/// The role in a client certificate chain (leaf first), or why there is none.
pub fn role_of(chain: &[impl AsRef<[u8]>]) -> Result<(Role, String), String> {
    let leaf = chain.first().ok_or("no client certificate")?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    let subject = cert.subject().to_string();
    let role = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .find_map(Role::from_organization)
        .ok_or_else(|| {
            format!("the certificate '{subject}' names no mxrep role (O=mxrep:admin, mxrep:reader, mxrep:agent or mxrep:node)")
        })?;
    Ok((role, subject))
}

/// The check for one request: `Ok` to go on, or the status to answer.
fn check(port: Port, path: &str, chain: Option<&[impl AsRef<[u8]>]>) -> Result<(), Status> {
    let Some(roles) = allowed(port, path) else {
        return Err(Status::permission_denied(format!(
            "{path}: no such method on this port"
        )));
    };
    let chain = chain.ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let (role, subject) = role_of(chain).map_err(Status::permission_denied)?;
    if roles.is_empty() || roles.contains(&role) {
        return Ok(());
    }
    let need: Vec<String> = roles.iter().map(Role::to_string).collect();
    Err(Status::permission_denied(format!(
        "{path} needs the role {}; '{subject}' is {role}",
        need.join(" or ")
    )))
}

/// Who made `req`: its client certificate's subject, or "dev" without TLS.
pub fn actor<T>(req: &tonic::Request<T>) -> String {
    match req.peer_certs() {
        Some(chain) => role_of(&chain).map_or_else(|e| e, |(_, subject)| subject),
        None => "dev".into(),
    }
}

/// Wraps a server so every request is checked against its client certificate's role; without
/// TLS (`enforce: false`, `--dev` on loopback or `--insecure-plaintext`) every call passes.
#[derive(Debug, Clone, Copy)]
pub struct RoleLayer {
    pub port: Port,
    pub enforce: bool,
}

impl<S> tower::Layer<S> for RoleLayer {
    type Service = RoleCheck<S>;
    fn layer(&self, inner: S) -> RoleCheck<S> {
        RoleCheck {
            inner,
            layer: *self,
        }
    }
}

/// The service [`RoleLayer`] makes.
#[derive(Debug, Clone)]
pub struct RoleCheck<S> {
    inner: S,
    layer: RoleLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for RoleCheck<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let chain = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs());
        if self.layer.enforce {
            let chain = chain.as_deref().map(Vec::as_slice);
            if let Err(status) = check(self.layer.port, req.uri().path(), chain) {
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        // The clone that was made ready is the one that serves (tower's rule).
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(ready.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_rule() {
        use Role::*;
        assert_eq!(
            allowed(Port::Api, "/mxrep.v1.Admin/Ban"),
            Some(&[Admin][..])
        );
        assert_eq!(
            allowed(Port::Api, "/mxrep.v1.Admin/ShowIp"),
            Some(&[Admin, Reader][..])
        );
        assert_eq!(
            allowed(Port::Api, "/mxrep.v1.Agent/WatchBans"),
            Some(&[Agent, Reader, Admin][..])
        );
        assert_eq!(
            allowed(Port::Peer, "/mxrep.v1.Peer/Vote"),
            Some(&[Node][..])
        );
        assert_eq!(
            allowed(Port::Peer, "/mxrep.v1.Admin/Ban"),
            None,
            "not on the peer port"
        );
        assert_eq!(
            allowed(Port::Api, "/mxrep.v1.Peer/Vote"),
            None,
            "not on the API port"
        );
        assert_eq!(
            allowed(Port::Api, "/grpc.health.v1.Health/Check"),
            Some(&[][..])
        );
        assert_eq!(allowed(Port::Api, "garbage"), None);
    }

    #[test]
    fn no_certificate_or_no_role_is_refused() {
        let none: Option<&[Vec<u8>]> = None;
        let e = check(Port::Api, "/mxrep.v1.Admin/Status", none).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let junk = [vec![1u8, 2, 3]];
        let e = check(Port::Api, "/mxrep.v1.Admin/Status", Some(&junk[..])).unwrap_err();
        assert!(e.message().contains("unreadable"), "{}", e.message());
    }
}
