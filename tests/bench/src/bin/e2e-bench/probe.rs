//! Probes of the bed: writing decisive log lines, running `mxrepctl ban`, and timing until an
//! address is an element of the ban set in every MX host's kernel.

use mxrep_tests::testbed::Testbed;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

/// Syslog's stamp for now, in UTC (the bed's agents read UTC).
pub fn stamp() -> String {
    let out = Command::new("date")
        .args(["-u", "+%b %e %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Five refused connections from `addr` on `host`, stamped now: the last line decides a ban.
pub fn rejects(addr: &str, host: &str) -> String {
    mxrep_tests::mix::refused_connections(addr, host, &stamp())
}

pub fn in_kernel(ns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nft",
            "get",
            "element",
            "inet",
            "mxrep",
            "ban4",
            &format!("{{ {addr} }}"),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Writes the decisive lines for `addr` on MX `i`; returns the time until all MX hosts drop it.
pub fn one_ban(bed: &Testbed, addr: &str, i: usize) -> Duration {
    let text = rejects(addr, &bed.mx[i].name);
    until_everywhere(bed, addr, || append(&bed.mx[i].log, &text))
}

/// `mxrepctl ban ADDR` as an operator types it; returns the time from its start until all MX
/// hosts drop the address.
pub fn one_manual_ban(bed: &Testbed, addr: &str) -> Duration {
    until_everywhere(bed, addr, || {
        bed.ctl_json(&["ban", addr, "--for", "1h", "--reason", "bench"])
            .expect("mxrepctl ban");
    })
}

/// Runs `act`; returns the time from just before it until every MX host drops `addr`.
pub fn until_everywhere(bed: &Testbed, addr: &str, act: impl FnOnce()) -> Duration {
    let written = Instant::now();
    act();
    let handles: Vec<_> = bed
        .mx
        .iter()
        .map(|m| {
            let ns = m.ns.clone();
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !in_kernel(&ns, &addr) {
                    assert!(Instant::now() < deadline, "{addr} never reached {ns}");
                }
                Instant::now()
            })
        })
        .collect();
    let last = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap();
    last - written
}
