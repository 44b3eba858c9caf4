//! Hosts as network namespaces on a private bridge, for the tests that need a real kernel, and
//! the rule that these tests run as root in CI (`MXREP_REQUIRE_E2E=1`) and say so loudly when
//! they cannot run here.

use std::process::Command;
use std::time::{Duration, Instant};

/// True when root, `ip` and `nft` are available; otherwise explains, and fails under
/// `MXREP_REQUIRE_E2E=1`.
pub fn e2e_available(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if root && nft && ip {
        return true;
    }
    let why = format!("root={root} nft={nft} ip={ip}");
    if std::env::var("MXREP_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("{test}: MXREP_REQUIRE_E2E=1 but the kernel test cannot run here ({why})");
    }
    eprintln!("\n!!!!! SKIPPED {test}: needs root, iproute2 and nftables ({why}); set MXREP_REQUIRE_E2E=1 to make this a failure !!!!!\n");
    false
}

/// True when `binary` is on the PATH; otherwise says which Debian `package` brings it, and
/// fails under `MXREP_REQUIRE_E2E=1`.
pub fn tool_available(test: &str, binary: &str, package: &str) -> bool {
    let found = Command::new("which")
        .arg(binary)
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    skip_loudly(&format!(
        "{test} needs {binary} (apt-get install {package})"
    ));
    false
}

/// A test that cannot run here says so loudly, and fails instead under `MXREP_REQUIRE_E2E=1`.
pub fn skip_loudly(msg: &str) {
    if std::env::var("MXREP_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("MXREP_REQUIRE_E2E=1 but {msg}");
    }
    eprintln!("\n!!!!! SKIPPED: {msg}; set MXREP_REQUIRE_E2E=1 to make this a failure !!!!!\n");
}

/// An MX host (192.0.2.1, listening on port 25) and a client host (192.0.2.2, and 203.0.113.5
/// and .6 routed from the MX host) on a lab named `tag`, once the client reaches port 25.
pub struct MxAndClient {
    pub lab: Lab,
    pub mx: String,
    pub cl: String,
    pub listener: Daemon,
}

impl MxAndClient {
    pub fn start(tag: &str) -> Self {
        let mut lab = Lab::new(tag);
        let mx = lab.host("mx", &["192.0.2.1/24"]);
        let cl = lab.host("cl", &["192.0.2.2/24", "203.0.113.5/32", "203.0.113.6/32"]);
        route(&mx, "203.0.113.0/24");
        let listener = listen_25(&mx);
        wait_for(Duration::from_secs(30), "port 25 reachable", || {
            connects(&cl, "203.0.113.5", "192.0.2.1")
        });
        Self {
            lab,
            mx,
            cl,
            listener,
        }
    }
}

/// Routes `net` out of `ns`'s bridge interface (extra client addresses live on other hosts).
pub fn route(ns: &str, net: &str) {
    sh(&["ip", "-n", ns, "route", "add", net, "dev", "eth0"]);
}

pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A switch namespace and hosts attached to it; everything is removed on drop.
pub struct Lab {
    pub prefix: String,
    hosts: Vec<String>,
}

impl Lab {
    /// Takes host `ns`'s link down (true) or up again (false), as a cable pulled and replugged.
    pub fn cut(&self, ns: &str, down: bool) {
        let i = self
            .hosts
            .iter()
            .position(|h| h == ns)
            .expect("a host of this lab");
        let sw = format!("{}sw", self.prefix);
        sh(&[
            "ip",
            "-n",
            &sw,
            "link",
            "set",
            &format!("v{i}"),
            if down { "down" } else { "up" },
        ]);
    }
}

impl Lab {
    pub fn new(tag: &str) -> Self {
        let prefix = format!("mx{}{}", tag, std::process::id() % 100_000);
        let sw = format!("{prefix}sw");
        let _ = Command::new("ip").args(["netns", "del", &sw]).output();
        sh(&["ip", "netns", "add", &sw]);
        sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        Self {
            prefix,
            hosts: vec![],
        }
    }

    /// Adds host `name` with `addr/plen` (and more addresses) on the bridge; returns its netns.
    pub fn host(&mut self, name: &str, addrs: &[&str]) -> String {
        let ns = format!("{}{}", self.prefix, name);
        let sw = format!("{}sw", self.prefix);
        let peer = format!("v{}", self.hosts.len());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &peer,
            "netns", &sw,
        ]);
        sh(&["ip", "-n", &sw, "link", "set", &peer, "master", "br0"]);
        sh(&["ip", "-n", &sw, "link", "set", &peer, "up"]);
        for a in addrs {
            sh(&["ip", "-n", &ns, "addr", "add", a, "dev", "eth0"]);
        }
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        self.hosts.push(ns.clone());
        ns
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "pids", h])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).output();
                    }
                });
            let _ = Command::new("ip").args(["netns", "del", h]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("{}sw", self.prefix)])
            .output();
    }
}

/// Tries a TCP connection from `src` in netns `ns` to `dst` port 25, within 1 s.
pub fn connects(ns: &str, src: &str, dst: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c"])
        .arg(format!(
            "import socket,sys\ns=socket.socket(socket.AF_INET6 if ':' in '{dst}' else socket.AF_INET)\ns.settimeout(1)\ns.bind(('{src}',0))\ntry:\n s.connect(('{dst}',25)); sys.exit(0)\nexcept Exception:\n sys.exit(1)\n"
        ))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Polls `f` until true or fails after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (and reaped) on drop.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a TCP listener on port 25 (IPv4 and IPv6) in `ns`.
pub fn listen_25(ns: &str) -> Daemon {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c"])
        .arg("import socket\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('::',25))\ns.listen(128)\nwhile True:\n c,_=s.accept(); c.close()\n")
        .spawn()
        .expect("listener");
    Daemon(child)
}
