//! Manual bans are guarded like automatic ones, with an explicit way through (`--force`): a ban
//! broader than the policy's breadth limit, one covering an allowlisted prefix, or one covering
//! a cluster node's own address is refused with a message that says what it would cover. One
//! typo (`0.0.0.0/0`) must not drop every client on every MX host.

use super::ReputationState;
use ipnet::IpNet;
use std::net::IpAddr;

/// How many addresses `p` covers, in words.
fn breadth(p: &IpNet) -> String {
    let bits = p.max_prefix_len() - p.prefix_len();
    match (p, p.prefix_len()) {
        (IpNet::V4(_), 0) => "every IPv4 address".into(),
        (IpNet::V6(_), 0) => "every IPv6 address".into(),
        (_, _) if bits < 63 => format!("{} addresses", group(1u64 << bits)),
        _ => format!("2^{bits} addresses"),
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl ReputationState {
    /// Why a manual ban of `prefix` needs `--force`, if it does; `nodes` are the cluster's own
    /// addresses.
    pub fn manual_ban_refusal(&self, prefix: &IpNet, nodes: &[(u64, IpAddr)]) -> Option<String> {
        let s = &self.policy.safety;
        let (broadest, key) = match prefix {
            IpNet::V4(_) => (s.max_breadth_ipv4, "safety.max_breadth_ipv4"),
            IpNet::V6(_) => (s.max_breadth_ipv6, "safety.max_breadth_ipv6"),
        };
        if prefix.prefix_len() < broadest {
            return Some(format!(
                "{prefix} covers {}, broader than the breadth limit /{broadest} ({key}); add --force to ban it anyway",
                breadth(prefix)
            ));
        }
        let allowed = self
            .allow
            .iter()
            .chain(s.allow.iter())
            .find(|a| a.contains(prefix) || prefix.contains(*a));
        if let Some(a) = allowed {
            return Some(format!(
                "{prefix} covers allowlisted {a}; remove it from the allowlist or add --force"
            ));
        }
        if let Some((id, addr)) = nodes.iter().find(|(_, a)| prefix.contains(a)) {
            return Some(format!(
                "{prefix} covers {addr}, the address of cluster node {id}; add --force to ban it anyway"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Request};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn refusals_say_what_would_be_covered() {
        let mut s = ReputationState::default();
        s.apply(
            1,
            &Request {
                now_ms: 1,
                command: Command::Allow {
                    prefix: net("198.51.100.0/24"),
                    add: true,
                },
            },
        );
        let nodes = [(2, "10.0.0.12".parse().unwrap())];
        let r = |p: &str| s.manual_ban_refusal(&net(p), &nodes);
        assert!(r("0.0.0.0/0")
            .unwrap()
            .contains("covers every IPv4 address"));
        assert!(r("::/0").unwrap().contains("every IPv6 address"));
        let e = r("10.0.0.0/8").unwrap();
        assert!(
            e.contains("16,777,216 addresses") && e.contains("/24"),
            "{e}"
        );
        assert!(r("198.51.100.7/32")
            .unwrap()
            .contains("covers allowlisted 198.51.100.0/24"));
        assert!(r("10.0.0.0/24").unwrap().contains("cluster node 2"));
        assert_eq!(r("203.0.113.0/24"), None);
        assert_eq!(r("2001:db8::/48"), None);
        assert!(r("2001:db8::/32").unwrap().contains("2^96 addresses"));
    }
}
