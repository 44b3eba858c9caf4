//! Probes of the bed: writing decisive log lines, running `mxrepctl ban`, and timing until an
//! address is an element of the ban set in every MX host's kernel.

use mxrep_tests::testbed::Testbed;
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
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

/// Every MX host's ban set watched with `nft monitor`, which the kernel tells of every element
/// added: a probe costs nothing while it waits. (The probes used to run `nft get element` in a
/// loop per MX host; those processes took about half of the two cores during the ingest run —
/// from the bed they measured.) Started once per bed; the MX hosts outlive node kills.
pub struct KernelWatch(Vec<Monitor>);

impl KernelWatch {
    pub fn start(bed: &Testbed) -> KernelWatch {
        KernelWatch(bed.mx.iter().map(|m| Monitor::start(&m.ns)).collect())
    }

    /// Writes the decisive lines for `addr` on MX `i`; returns the time until all MX hosts drop
    /// it.
    pub fn one_ban(&self, bed: &Testbed, addr: &str, i: usize) -> Duration {
        self.one_ban_each(bed, addr, i).into_iter().max().unwrap()
    }

    /// As [`KernelWatch::one_ban`], the time until each MX host drops it, in MX host order.
    pub fn one_ban_each(&self, bed: &Testbed, addr: &str, i: usize) -> Vec<Duration> {
        let text = rejects(addr, &bed.mx[i].name);
        self.until_each(addr, || append(&bed.mx[i].log, &text))
    }

    /// `mxrepctl ban ADDR` as an operator types it; returns the time from its start until all
    /// MX hosts drop the address.
    pub fn one_manual_ban(&self, bed: &Testbed, addr: &str) -> Duration {
        self.until_everywhere(addr, || {
            bed.ctl_json(&["ban", addr, "--for", "1h", "--reason", "bench"])
                .expect("mxrepctl ban");
        })
    }

    /// Runs `act`; returns the time from just before it until every MX host drops `addr`.
    pub fn until_everywhere(&self, addr: &str, act: impl FnOnce()) -> Duration {
        self.until_each(addr, act).into_iter().max().unwrap()
    }

    /// Runs `act`; returns the time from just before it until each MX host drops `addr`.
    pub fn until_each(&self, addr: &str, act: impl FnOnce()) -> Vec<Duration> {
        let written = Instant::now();
        act();
        let deadline = written + Duration::from_secs(30);
        self.0
            .iter()
            .map(|m| m.added(addr, deadline).saturating_duration_since(written))
            .collect()
    }
}

/// `nft monitor` in one MX host's namespace, reporting when each element of `ban4` was added.
struct Monitor {
    ns: String,
    child: Child,
    added: Receiver<(String, String, Instant)>,
}

/// The set and the element an `nft monitor` line adds (`add element inet mxrep ban4 { 1.2.3.4
/// timeout 1h expires 1h }`), if it adds one.
fn element_added(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("add element inet ")?;
    let (table_set, elem) = rest.split_once(" { ")?;
    let set = table_set.split_whitespace().nth(1)?;
    let elem = elem.split([' ', ',', '}']).next()?;
    Some((set.to_string(), elem.to_string()))
}

fn nft(ns: &str, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "nft {args:?} in {ns}");
}

impl Monitor {
    /// Starts the monitor and returns once it listens: an element it adds to a table of its own
    /// has come back through it.
    fn start(ns: &str) -> Monitor {
        nft(ns, &["add", "table", "inet", "mxrep_probe"]);
        nft(
            ns,
            &[
                "add",
                "set",
                "inet",
                "mxrep_probe",
                "ready",
                "{ type ipv4_addr; flags timeout; }",
            ],
        );
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", ns, "stdbuf", "-oL", "nft", "monitor", "elements",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("nft monitor");
        let out = child.stdout.take().expect("its stdout");
        let (tx, added) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((set, elem)) = element_added(&line) {
                    if tx.send((set, elem, Instant::now())).is_err() {
                        break;
                    }
                }
            }
        });
        let m = Monitor {
            ns: ns.to_string(),
            child,
            added,
        };
        for n in 1..=250u8 {
            let probe = format!("127.0.0.{n}");
            nft(
                ns,
                &[
                    "add",
                    "element",
                    "inet",
                    "mxrep_probe",
                    "ready",
                    &format!("{{ {probe} timeout 10s }}"),
                ],
            );
            let until = Instant::now() + Duration::from_millis(200);
            while let Ok((set, elem, _)) = m.added.recv_timeout(until - Instant::now()) {
                if set == "ready" && elem == probe {
                    return m;
                }
            }
        }
        panic!("nft monitor in {ns} never listened");
    }

    /// When `addr` was added to `ban4`, waiting for it until `deadline`.
    fn added(&self, addr: &str, deadline: Instant) -> Instant {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.added.recv_timeout(left) {
                Ok((set, elem, at)) if set == "ban4" && elem == addr => return at,
                Ok(_) => {}
                Err(_) => panic!(
                    "{addr} never reached {} (in the set now: {})",
                    self.ns,
                    in_kernel(&self.ns, addr)
                ),
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn monitor_lines_give_set_and_element() {
        let e = |l: &str| super::element_added(l);
        assert_eq!(
            e("add element inet mxrep ban4 { 198.18.1.2 timeout 1h expires 1h }"),
            Some(("ban4".into(), "198.18.1.2".into()))
        );
        assert_eq!(
            e("add element inet mxrep_probe ready { 127.0.0.1 }"),
            Some(("ready".into(), "127.0.0.1".into()))
        );
        assert_eq!(
            e("delete element inet mxrep ban4 { 198.18.1.2 }").map(|x| x.0),
            None
        );
    }
}
