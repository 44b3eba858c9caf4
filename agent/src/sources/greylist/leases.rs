//! Per-client leases from the cluster's answers: for a few seconds after a reply said a client is
//! greylisted (not exempt), the agent may defer that client's never-seen triplets itself. A client
//! allowlisted or found not suspicious meanwhile is greylisted at most one lease longer.

use ipnet::IpNet;
use mxrep_common::lock::MutexExt as _;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Clients held at most; past it, expired leases go, and if none had expired, all do.
const MAX_CLIENTS: usize = 100_000;

/// What a lease lets the agent answer for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client network its triplets are grouped by.
    pub network: IpNet,
    /// The policy's delay, for the deferral text.
    pub delay_secs: u32,
}

struct Held {
    lease: Lease,
    /// The verified client name the reply was for (an allowlisted name must be asked about).
    client_name: String,
    until_ms: i64,
}

/// Leases by client address.
#[derive(Default)]
pub struct ClientLeases {
    held: Mutex<HashMap<IpAddr, Held>>,
}

impl ClientLeases {
    /// The lease for `addr` under `client_name`, if one is current at `now_ms`.
    pub fn get(&self, addr: IpAddr, client_name: &str, now_ms: i64) -> Option<Lease> {
        let held = self.held.locked();
        let h = held.get(&addr)?;
        (h.until_ms > now_ms && h.client_name == client_name).then(|| h.lease.clone())
    }

    /// Records a reply: a lease when the client is greylisted, none otherwise.
    pub fn put(&self, addr: IpAddr, client_name: &str, lease: Option<(Lease, u32)>, now_ms: i64) {
        let mut held = self.held.locked();
        let Some((lease, secs)) = lease.filter(|(_, secs)| *secs > 0) else {
            held.remove(&addr);
            return;
        };
        if held.len() >= MAX_CLIENTS {
            held.retain(|_, h| h.until_ms > now_ms);
            if held.len() >= MAX_CLIENTS {
                held.clear();
            }
        }
        let until_ms = now_ms + i64::from(secs) * 1000;
        let client_name = client_name.to_string();
        held.insert(
            addr,
            Held {
                lease,
                client_name,
                until_ms,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_for_its_time_and_its_name_only() {
        let l = ClientLeases::default();
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let lease = Lease {
            network: "192.0.2.0/24".parse().unwrap(),
            delay_secs: 300,
        };
        l.put(addr, "unknown", Some((lease.clone(), 10)), 1_000);
        assert_eq!(l.get(addr, "unknown", 10_999), Some(lease.clone()));
        assert_eq!(l.get(addr, "unknown", 11_000), None, "expired");
        assert_eq!(l.get(addr, "mx.example.org", 2_000), None, "another name");
        l.put(addr, "unknown", None, 2_000);
        assert_eq!(l.get(addr, "unknown", 2_001), None, "exempt now");
    }
}
