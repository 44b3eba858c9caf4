//! DNS servers and queries for the tests that need real ones: rbldnsd (the Debian package)
//! serving list zones, in the host's namespace or a test host's, and `dig` (bind9-dnsutils).

use crate::netns::Daemon;
use std::path::Path;
use std::process::{Command, Stdio};

/// One rbldnsd dataset: zone name, dataset type (`ip4set`, `ip6trie`, …), file name, contents.
pub struct Dataset<'a> {
    pub zone: &'a str,
    pub kind: &'a str,
    pub file: &'a str,
    pub text: &'a str,
}

/// rbldnsd serving `datasets` from `dir`, bound to `bind` ("ADDR/PORT"), inside namespace `ns`
/// when given. It reloads a changed file within a second (`-c 1`).
pub fn rbldnsd(ns: Option<&str>, dir: &Path, bind: &str, datasets: &[Dataset<'_>]) -> Daemon {
    rbldnsd_with(ns, dir, bind, datasets, &[])
}

/// As [`rbldnsd`], with `extra` options (e.g. `-l +FILE`, a query log flushed per line).
pub fn rbldnsd_with(
    ns: Option<&str>,
    dir: &Path,
    bind: &str,
    datasets: &[Dataset<'_>],
    extra: &[String],
) -> Daemon {
    for d in datasets {
        std::fs::write(dir.join(d.file), d.text).expect("write an rbldnsd zone file");
    }
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .expect("chmod");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "rbldnsd"]);
            c
        }
        None => Command::new("rbldnsd"),
    };
    cmd.args(["-n", "-u", "rbldns", "-b", bind, "-t", "60", "-c", "1"])
        .args(extra)
        .arg("-w")
        .arg(dir);
    for d in datasets {
        cmd.arg(format!("{}:{}:{}", d.zone, d.kind, d.file));
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rbldnsd (apt-get install rbldnsd)");
    Daemon(child)
}

/// `dig @server -p port name qtype`: the response status ("NOERROR", "NXDOMAIN", …) and the
/// answer section's data, one record a line.
pub fn dig(server: &str, port: u16, name: &str, qtype: &str) -> (String, String) {
    let out = Command::new("dig")
        .arg(format!("@{server}"))
        .args(["-p", &port.to_string(), "+time=2", "+tries=1", name, qtype])
        .output()
        .expect("dig (apt-get install bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string();
    let answer: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
        .collect();
    (status, answer.join("\n"))
}
