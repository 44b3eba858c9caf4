//! nftables enforcement over netlink ([`super::netlink`]): every change — the table, new bans,
//! refreshes, removals, reconciles, reading the sets back — is one nf_tables transaction sent
//! straight to the kernel, so no `nft` binary is needed and a change costs the same whatever
//! the sets hold (BENCHMARKS.md, "Enforcement over netlink").
//!
//! Layout (docs/ARCHITECTURE.md): table `inet <name>` with sets `ban4`, `ban6` (timeout),
//! `ban4net`, `ban6net` (interval, timeout), `allow4`, `allow6` (interval), and a `prerouting`
//! chain at raw priority that drops packets to the protected ports from banned sources unless
//! allowed, with counters. Nothing else of the host's ruleset is touched.

use super::netlink::elements::{self, Elem};
use super::netlink::objects::{self, CHAIN, SETS};
use super::netlink::wire::{msg, Attrs, Batch};
use super::netlink::{exprs, NftNetlink};
use super::{within_agent_limit, BanOp, DropCounters, Enforcer};
use anyhow::Context;
use ipnet::IpNet;
use mxrep_common::lock::MutexExt as _;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Enforces into table `inet <table>` of the agent's network namespace (or a test's).
pub struct NftEnforcer {
    pub table: String,
    pub ports: Vec<u16>,
    /// Network namespace (name under /var/run/netns) to work in; None: the agent's own.
    pub netns: Option<String>,
    /// The netlink socket, opened on first use and again after a failed transaction.
    netlink: Mutex<Option<NftNetlink>>,
    /// `--local-rate`: a per-address meter dropping the 4th new connection within 60 s, on this
    /// host alone, before the cluster decides.
    pub local_rate: bool,
    /// Whether the ban sets count per element (false once a table made without counters was
    /// found: the kernel will not add them to an existing set).
    counters: bool,
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

fn is_interval(set: &str) -> bool {
    set.ends_with("net") || set.starts_with("allow")
}

/// The elements of ban `p` in its set, ending in `secs`.
fn elems(p: &IpNet, secs: u64) -> Vec<Elem> {
    Elem::of(p, is_interval(set_of(p)), secs.max(1) * 1000)
}

fn within_limit(p: &IpNet) -> bool {
    let ok = within_agent_limit(p);
    if !ok {
        tracing::warn!("refusing {p}: broader than this agent's limit (/16, IPv6 /32)");
    }
    ok
}

impl NftEnforcer {
    pub fn new(table: &str, ports: &[u16]) -> Self {
        Self {
            table: table.into(),
            ports: ports.to_vec(),
            netns: None,
            netlink: Mutex::new(None),
            local_rate: false,
            counters: true,
        }
    }

    /// Works inside network namespace `ns` (tests and benchmarks, feature `test-netns`).
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }

    fn open(&self) -> std::io::Result<NftNetlink> {
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

    /// Runs `f` on the socket (opened if needed); a failure closes it, so no stale answer of
    /// a failed transaction is read as the next one's.
    fn with_socket<T>(
        &self,
        f: impl FnOnce(&mut NftNetlink) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut slot = self.netlink.locked();
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        let r = f(slot.as_mut().expect("opened above"));
        if r.is_err() {
            *slot = None;
        }
        r
    }

    /// Builds one batch with `build` and commits it.
    fn transact(&self, build: impl FnOnce(&mut Batch)) -> anyhow::Result<()> {
        self.with_socket(|s| {
            let mut b = Batch::new(s.next_seq());
            build(&mut b);
            s.transact(b)
        })
        .context("nftables refused the update")
    }

    /// Adds what one op does to a batch. A refresh and a removal first make sure the element
    /// exists (adding an existing element is a no-op), so the transaction never fails on an
    /// element that already expired in the kernel; the delete-then-add sets the new timeout.
    fn op(&self, b: &mut Batch, op: &BanOp) {
        let t = &self.table;
        match op {
            BanOp::Add {
                prefix,
                timeout_secs,
            } => elements::add(b, t, set_of(prefix), &elems(prefix, *timeout_secs)),
            BanOp::Refresh {
                prefix,
                timeout_secs,
            } => {
                let e = elems(prefix, *timeout_secs);
                elements::add(b, t, set_of(prefix), &e);
                elements::delete(b, t, set_of(prefix), &e);
                elements::add(b, t, set_of(prefix), &e);
            }
            BanOp::Remove { prefix } => {
                let e = elems(prefix, 1);
                elements::add(b, t, set_of(prefix), &e);
                elements::delete(b, t, set_of(prefix), &e);
            }
        }
    }

    /// The elements of `set` with seconds left (None: no timeout), read from the kernel.
    pub fn list_set(&self, set: &str) -> anyhow::Result<BTreeMap<IpNet, Option<u64>>> {
        let bodies = self
            .with_socket(|s| s.dump(msg::GETSETELEM, elements::dump_request(&self.table, set)))
            .with_context(|| format!("cannot read set {set} of table inet {}", self.table))?;
        Ok(elements::parse_dump(&bodies, is_interval(set)))
    }

    /// Dumps `kind` for this table (and `chain`); None when the table or chain is gone.
    fn dump_table(&self, kind: u16, chain: Option<&str>) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
        let mut a = Attrs::new().str(1, &self.table);
        if let Some(c) = chain {
            a = a.str(2, c);
        }
        match self.with_socket(|s| s.dump(kind, a)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e).context("cannot read the nftables table"),
        }
    }
}

impl Enforcer for NftEnforcer {
    fn setup(&mut self) -> anyhow::Result<()> {
        let (t, ports, rate) = (self.table.clone(), self.ports.clone(), self.local_rate);
        let first = self.transact(|b| objects::setup(b, &t, &ports, rate, self.counters));
        let exists = first.as_ref().err().and_then(|e| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.raw_os_error())
        }) == Some(libc::EEXIST);
        if !(exists && self.counters) {
            return first;
        }
        self.counters = false;
        tracing::warn!(
            "the ban sets of table inet {t} were made without per-ban counters: drops are counted per set only (delete the table while the agent is stopped to get them)"
        );
        self.transact(|b| objects::setup(b, &t, &ports, rate, false))
    }

    fn drop_counts(&self) -> anyhow::Result<Option<DropCounters>> {
        let mut out = DropCounters::default();
        for body in self
            .dump_table(msg::GETRULE, Some(CHAIN))?
            .unwrap_or_default()
        {
            let Some(e) = body.get(4..).and_then(|a| super::netlink::wire::find(a, 4)) else {
                continue;
            };
            if exprs::looked_up_sets(e)
                .iter()
                .any(|s| s.starts_with("ban"))
            {
                out.total += exprs::counted_packets(e).unwrap_or(0);
            }
        }
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            let bodies = self
                .with_socket(|s| s.dump(msg::GETSETELEM, elements::dump_request(&self.table, set)))
                .with_context(|| format!("cannot read set {set}"))?;
            for (p, info) in elements::parse_entries(&bodies, is_interval(set)) {
                if let Some(n) = info.packets.filter(|n| *n > 0) {
                    out.by_ban.insert(p, n);
                }
            }
        }
        Ok(Some(out))
    }

    fn apply(&mut self, ops: &[BanOp]) -> anyhow::Result<()> {
        let ops: Vec<&BanOp> = ops
            .iter()
            .filter(|op| {
                let (BanOp::Add { prefix, .. }
                | BanOp::Refresh { prefix, .. }
                | BanOp::Remove { prefix }) = op;
                within_limit(prefix)
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let all = self.transact(|b| ops.iter().for_each(|op| self.op(b, op)));
        if all.is_ok() || ops.len() == 1 {
            return all;
        }
        // One op the kernel refuses (an interval overlapping one already there, say) must not
        // hold back the others: apply them one by one and report the refused.
        let refused: Vec<String> = ops
            .iter()
            .filter_map(|op| {
                self.transact(|b| self.op(b, op))
                    .err()
                    .map(|e| format!("{op:?}: {e:#}"))
            })
            .collect();
        match refused.is_empty() {
            true => Ok(()),
            false => anyhow::bail!(
                "nftables refused {} of {} changes: {}",
                refused.len(),
                ops.len(),
                refused.join("; ")
            ),
        }
    }

    fn intact(&self) -> anyhow::Result<bool> {
        let Some(sets) = self.dump_table(msg::GETSET, None)? else {
            return Ok(false);
        };
        let names: Vec<String> = sets
            .iter()
            .filter_map(|b| b.get(4..).and_then(|a| super::netlink::wire::find(a, 2)))
            .map(|n| super::netlink::wire::as_str(n).to_string())
            .collect();
        if !SETS.iter().all(|s| names.iter().any(|n| n == s.name)) {
            return Ok(false);
        }
        let Some(rules) = self.dump_table(msg::GETRULE, Some(CHAIN))? else {
            return Ok(false);
        };
        let used: Vec<String> = rules
            .iter()
            .filter_map(|b| b.get(4..).and_then(|a| super::netlink::wire::find(a, 4)))
            .flat_map(exprs::looked_up_sets)
            .collect();
        Ok(SETS
            .iter()
            .all(|s| used.iter().filter(|u| *u == s.name).count() >= self.ports.len()))
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
            .filter(|(p, _)| within_limit(p))
            .cloned()
            .collect();
        let mut have = BTreeMap::new();
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            have.extend(self.list_set(set)?);
        }
        let t = self.table.clone();
        self.transact(|b| {
            for (p, left) in &have {
                match want.get(p) {
                    None => elements::delete(b, &t, set_of(p), &elems(p, 1)),
                    // Refresh only what is off by more than a couple of seconds.
                    Some(secs) if left.is_none_or(|l| l.abs_diff(*secs) > 2) => {
                        elements::delete(b, &t, set_of(p), &elems(p, *secs));
                        elements::add(b, &t, set_of(p), &elems(p, *secs));
                    }
                    Some(_) => {}
                }
            }
            for set in ["ban4", "ban6", "ban4net", "ban6net"] {
                let new: Vec<Elem> = want
                    .iter()
                    .filter(|(p, _)| set_of(p) == set && !have.contains_key(p))
                    .flat_map(|(p, secs)| elems(p, *secs))
                    .collect();
                elements::add(b, &t, set, &new);
            }
        })
    }
}
