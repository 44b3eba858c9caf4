//! Harness for mxrep's multi-process tests: real `mxrep-node` processes on loopback sockets with
//! data on real disk, driven through the real `mxrepctl`.
//!
//! Nothing here sleeps and hopes: every wait is a condition polled until a deadline, and a
//! deadline that passes fails the test with what was awaited and the nodes' last log lines.
//!
//! # Layout
//! - this file: one test at a time, workspace binaries, free ports, waiting with deadlines;
//! - [`ctl`]: `mxrepctl` calls, in a namespace or not, as text or JSON;
//! - [`node_proc`]: one `mxrep-node` process (start, stop, kill, status) with the node's own
//!   Raft settings type ([`Tuning`]);
//! - [`cluster`]: a cluster of node processes formed from `--peers`;
//! - [`agent_proc`]: one `mxrep-agent` on this host's network, for the tests of its sources;
//! - [`dns`]: rbldnsd serving list zones, and `dig`;
//! - [`events`]: connection verdicts and batches sent straight to a node's `Agent` service, and
//!   waiting for agents' uplinks to have every verdict acknowledged;
//! - [`faults`]: a data dir on a tmpfs that can be filled, an agent stopped as a rollout does;
//! - [`netns`]: network namespaces, veth links, TCP reachability, daemons started by tests;
//! - [`policy`]: the agent's policy service driven one RCPT request at a time;
//! - [`postfix`]: one real Postfix instance in a namespace;
//! - [`testbed`]: three nodes, three MX hosts with Postfix and agents, spammer and sender hosts;
//! - [`prometheus`]: a real Prometheus server, its query API, `promtool check metrics`;
//! - [`otlp_sink`]: an in-process OTLP collector (traces and metrics over gRPC);
//! - [`mix`]: the realistic traffic mix of spammers and legitimate senders, as Postfix logs it.
#![forbid(unsafe_code)]

pub mod agent_proc;
pub mod cluster;
pub mod ctl;
pub mod dns;
pub mod events;
pub mod faults;
pub mod mix;
pub mod netns;
pub mod nft_witness;
pub mod node_proc;
pub mod otlp_sink;
pub mod policy;
pub mod postfix;
pub mod prometheus;
pub mod testbed;

pub use agent_proc::AgentProc;
pub use cluster::TestCluster;
pub use ctl::{accepted_messages, ban_evidence_hosts, ctl, ctl_in, ctl_json, ctl_json_in};
pub use node_proc::{NodeProc, Tuning};

use std::net::TcpListener;
use std::path::PathBuf;
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

/// Runs `cmd` to its end and fails the test, with its stderr, unless it succeeded.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
