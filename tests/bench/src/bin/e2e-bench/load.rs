//! Load for the bed: delivering connections (connect, client=, disconnect — three log lines
//! each, the way Postfix logs them) written into every MX host's log, as fast as possible or at
//! a steady rate.

use crate::probe::stamp;
use mxrep_tests::testbed::Testbed;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to write into each MX host's log.
#[derive(Clone, Copy)]
pub struct Load {
    /// Connections per host at most.
    pub per_host: usize,
    /// Connections per second per host; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Host `i`'s clients are 198.19.(`net` + i).0–99.
    pub net: usize,
}

/// Starts one writer per MX host; each returns the connections it wrote. A writer ends when it
/// has written `per_host` connections or `stop` is set.
pub fn start(bed: &Testbed, load: Load, stop: Arc<AtomicBool>) -> Vec<JoinHandle<usize>> {
    bed.mx
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (log, host, stop) = (m.log.clone(), m.name.clone(), stop.clone());
            std::thread::spawn(move || write(&log, &host, load.net + i, load, &stop))
        })
        .collect()
}

fn write(log: &std::path::Path, host: &str, net: usize, load: Load, stop: &AtomicBool) -> usize {
    let t = stamp();
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    let started = Instant::now();
    let mut buf = String::new();
    let mut n = 0;
    while n < load.per_host && !stop.load(Ordering::Relaxed) {
        // Paced: what is due by now, written in one go every 5 ms.
        let due = match load.rate {
            Some(r) => ((started.elapsed().as_secs_f64() * r) as usize).min(load.per_host),
            None => load.per_host,
        };
        while n < due && buf.len() < 64 * 1024 {
            let (a, pid) = (n % 100, 10_000 + n);
            let client = format!("unknown[198.19.{net}.{a}]");
            buf.push_str(&format!(
                "{t} {host} postfix/smtpd[{pid}]: connect from {client}\n\
                 {t} {host} postfix/smtpd[{pid}]: {n:X}: client={client}\n\
                 {t} {host} postfix/smtpd[{pid}]: disconnect from {client} ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"
            ));
            n += 1;
        }
        f.write_all(buf.as_bytes()).unwrap();
        buf.clear();
        if load.rate.is_some() && n >= due {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    n
}
