//! The agent's policy service as tests drive it: greylisting backed by a node, one RCPT request at
//! a time, answered as Postfix would be.

use mxrep_agent::enforce::view::BanView;
use mxrep_agent::sources::greylist::GreylistClient;
use mxrep_agent::sources::policy_server::PolicyService;

/// A policy service with greylisting against the node at `api`, on a runtime of its own.
pub struct PolicyClient {
    rt: tokio::runtime::Runtime,
    svc: PolicyService,
}

impl PolicyClient {
    pub fn greylisting(api: &str, mx_host: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let svc = {
            let _in_runtime = rt.enter();
            PolicyService {
                view: BanView::default(),
                uplink: None,
                greylist: Some(GreylistClient::start(vec![api.to_string()], mx_host.into())),
            }
        };
        Self { rt, svc }
    }

    /// The answer to one RCPT request from `client` (Postfix's client_name "unknown").
    pub fn rcpt(&self, client: &str) -> String {
        let attrs = [
            ("protocol_state", "RCPT"),
            ("client_address", client),
            ("client_name", "unknown"),
            ("sender", "a@b.test"),
            ("recipient", "c@mx.test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.rt.block_on(self.svc.answer(&attrs))
    }
}

/// One request to an agent's policy service at `listen` (Postfix's policy protocol over TCP) for
/// `client`; the `action=…` line it answers, or None while it does not answer.
pub fn ask_policy(listen: &str, client: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(listen).ok()?;
    write!(
        s,
        "request=smtpd_access_policy\nclient_address={client}\n\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}
