//! The multi-host test bed: a 3-node cluster, three MX hosts each running real Postfix with
//! `mxrep-agent` as its log follower, policy service and nftables enforcer, a spammer host and a
//! legitimate sender host — all network namespaces on a private bridge (see [`crate::netns`]).
//!
//! Addresses: nodes 192.0.2.11–13, MX hosts 192.0.2.21–23, the legitimate sender 192.0.2.41, the
//! spammer 192.0.2.31 plus 203.0.113.0/24 and 198.18.0.1–20. Everything is removed on drop, and
//! names are per process, so a run killed halfway never breaks the next one.

use crate::netns::{route, sh, Daemon, Lab};
pub use crate::postfix::Postfix;
use crate::{bin, ctl_json_in, wait_until, NodeProc, Tuning};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const LIMIT: Duration = Duration::from_secs(60);
pub const API_PORT: u16 = 7400;
pub const PEER_PORT: u16 = 7401;
pub const POLICY_PORT: u16 = 10040;
pub const METRICS_PORT_NODE: u16 = 9464;
pub const METRICS_PORT_AGENT: u16 = 9465;

/// An MX host: Postfix plus mxrep-agent.
pub struct MxHost {
    pub name: String,
    pub ns: String,
    pub addr: String,
    pub postfix: Option<Postfix>,
    pub log: PathBuf,
    pub state_dir: PathBuf,
    pub cluster: String,
    pub agent: Option<Daemon>,
    /// The bed's certificates (the agent presents `agent.pem`); None: plaintext.
    pub pki: Option<PathBuf>,
    /// Telemetry of the agent: `/metrics` on its address, port 9465, and this environment
    /// (`OTEL_*`); None: off.
    pub telemetry: Option<Vec<(String, String)>>,
}

impl MxHost {
    pub fn start_agent(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state_dir.with_extension("log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin("mxrep-agent"))
            .args([
                "--cluster",
                &self.cluster,
                "--node-name",
                &self.name,
                "--nft-table",
                "mxrep",
            ])
            .arg("--postfix-log")
            .arg(&self.log)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--policy-listen", &format!("127.0.0.1:{POLICY_PORT}")])
            .args(self.pki.iter().flat_map(|pki| {
                [
                    "--tls-ca".into(),
                    pki.join("ca.pem"),
                    "--tls-cert".into(),
                    pki.join("agent.pem"),
                    "--tls-key".into(),
                    pki.join("agent-key.pem"),
                ]
            }))
            .args(self.telemetry.iter().flat_map(|_| {
                [
                    "--metrics-listen".to_string(),
                    format!("{}:{METRICS_PORT_AGENT}", self.addr),
                ]
            }))
            .envs(self.telemetry.iter().flatten().map(|(k, v)| (k, v)))
            .env("MXREP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start mxrep-agent");
        self.agent = Some(Daemon(child));
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.state_dir.with_extension("log")).unwrap_or_default()
    }

    /// Every element of the agent's four ban sets, as CIDR text.
    pub fn kernel_bans(&self) -> Vec<String> {
        let mut out = Vec::new();
        for set in ["ban4", "ban6", "ban4net", "ban6net"] {
            let o = Command::new("ip")
                .args([
                    "netns", "exec", &self.ns, "nft", "-j", "list", "set", "inet", "mxrep", set,
                ])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            for item in v["nftables"].as_array().cloned().unwrap_or_default() {
                for e in item["set"]["elem"].as_array().cloned().unwrap_or_default() {
                    let val = e.get("elem").map(|x| x["val"].clone()).unwrap_or(e.clone());
                    if let Some(s) = val.as_str() {
                        out.push(if s.contains(':') {
                            format!("{s}/128")
                        } else {
                            format!("{s}/32")
                        });
                    } else if let Some(p) = val.get("prefix") {
                        out.push(format!("{}/{}", p["addr"].as_str().unwrap_or(""), p["len"]));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// The whole bed.
pub struct Testbed {
    pub mx: Vec<MxHost>,
    pub nodes: Vec<NodeProc>,
    pub spam: String,
    pub legit: String,
    pub dir: tempfile::TempDir,
    pub lab: Lab,
}

impl Testbed {
    /// Starts everything; `postfix: false` runs the agents on log files the test writes itself.
    pub fn start(postfix: bool) -> Self {
        Self::start_with(postfix, |_| String::new())
    }

    /// As [`Testbed::start`], with `node_config(id)` at the head of each node's config file.
    pub fn start_with(postfix: bool, node_config: impl Fn(u64) -> String) -> Self {
        Self::start_opts(postfix, true, node_config)
    }

    /// The bed with mTLS (`tls`, as in production) or plaintext (to measure what TLS costs).
    pub fn start_opts(postfix: bool, tls: bool, node_config: impl Fn(u64) -> String) -> Self {
        Self::start_telemetry(postfix, tls, node_config, None)
    }

    /// As [`Testbed::start_opts`]; with `telemetry`, nodes serve `/metrics` on port 9464 and
    /// agents on 9465, every process with that environment (`OTEL_*`).
    pub fn start_telemetry(
        postfix: bool,
        tls: bool,
        node_config: impl Fn(u64) -> String,
        telemetry: Option<Vec<(String, String)>>,
    ) -> Self {
        let mut lab = Lab::new("t");
        let dir = tempfile::tempdir().unwrap();
        // mTLS everywhere, as in production: nodes, agents and mxrepctl with their own certificates.
        let sans = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];
        let pki = tls.then(|| crate::ctl::certs_init(dir.path(), &sans));
        let tls = pki.as_deref().map_or_else(
            || "insecure_plaintext = true\n".to_string(),
            crate::node_proc::tls_config,
        );
        crate::ctl::use_tls(pki.clone());
        let mut nodes = Vec::new();
        let peers = (1..=3)
            .map(|i| format!("{i}=192.0.2.1{i}:{PEER_PORT}"))
            .collect::<Vec<_>>()
            .join(",");
        for i in 1..=3u64 {
            let ns = lab.host(&format!("n{i}"), &[&format!("192.0.2.1{i}/24")]);
            let mut n = NodeProc::with_addrs(
                dir.path(),
                i,
                format!("192.0.2.1{i}:{API_PORT}"),
                format!("192.0.2.1{i}:{PEER_PORT}"),
                Some(peers.clone()),
                &Tuning::default(),
            );
            n.netns = Some(ns);
            n.prepend_config(&format!("{tls}{}", node_config(i)));
            if let Some(env) = &telemetry {
                n.prepend_config(&format!(
                    "metrics_listen = \"192.0.2.1{i}:{METRICS_PORT_NODE}\""
                ));
                n.env = env.clone();
            }
            n.start();
            nodes.push(n);
        }
        let spam = lab.host("sp", &["192.0.2.31/24"]);
        for i in 1..=254 {
            sh(&[
                "ip",
                "-n",
                &spam,
                "addr",
                "add",
                &format!("203.0.113.{i}/32"),
                "dev",
                "eth0",
            ]);
        }
        for i in 1..=20 {
            sh(&[
                "ip",
                "-n",
                &spam,
                "addr",
                "add",
                &format!("198.18.0.{i}/32"),
                "dev",
                "eth0",
            ]);
        }
        let legit = lab.host("lg", &["192.0.2.41/24", "198.51.100.25/32"]);
        let mut mx = Vec::new();
        for i in 1..=3usize {
            let name = format!("mx{i}");
            let addr = format!("192.0.2.2{i}");
            let ns = lab.host(&name, &[&format!("{addr}/24")]);
            for net in ["203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15"] {
                route(&ns, net);
            }
            // Each MX host's agent starts on a different node and fails over to the others.
            let cluster = (0..3)
                .map(|k| format!("192.0.2.1{}:{API_PORT}", (i - 1 + k) % 3 + 1))
                .collect::<Vec<_>>()
                .join(",");
            let postfix =
                postfix.then(|| Postfix::start(&ns, &dir.path().join("postfix"), &name, &addr));
            let log = match &postfix {
                Some(p) => p.log.clone(),
                None => {
                    let l = dir.path().join(format!("{name}.maillog"));
                    std::fs::write(&l, "").unwrap();
                    l
                }
            };
            mx.push(MxHost {
                name,
                ns,
                addr,
                postfix,
                log,
                state_dir: dir.path().join(format!("agent-mx{i}")),
                cluster,
                agent: None,
                pki: pki.clone(),
                telemetry: telemetry.clone(),
            });
        }
        let bed = Self {
            mx,
            nodes,
            spam,
            legit,
            dir,
            lab,
        };
        bed.wait_for_leader();
        let mut bed = bed;
        for m in &mut bed.mx {
            m.start_agent();
        }
        for m in &bed.mx {
            wait_until(LIMIT, &format!("the agent on {} to run", m.name), || {
                m.agent_log().contains("mxrep-agent running").then_some(())
            });
        }
        bed
    }

    /// Waits until every running node names the same leader; returns its id.
    pub fn wait_for_leader(&self) -> u64 {
        wait_until(LIMIT, "a leader named by every running node", || {
            let mut leader = None;
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let l = n.status()?["leader_id"].as_u64()?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            leader
        })
    }

    /// `mxrepctl … --json` run inside the first running node's namespace.
    pub fn ctl_json(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let n = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        ctl_json_in(n.netns.as_deref(), &n.api, args)
    }

    /// Waits until the cluster answers `prefix` with a temporary refusal (no drop yet).
    pub fn wait_refused(&self, prefix: &str) {
        wait_until(LIMIT, &format!("a temporary refusal of {prefix}"), || {
            let v = self.ctl_json(&["bans", "list"]).ok()?;
            v["bans"]
                .as_array()?
                .iter()
                .any(|b| b["prefix"] == prefix && b["action"] == "tempfail")
                .then_some(())
        });
    }

    /// Waits until every MX host's kernel sets hold `prefix`.
    pub fn wait_enforced_everywhere(&self, prefix: &str) {
        wait_until(
            LIMIT,
            &format!("{prefix} in the kernel sets of every MX host"),
            || {
                self.mx
                    .iter()
                    .all(|m| m.kernel_bans().iter().any(|b| b == prefix))
                    .then_some(())
            },
        );
    }

    /// One SMTP session with swaks from `src` (on the spammer host) to MX `i`; true if delivered.
    pub fn swaks(&self, ns: &str, src: &str, i: usize, to: &str) -> bool {
        self.swaks_to(ns, src, i, &format!("{to}@{}.test", self.mx[i].name))
    }

    /// One SMTP session from `src` to MX `i` for recipient `rcpt`; true if delivered.
    pub fn swaks_to(&self, ns: &str, src: &str, i: usize, rcpt: &str) -> bool {
        swaks_at(ns, src, &self.mx[i].addr, rcpt)
    }
}

/// One SMTP session from `src` in namespace `ns` to the SMTP server at `server` for `rcpt`; true
/// if delivered.
pub fn swaks_at(ns: &str, src: &str, server: &str, rcpt: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "swaks",
            "--server",
            server,
            "--local-interface",
            src,
        ])
        .args(["--to", rcpt, "--from", "sender@example.test"])
        .args(["--timeout", "5", "--silent", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Drop for Testbed {
    fn drop(&mut self) {
        crate::ctl::use_tls(None);
        if std::thread::panicking() {
            for m in &self.mx {
                let log = m.agent_log();
                let tail: Vec<&str> = log.lines().rev().take(12).collect();
                eprintln!("--- last lines of the agent on {} ---", m.name);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
                if let Some(p) = &m.postfix {
                    let log = p.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(8).collect();
                    eprintln!("--- last lines of Postfix on {} ---", m.name);
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
                // MXREP_KEEP_LOGS=DIR keeps each agent's whole log and the mail log it followed.
                if let Some(dir) = std::env::var_os("MXREP_KEEP_LOGS") {
                    let dir = Path::new(&dir);
                    let _ = std::fs::create_dir_all(dir)
                        .and_then(|_| {
                            std::fs::write(dir.join(format!("agent-{}.log", m.name)), &log)
                        })
                        .and_then(|_| {
                            std::fs::copy(&m.log, dir.join(format!("mail-{}.log", m.name)))
                        });
                }
            }
        }
    }
}
