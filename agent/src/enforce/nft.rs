//! nftables enforcement: the `nft` binary fed its native syntax on stdin (`nft -f -`), one
//! process and one kernel transaction per batch of changes, plus a netlink fast path for new
//! bans.
//!
//! Chosen by measuring (BENCHMARKS.md, `agent-bench`): `nft -f -` batches any number of changes
//! atomically with the least code of ours and loads 100k elements as fast as a plain `nft -f`
//! script; but nft 1.0.6 reads back every interval set of the table before any element update,
//! so one more ban took tens to hundreds of milliseconds once `ban4net` held prefixes. New bans —
//! the updates that must be fast — therefore go straight to the kernel as one `NEWSETELEM`
//! netlink batch per set ([`super::netlink`]): microseconds for an address, well under a
//! millisecond for a prefix, whatever the sets hold. Refreshes, removals, reconciles and the
//! table itself stay with `nft -f -`. (The `nftables` crate drives the same `nft` binary through
//! JSON, so it would share the read-back.)
//!
//! Layout (docs/ARCHITECTURE.md): table `inet <name>` with sets `ban4`, `ban6` (timeout), `ban4net`,
//! `ban6net` (interval, timeout), `allow4`, `allow6` (interval), and a `prerouting` chain at raw
//! priority that drops packets to the protected ports from banned sources unless allowed, with
//! counters. Nothing else of the host's ruleset is touched.

use super::local_rate::local_rate_script;
use super::netlink::{Elem, NftNetlink};
use super::nft_list::parse_set_json;
use super::{within_agent_limit, BanOp, Enforcer};
use anyhow::{bail, Context};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

pub struct NftEnforcer {
    pub table: String,
    pub ports: Vec<u16>,
    /// Command that runs nft (argv), e.g. `["nft"]` or `["ip", "netns", "exec", "mx1", "nft"]`.
    pub nft: Vec<String>,
    /// Network namespace (name under /var/run/netns) to work in; None: the agent's own.
    pub netns: Option<String>,
    /// Netlink socket for the fast path of new bans (opened on first use).
    netlink: Option<NftNetlink>,
    /// Batches netlink refused and `nft -f -` took over (e.g. overlapping intervals).
    pub netlink_fallbacks: u64,
    /// `--local-rate`: a per-address meter dropping the 4th new connection within 60 s, on this
    /// host alone, before the cluster decides.
    pub local_rate: bool,
}

/// The set an entry belongs in.
pub fn set_of(p: &IpNet) -> &'static str {
    match p {
        IpNet::V4(n) if n.prefix_len() == 32 => "ban4",
        IpNet::V4(_) => "ban4net",
        IpNet::V6(n) if n.prefix_len() == 128 => "ban6",
        IpNet::V6(_) => "ban6net",
    }
}

/// An element as nft syntax: a bare address for a host entry, CIDR otherwise.
fn elem(p: &IpNet) -> String {
    if p.prefix_len() == p.max_prefix_len() {
        p.addr().to_string()
    } else {
        p.to_string()
    }
}

impl NftEnforcer {
    pub fn new(table: &str, ports: &[u16]) -> Self {
        Self {
            table: table.into(),
            ports: ports.to_vec(),
            nft: vec!["nft".into()],
            netns: None,
            netlink: None,
            netlink_fallbacks: 0,
            local_rate: false,
        }
    }

    /// True once new bans go over netlink (the fast path is working).
    pub fn uses_netlink(&self) -> bool {
        self.netlink.is_some()
    }

    /// Works inside network namespace `ns` (tests, benchmarks).
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.nft = vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            ns.into(),
            "nft".into(),
        ];
        self.netns = Some(ns.into());
        self
    }

    /// A netlink socket where this enforcer works. Another namespace than the agent's own is
    /// for tests and benchmarks only (feature `test-netns`); without it they use `nft` alone.
    fn open_netlink(&self) -> std::io::Result<NftNetlink> {
        #[cfg(feature = "test-netns")]
        return NftNetlink::open_in(self.netns.as_deref());
        #[cfg(not(feature = "test-netns"))]
        match self.netns {
            None => NftNetlink::open(),
            Some(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "netlink into another namespace needs the test-netns feature",
            )),
        }
    }

    /// New bans over netlink: one transaction per set. Returns the ops it did not take
    /// (everything, if netlink is unavailable or refuses), for `nft -f -`.
    fn fast_adds(&mut self, ops: Vec<BanOp>) -> Vec<BanOp> {
        let (fast, rest): (Vec<BanOp>, Vec<BanOp>) = ops
            .into_iter()
            .partition(|op| matches!(op, BanOp::Add { .. }));
        if fast.is_empty() {
            return rest;
        }
        if self.netlink.is_none() {
            match self.open_netlink() {
                Ok(n) => self.netlink = Some(n),
                Err(e) => {
                    tracing::warn!("netlink unavailable ({e}); using nft for every update");
                    return fast.into_iter().chain(rest).collect();
                }
            }
        }
        let nl = self.netlink.as_mut().expect("opened above");
        let mut left = rest;
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            let mine: Vec<&BanOp> = fast
                .iter()
                .filter(|op| matches!(op, BanOp::Add { prefix, .. } if set_of(prefix) == set))
                .collect();
            let elems: Vec<Elem> = mine
                .iter()
                .flat_map(|op| match op {
                    BanOp::Add {
                        prefix,
                        timeout_secs,
                    } => {
                        let ms = (*timeout_secs).max(1) * 1000;
                        if prefix.prefix_len() == prefix.max_prefix_len() {
                            vec![Elem::address(prefix.addr(), ms)]
                        } else {
                            Elem::prefix(prefix, ms)
                        }
                    }
                    _ => vec![],
                })
                .collect();
            if let Err(e) = nl.add(&self.table, set, &elems) {
                // An overlapping interval, say: nft knows how to merge; let it.
                tracing::debug!("netlink add to {set} refused ({e}); retrying with nft");
                self.netlink_fallbacks += 1;
                left.extend(mine.into_iter().cloned());
            }
        }
        left
    }

    /// Runs `nft -f -` with `script` as one transaction.
    pub fn run_script(&self, script: &str) -> anyhow::Result<()> {
        let mut child = Command::new(&self.nft[0])
            .args(&self.nft[1..])
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.nft.join(" ")))?;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(script.as_bytes())
            .context("writing to nft")?;
        let out = child.wait_with_output().context("waiting for nft")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!(
                "nft refused the update: {}",
                err.lines().next().unwrap_or("").trim()
            );
        }
        Ok(())
    }

    /// Runs nft with `args`, returning stdout.
    fn query(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.nft[0])
            .args(&self.nft[1..])
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", self.nft.join(" ")))?;
        if !out.status.success() {
            bail!(
                "nft {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Elements of one set with their remaining seconds (None: no timeout).
    pub fn list_set(&self, set: &str) -> anyhow::Result<BTreeMap<IpNet, Option<u64>>> {
        let text = self.query(&["-j", "list", "set", "inet", &self.table, set])?;
        parse_set_json(&text)
    }

    fn ports(&self) -> String {
        let p: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        format!("{{ {} }}", p.join(", "))
    }

    fn local_rate_script(&self) -> String {
        local_rate_script(&self.table, &self.ports(), self.local_rate)
    }

    fn add_line(&self, p: &IpNet, timeout_secs: u64) -> String {
        format!(
            "add element inet {} {} {{ {} timeout {}s }}\n",
            self.table,
            set_of(p),
            elem(p),
            timeout_secs.max(1)
        )
    }

    fn delete_line(&self, p: &IpNet) -> String {
        format!(
            "delete element inet {} {} {{ {} }}\n",
            self.table,
            set_of(p),
            elem(p)
        )
    }

    /// Script lines for one op. A new ban is a plain add: the fast path, which needs nothing
    /// read back from the kernel. A refresh and a removal first make sure the element exists
    /// (adding an existing element is a no-op), so the transaction never fails on an element
    /// that already expired in the kernel, and the delete-then-add sets the new timeout on
    /// kernels where a plain add would not refresh it.
    fn op_lines(&self, op: &BanOp) -> String {
        match op {
            BanOp::Add {
                prefix,
                timeout_secs,
            } => self.add_line(prefix, *timeout_secs),
            BanOp::Refresh {
                prefix,
                timeout_secs,
            } => format!(
                "{}{}{}",
                self.add_line(prefix, *timeout_secs),
                self.delete_line(prefix),
                self.add_line(prefix, *timeout_secs)
            ),
            BanOp::Remove { prefix } => {
                format!("{}{}", self.add_line(prefix, 1), self.delete_line(prefix))
            }
        }
    }
}

impl Enforcer for NftEnforcer {
    fn setup(&mut self) -> anyhow::Result<()> {
        let t = &self.table;
        let ports = self.ports();
        let script = format!(
            "add table inet {t}\n\
             add set inet {t} ban4 {{ type ipv4_addr; flags timeout; }}\n\
             add set inet {t} ban6 {{ type ipv6_addr; flags timeout; }}\n\
             add set inet {t} ban4net {{ type ipv4_addr; flags interval, timeout; }}\n\
             add set inet {t} ban6net {{ type ipv6_addr; flags interval, timeout; }}\n\
             add set inet {t} allow4 {{ type ipv4_addr; flags interval; }}\n\
             add set inet {t} allow6 {{ type ipv6_addr; flags interval; }}\n\
             add chain inet {t} prerouting {{ type filter hook prerouting priority raw; policy accept; }}\n\
             flush chain inet {t} prerouting\n\
             add rule inet {t} prerouting tcp dport {ports} ip saddr @allow4 accept\n\
             add rule inet {t} prerouting tcp dport {ports} ip6 saddr @allow6 accept\n\
             add rule inet {t} prerouting tcp dport {ports} ip saddr @ban4 counter drop\n\
             add rule inet {t} prerouting tcp dport {ports} ip saddr @ban4net counter drop\n\
             add rule inet {t} prerouting tcp dport {ports} ip6 saddr @ban6 counter drop\n\
             add rule inet {t} prerouting tcp dport {ports} ip6 saddr @ban6net counter drop\n"
        );
        self.run_script(&format!("{script}{}", self.local_rate_script()))
    }

    fn apply(&mut self, ops: &[BanOp]) -> anyhow::Result<()> {
        let allowed: Vec<BanOp> = ops
            .iter()
            .filter(|op| {
                let (BanOp::Add { prefix, .. }
                | BanOp::Refresh { prefix, .. }
                | BanOp::Remove { prefix }) = op;
                let ok = within_agent_limit(prefix);
                if !ok {
                    tracing::warn!(
                        "refusing {prefix}: broader than this agent's limit (/16, IPv6 /32)"
                    );
                }
                ok
            })
            .cloned()
            .collect();
        let ops = self.fast_adds(allowed);
        let mut script = String::new();
        for op in &ops {
            script.push_str(&self.op_lines(op));
        }
        if script.is_empty() {
            return Ok(());
        }
        self.run_script(&script)
    }

    fn intact(&self) -> anyhow::Result<bool> {
        let chain = match self.query(&["list", "chain", "inet", &self.table, "prerouting"]) {
            Ok(text) => text,
            Err(e) if format!("{e:#}").contains("No such file") => return Ok(false),
            Err(e) => return Err(e),
        };
        let rules = [
            "@allow4 accept",
            "@allow6 accept",
            "@ban4 ",
            "@ban4net ",
            "@ban6 ",
            "@ban6net ",
        ];
        Ok(rules.iter().all(|r| chain.contains(r)))
    }

    fn current(&self) -> anyhow::Result<Vec<(IpNet, u64)>> {
        let mut out = Vec::new();
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            for (p, left) in self.list_set(set)? {
                out.push((p, left.unwrap_or(0)));
            }
        }
        Ok(out)
    }

    fn reconcile(&mut self, desired: &[(IpNet, u64)]) -> anyhow::Result<()> {
        let want: BTreeMap<IpNet, u64> = desired
            .iter()
            .filter(|(p, _)| {
                let ok = within_agent_limit(p);
                if !ok {
                    tracing::warn!("refusing {p}: broader than this agent's limit (/16, IPv6 /32)");
                }
                ok
            })
            .cloned()
            .collect();
        let mut script = String::new();
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            let have = self.list_set(set)?;
            for (p, left) in &have {
                match want.get(p) {
                    None => script.push_str(&self.delete_line(p)),
                    // Refresh only what is off by more than a couple of seconds.
                    Some(t) if left.is_none_or(|l| l.abs_diff(*t) > 2) => {
                        script.push_str(&self.delete_line(p));
                        script.push_str(&self.add_line(p, *t));
                    }
                    Some(_) => {}
                }
            }
            // New elements of a set go into one statement: nft parses it much faster.
            let new: Vec<String> = want
                .iter()
                .filter(|(p, _)| set_of(p) == set && !have.contains_key(p))
                .map(|(p, t)| format!("{} timeout {}s", elem(p), (*t).max(1)))
                .collect();
            for chunk in new.chunks(10_000) {
                script.push_str(&format!(
                    "add element inet {} {set} {{ {} }}\n",
                    self.table,
                    chunk.join(", ")
                ));
            }
        }
        if script.is_empty() {
            return Ok(());
        }
        self.run_script(&script)
    }
}
