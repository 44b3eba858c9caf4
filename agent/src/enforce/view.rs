//! The agent's own view of the ban list: what the cluster has banned and until when, for the
//! policy service to answer from memory without ever waiting on the cluster.

use ipnet::IpNet;
use mxrep_common::lock::RwLockExt as _;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// One ban as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub expires_ms: i64,
    pub reason: String,
    /// How the MX host refuses it.
    pub refusal: Refusal,
}

/// How a banned client is refused on the MX host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// nftables drops its packets.
    Drop,
    /// The policy service answers 450 (`DEFER_IF_PERMIT`): refused for now, no drop.
    Tempfail,
    /// The policy service answers 554 (`REJECT`) with the ban's reason, no drop.
    Reject,
}

impl Known {
    /// Whether the firewall must hold it.
    pub fn drops(&self) -> bool {
        self.refusal == Refusal::Drop
    }
}

/// Shared ban view; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BanView {
    inner: Arc<RwLock<BTreeMap<IpNet, Known>>>,
    /// The ban-list version the view (and the kernel) holds.
    version: Arc<std::sync::atomic::AtomicU64>,
}

impl BanView {
    /// The ban-list version enforced.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_version(&self, v: u64) {
        self.version.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn replace(&self, bans: BTreeMap<IpNet, Known>) {
        *self.inner.write_locked() = bans;
    }

    pub fn insert(&self, p: IpNet, k: Known) {
        self.inner.write_locked().insert(p, k);
    }

    pub fn remove(&self, p: &IpNet) {
        self.inner.write_locked().remove(p);
    }

    /// Unexpired entries that drop, with seconds left: what the firewall must hold.
    pub fn dropping(&self, now_ms: i64) -> Vec<(IpNet, u64)> {
        self.inner
            .read_locked()
            .iter()
            .filter(|(_, k)| k.drops())
            .filter_map(|(p, k)| Some((*p, super::translate::remaining(k.expires_ms, now_ms)?)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read_locked().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The narrowest unexpired ban covering `addr`: one lookup per possible prefix length.
    pub fn covering(&self, addr: IpAddr, now_ms: i64) -> Option<(IpNet, Known)> {
        let map = self.inner.read_locked();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (0..=max).rev().find_map(|len| {
            let net = IpNet::new(addr, len).ok()?.trunc();
            map.get(&net)
                .filter(|k| k.expires_ms > now_ms)
                .map(|k| (net, k.clone()))
        })
    }
}
