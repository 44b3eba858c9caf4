//! Harness for mxrep's multi-process tests: real `mxrep-node` processes on loopback sockets with
//! data on real disk, driven through the real `mxrepctl`.
//!
//! Nothing here sleeps and hopes: every wait is a condition polled until a deadline, and a
//! deadline that passes fails the test with what was awaited and the nodes' last log lines.
//!
//! # Layout
//! - this file: processes (`NodeProc`, `TestCluster`), `mxrepctl` calls, waiting with deadlines;
//! - [`events`]: connection verdicts and batches sent straight to a node's `Agent` service;
//! - [`netns`]: network namespaces, veth links, TCP reachability, daemons started by tests;
//! - [`testbed`]: three nodes, three MX hosts with Postfix and agents, spammer and sender hosts;
//! - [`mix`]: the realistic traffic mix of spammers and legitimate senders, as Postfix logs it.
#![forbid(unsafe_code)]

pub mod events;
pub mod mix;
pub mod netns;
pub mod testbed;

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Multi-process tests share two cores: run them one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Path of a workspace binary, built beside this test (by `cargo test --workspace`).
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in target/PROFILE/deps, the bench binary in target/PROFILE.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    let p = [dir, dir.parent().unwrap_or(dir)]
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join(name));
    assert!(
        p.exists(),
        "{} not found: run the tests with `cargo test --workspace`, which builds it",
        p.display()
    );
    p
}

/// A loopback port nobody listens on right now, below Linux's ephemeral range (32768–60999),
/// so no outgoing connection can take it between this probe and the node's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 600) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (p - 20_000) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `f` until it returns `Some`, or fails the test after `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `mxrepctl --endpoint EP ARGS…`.
pub fn ctl(endpoint: &str, args: &[&str]) -> Output {
    ctl_in(None, endpoint, args)
}

/// Runs `mxrepctl --endpoint EP ARGS…`, inside network namespace `ns` if given.
pub fn ctl_in(ns: Option<&str>, endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin("mxrepctl"));
            c
        }
        None => Command::new(bin("mxrepctl")),
    };
    cmd.arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("run mxrepctl")
}

/// Runs `mxrepctl … --json` and parses its output; `Err(stderr)` when it fails.
pub fn ctl_json(endpoint: &str, args: &[&str]) -> Result<Value, String> {
    ctl_json_in(None, endpoint, args)
}

/// [`ctl_json`] inside network namespace `ns` if given.
pub fn ctl_json_in(ns: Option<&str>, endpoint: &str, args: &[&str]) -> Result<Value, String> {
    let mut a = args.to_vec();
    a.push("--json");
    let out = ctl_in(ns, endpoint, &a);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON from mxrepctl: {e}"))
}

/// Raft settings written to each node's config file.
#[derive(Clone, Debug)]
pub struct Tuning {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_logs_since_last: u64,
    pub max_in_snapshot_log_to_keep: u64,
    pub purge_batch_size: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        // The node's own defaults.
        Self {
            heartbeat_ms: 50,
            election_timeout_min_ms: 250,
            election_timeout_max_ms: 500,
            snapshot_logs_since_last: 10_000,
            max_in_snapshot_log_to_keep: 1_000,
            purge_batch_size: 256,
        }
    }
}

/// One `mxrep-node` process and what it takes to restart it.
pub struct NodeProc {
    pub id: u64,
    pub api: String,
    pub peer: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub peers: Option<String>,
    /// Network namespace to run in (`ip netns exec`), if any.
    pub netns: Option<String>,
    child: Option<Child>,
}

impl NodeProc {
    /// Prepares (does not start) node `id` under `root`.
    pub fn new(root: &Path, id: u64, peers: Option<String>, tuning: &Tuning) -> Self {
        let api = format!("127.0.0.1:{}", free_port());
        let peer = format!("127.0.0.1:{}", free_port());
        Self::with_addrs(root, id, api, peer, peers, tuning)
    }

    pub fn with_addrs(
        root: &Path,
        id: u64,
        api: String,
        peer: String,
        peers: Option<String>,
        tuning: &Tuning,
    ) -> Self {
        let data_dir = root.join(format!("node{id}"));
        let config = root.join(format!("node{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[raft]\nheartbeat_ms = {}\nelection_timeout_min_ms = {}\nelection_timeout_max_ms = {}\n\
                 snapshot_logs_since_last = {}\nmax_in_snapshot_log_to_keep = {}\npurge_batch_size = {}\ntick_ms = 1000\n",
                tuning.heartbeat_ms,
                tuning.election_timeout_min_ms,
                tuning.election_timeout_max_ms,
                tuning.snapshot_logs_since_last,
                tuning.max_in_snapshot_log_to_keep,
                tuning.purge_batch_size
            ),
        )
        .expect("write node config");
        Self {
            id,
            api,
            peer,
            log: root.join(format!("node{id}.log")),
            data_dir,
            config,
            peers,
            netns: None,
            child: None,
        }
    }

    /// Starts the process (again, on the same data dir, after a stop or kill).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin("mxrep-node"));
                c
            }
            None => Command::new(bin("mxrep-node")),
        };
        cmd.arg("--id")
            .arg(self.id.to_string())
            .arg("--api-listen")
            .arg(&self.api)
            .arg("--peer-listen")
            .arg(&self.peer)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config)
            .env("MXREP_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if let Some(p) = &self.peers {
            cmd.arg("--peers").arg(p);
        }
        self.child = Some(cmd.spawn().expect("spawn mxrep-node"));
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(10));
    }

    /// SIGTERM; `Some(success)` if the process exited within `limit`, `None` if it had to be
    /// killed.
    pub fn stop_within(&mut self, limit: Duration) -> Option<bool> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// `mxrepctl status --json` on this node.
    pub fn status(&self) -> Option<Value> {
        ctl_json_in(self.netns.as_deref(), &self.api, &["status"]).ok()
    }

    /// The prefixes this node lists as banned.
    pub fn ban_prefixes(&self) -> Option<Vec<String>> {
        let v = ctl_json_in(self.netns.as_deref(), &self.api, &["bans", "list"]).ok()?;
        let mut out: Vec<String> = v["bans"]
            .as_array()?
            .iter()
            .filter_map(|b| b["prefix"].as_str().map(String::from))
            .collect();
        out.sort();
        Some(out)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!("--- last lines of node {} log ---", self.id);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        self.kill();
    }
}

/// A cluster of nodes formed from `--peers`, in a temporary folder.
pub struct TestCluster {
    pub nodes: Vec<NodeProc>,
    pub dir: tempfile::TempDir,
    pub tuning: Tuning,
}

impl TestCluster {
    /// Starts `n` nodes with ids 1..=n, all listed in `--peers`.
    pub fn start(n: u64, tuning: Tuning) -> Self {
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
