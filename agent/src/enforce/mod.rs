//! Enforcement: keeping the host's firewall equal to the cluster's ban list.
//!
//! [`Enforcer`] is the small trait the rest of the agent sees; [`nft::NftEnforcer`] is the real
//! one (nftables over netlink, table `inet <name>`), [`DryRun`] logs what it would do. Entries broader than the
//! agent's own limit (/16 for IPv4, /32 for IPv6) are refused and logged, whatever the cluster
//! sends. [`watch`] follows the cluster's ban-list stream into an enforcer; [`view`] is the
//! agent's in-memory copy of the list, for the policy service; [`translate`] turns stream updates
//! into kernel operations and view changes (pure); [`guard`] rebuilds the table when a firewall
//! reload removed it.

pub mod drops;
pub mod guard;
#[allow(unsafe_code)]
pub mod netlink;
pub mod nft;
pub mod translate;
pub mod view;
pub mod watch;

use ipnet::IpNet;

/// One change to make in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanOp {
    /// Add a new ban that ends in `timeout_secs`.
    Add {
        prefix: IpNet,
        timeout_secs: u64,
    },
    /// Set the timeout of a ban that may already be there (an extended ban).
    Refresh {
        prefix: IpNet,
        timeout_secs: u64,
    },
    Remove {
        prefix: IpNet,
    },
}

/// Keeps a firewall in step with the ban list.
pub trait Enforcer: Send {
    /// Creates what the enforcer owns (idempotent; never drops existing bans).
    fn setup(&mut self) -> anyhow::Result<()>;
    /// Applies a batch of changes in one transaction.
    fn apply(&mut self, ops: &[BanOp]) -> anyhow::Result<()>;
    /// Makes the kernel hold exactly `desired`, atomically: no still-banned entry ever goes missing.
    fn reconcile(&mut self, desired: &[(IpNet, u64)]) -> anyhow::Result<()>;
    /// What the firewall holds now, with seconds left (used to rebuild the view at start).
    fn current(&self) -> anyhow::Result<Vec<(IpNet, u64)>>;
    /// Is everything `setup` made still there (table, sets, drop rules)? A firewall reload
    /// (`nft flush ruleset`, ufw, firewalld) removes it behind the agent's back.
    fn intact(&self) -> anyhow::Result<bool>;
    /// The packets the drop rules have dropped so far (None: this enforcer counts nothing).
    fn drop_counts(&self) -> anyhow::Result<Option<DropCounters>> {
        Ok(None)
    }
}

/// Packets dropped so far, as the kernel's counters say (they restart from zero when the table
/// or an element is made anew).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Over every drop rule.
    pub total: u64,
    /// Per ban, where the sets count per element.
    pub by_ban: std::collections::BTreeMap<IpNet, u64>,
}

/// Broadest prefix the agent enforces, whatever the cluster sends.
pub fn within_agent_limit(p: &IpNet) -> bool {
    match p {
        IpNet::V4(n) => n.prefix_len() >= 16,
        IpNet::V6(n) => n.prefix_len() >= 32,
    }
}

/// `--dry-run`: logs every change instead of making it.
#[derive(Default)]
pub struct DryRun {
    pub applied: Vec<BanOp>,
}

impl Enforcer for DryRun {
    fn setup(&mut self) -> anyhow::Result<()> {
        tracing::info!("dry run: would create the nftables table and sets");
        Ok(())
    }

    fn apply(&mut self, ops: &[BanOp]) -> anyhow::Result<()> {
        for op in ops {
            tracing::info!("dry run: would apply {op:?}");
        }
        self.applied.extend_from_slice(ops);
        Ok(())
    }

    fn reconcile(&mut self, desired: &[(IpNet, u64)]) -> anyhow::Result<()> {
        tracing::info!(
            "dry run: would reconcile the sets to {} entries",
            desired.len()
        );
        Ok(())
    }

    fn current(&self) -> anyhow::Result<Vec<(IpNet, u64)>> {
        Ok(vec![])
    }

    fn intact(&self) -> anyhow::Result<bool> {
        Ok(true)
    }
}
