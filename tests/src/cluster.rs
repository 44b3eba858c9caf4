//! A cluster of `mxrep-node` processes formed from `--peers`, in a temporary folder.

use crate::{wait_until, NodeProc, Tuning};
use std::time::Duration;

/// A cluster of nodes formed from `--peers`, in a temporary folder.
pub struct TestCluster {
    pub nodes: Vec<NodeProc>,
    pub dir: tempfile::TempDir,
    pub tuning: Tuning,
}

impl TestCluster {
    /// Starts `n` nodes with ids 1..=n, all listed in `--peers`.
    pub fn start(n: u64, tuning: Tuning) -> Self {
        Self::start_with(n, tuning, |_| String::new())
    }

    /// As [`TestCluster::start`], with `config(id)` at the head of each node's config file.
    pub fn start_with(n: u64, tuning: Tuning, config: impl Fn(u64) -> String) -> Self {
        Self::start_env(n, tuning, config, &[])
    }

    /// As [`TestCluster::start_with`], every node with `env` in its environment.
    pub fn start_env(
        n: u64,
        tuning: Tuning,
        config: impl Fn(u64) -> String,
        env: &[(String, String)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes: Vec<NodeProc> = (1..=n)
            .map(|id| NodeProc::new(dir.path(), id, None, &tuning))
            .collect();
        let peers = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.peer))
            .collect::<Vec<_>>()
            .join(",");
        for node in &mut nodes {
            node.peers = Some(peers.clone());
            node.prepend_config(&config(node.id));
            node.env = env.to_vec();
            node.start();
        }
        Self { nodes, dir, tuning }
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        self.nodes.iter().find(|n| n.id == id).expect("node id")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }

    /// Waits until every running node names the same leader, with `members` members; returns it.
    pub fn wait_for_leader(&self, members: usize, limit: Duration) -> u64 {
        wait_until(limit, "every running node to name the same leader", || {
            let mut leader = None;
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let s = n.status()?;
                let l = s["leader_id"].as_u64()?;
                if s["members"].as_array()?.len() != members {
                    return None;
                }
                // The named leader must itself be running.
                if !self.node(l).is_running() || leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            leader
        })
    }

    /// Waits until every running node lists exactly `expected` bans.
    pub fn wait_for_bans(&self, expected: &[String], limit: Duration) {
        let mut want = expected.to_vec();
        want.sort();
        wait_until(
            limit,
            &format!("every running node to hold bans {want:?}"),
            || {
                self.nodes
                    .iter()
                    .filter(|n| n.is_running())
                    .all(|n| n.ban_prefixes().as_ref() == Some(&want))
                    .then_some(())
            },
        );
    }
}
