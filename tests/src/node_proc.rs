//! One `mxrep-node` process and what it takes to restart it.

use crate::{bin, ctl_json_in, free_port};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The node's own Raft settings, written to each test node's config file: tests can never drift
/// from the node's defaults.
pub type Tuning = mxrep_node::config::RaftTuning;

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
    /// Extra environment of the process (`OTEL_*` for the telemetry tests).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl NodeProc {
    /// Prepares (does not start) node `id` under `root`.
    pub fn new(root: &Path, id: u64, peers: Option<String>, tuning: &Tuning) -> Self {
        let api = format!("127.0.0.1:{}", free_port());
        let peer = format!("127.0.0.1:{}", free_port());
        Self::with_addrs(root, id, api, peer, peers, tuning)
    }

    /// Node 1 of a one-node cluster under `root`, started, once it leads.
    pub fn single(root: &Path) -> Self {
        let mut node = Self::new(root, 1, None, &Tuning::default());
        node.peers = Some(format!("1={}", node.peer));
        node.start();
        crate::wait_until(Duration::from_secs(60), "the node to lead", || {
            node.status()?["leader_id"].as_u64()
        });
        node
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
        let raft = toml::to_string(tuning).expect("raft settings as TOML");
        std::fs::write(&config, format!("[raft]\n{raft}")).expect("write node config");
        Self {
            id,
            api,
            peer,
            log: root.join(format!("node{id}.log")),
            data_dir,
            config,
            peers,
            netns: None,
            env: vec![],
            child: None,
        }
    }

    /// A one-node cluster under `root` whose config file starts with `extra` (top-level keys),
    /// started and leading.
    pub fn single_leading(root: &Path, extra: &str) -> Self {
        let mut node = Self::new(root, 1, None, &Tuning::default());
        node.peers = Some(format!("1={}", node.peer));
        node.prepend_config(extra);
        node.start();
        crate::wait_until(Duration::from_secs(30), "the node to lead", || {
            node.status()?["leader_id"].as_u64()
        });
        node
    }

    /// A one-node cluster under `root`, in network namespace `ns`, started and leading.
    pub fn single_in(root: &Path, ns: &str) -> Self {
        let mut node = Self::new(root, 1, None, &Tuning::default());
        node.peers = Some(format!("1={}", node.peer));
        node.netns = Some(ns.to_string());
        node.start();
        crate::wait_until(
            Duration::from_secs(30),
            "the node in its namespace to lead",
            || node.status()?["leader_id"].as_u64(),
        );
        node
    }

    /// A one-node cluster under `root` serving mTLS with the node certificate from `pki` (made
    /// by `mxrepctl certs init`), started and leading (asked with the admin certificate).
    pub fn single_tls(root: &Path, pki: &Path) -> Self {
        let mut node = Self::new(root, 1, None, &Tuning::default());
        node.peers = Some(format!("1={}", node.peer));
        node.prepend_config(&tls_config(pki));
        node.start();
        let api = node.api.clone();
        crate::wait_until(
            Duration::from_secs(30),
            "the node to lead, asked over mTLS",
            || {
                let out = crate::ctl::ctl_as(&api, pki, "admin", &["--json", "status"]);
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                v["leader_id"].as_u64()
            },
        );
        node
    }

    /// Puts `extra` (top-level config keys) at the head of the node's config file.
    pub fn prepend_config(&self, extra: &str) {
        let cfg = std::fs::read_to_string(&self.config).expect("read node config");
        std::fs::write(&self.config, format!("{extra}\n{cfg}")).expect("write node config");
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if let Some(p) = &self.peers {
            cmd.arg("--peers").arg(p);
        }
        self.child = Some(cmd.spawn().expect("spawn mxrep-node"));
    }

    /// The process id while running.
    /// Has the process exited by itself? (If so it counts as stopped: `start` may follow.)
    pub fn exited(&mut self) -> bool {
        let gone = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if gone {
            self.child = None;
        }
        gone
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Started and not exited: a node that exited by itself (a zombie until reaped) is not.
    pub fn is_running(&self) -> bool {
        self.child
            .as_ref()
            .is_some_and(|c| !exited_unreaped(c.id()))
    }

    /// SIGSTOP (`frozen`) or SIGCONT: a node frozen this way is, to its peers, a node cut off —
    /// it answers nothing until it is thawed, then finds itself behind.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.pid().expect("a running node to freeze or thaw");
        let sig = if frozen { "-STOP" } else { "-CONT" };
        crate::run_ok(Command::new("kill").args([sig, &pid.to_string()]));
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
            // MXREP_KEEP_LOGS=DIR keeps the whole log of a failed run.
            if let Some(dir) = std::env::var_os("MXREP_KEEP_LOGS") {
                let to = Path::new(&dir).join(format!("node{}.log", self.id));
                let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&to, &text));
                eprintln!("(whole log kept in {})", to.display());
            }
        }
        self.kill();
    }
}

/// The config keys that make a node serve mTLS with the node certificate in `pki`.
pub fn tls_config(pki: &Path) -> String {
    format!(
        "tls_ca = \"{0}/ca.pem\"\ntls_cert = \"{0}/node.pem\"\ntls_key = \"{0}/node-key.pem\"\n",
        pki.display()
    )
}

/// Has child `pid` exited without being reaped yet (state `Z` in `/proc/PID/stat`)?
fn exited_unreaped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // "PID (COMM) STATE …": COMM may hold spaces and parentheses; the state follows the
            // last ')'.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(true)
}
