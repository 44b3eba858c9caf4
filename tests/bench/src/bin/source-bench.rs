//! Lines per second through each of the agent's log sources, in one run: the same 100,000
//! delivering connections (300,000 lines) as a Postfix log file, as Exim's mainlog, as Kubernetes container logs
//! (CRI, every `client=` line split in two parts), as systemd journal files read back through
//! `journalctl` (written by systemd-journal-remote beforehand, not timed), and as syslog over TCP
//! (octet-counted) and UDP. Each path runs the source's own code — follower or journalctl or
//! socket, framing, the Postfix parser and the connection tracker — up to the verdicts the uplink
//! would send; the uplink itself is measured by `e2e-bench`.
//!
//! `cargo build --release -p mxrep-bench --bins && ./target/release/source-bench [--connections N]`

use mxrep_agent::sources::connections::ConnectionTracker;
use mxrep_agent::sources::cri::CriJoiner;
use mxrep_agent::sources::journal::entry_line;
use mxrep_agent::sources::log_follower::LogFollower;
use mxrep_agent::sources::postfix::{parse_line_in, Line};
use mxrep_agent::sources::syslog::{frame::Framer, message::split};
use mxrep_agent::sources::timezone::LogTimezone;
use mxrep_agent::state_dir::Position;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(clap::Parser)]
struct Opts {
    /// Delivering connections (three lines each).
    #[arg(long, default_value_t = 100_000)]
    connections: usize,
    /// Rounds over all sources; the medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// The messages of `n` delivering connections (no header): (pid, message).
fn messages(n: usize) -> Vec<(usize, String)> {
    (0..n)
        .flat_map(|i| {
            let a = format!("198.19.{}.{}", (i / 250) % 250, i % 250 + 1);
            let pid = 10_000 + i;
            [
                (pid, format!("connect from mail.example[{a}]")),
                (pid, format!("4N{i:X}: client=mail.example[{a}]")),
                (pid, format!("disconnect from mail.example[{a}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")),
            ]
        })
        .collect()
}

/// Feeds one parsed line to the tracker; counts verdicts.
fn judge(tracker: &mut ConnectionTracker, read: Line, verdicts: &mut usize) {
    *verdicts += tracker.feed(read).len();
}

fn report(what: &str, lines: usize, verdicts: usize, t: Instant, baseline: Option<f64>) -> f64 {
    report_until(what, lines, verdicts, t, Instant::now(), baseline)
}

fn report_until(
    what: &str,
    lines: usize,
    verdicts: usize,
    t: Instant,
    end: Instant,
    baseline: Option<f64>,
) -> f64 {
    let rate = lines as f64 / (end - t).as_secs_f64();
    let ratio = baseline
        .map(|b| format!(" ({:.2}× the file)", rate / b))
        .unwrap_or_default();
    println!("  {what:<34} {rate:>10.0} lines/s{ratio}   ({verdicts} verdicts)");
    rate
}

fn main() {
    let Opts {
        connections,
        rounds,
    } = clap::Parser::parse();
    let msgs = messages(connections);
    let lines = msgs.len();
    let dir = tempfile::tempdir().unwrap();
    let tz = LogTimezone::Utc;
    let now = chrono::Utc::now();
    println!("{connections} delivering connections, {lines} lines, through each source:");
    let mut rates: Vec<Vec<f64>> = vec![];
    for round in 1..=rounds {
        println!("round {round}:");
        let r = measure(&msgs, dir.path(), &tz, now);
        for (k, v) in r.into_iter().enumerate() {
            if rates.len() <= k {
                rates.push(vec![]);
            }
            rates[k].push(v);
        }
    }
    let names = [
        "Postfix log file",
        "container logs (CRI)",
        "systemd journal",
        "Exim mainlog file",
        "syslog over TCP",
        "syslog over UDP",
    ];
    println!("median of {rounds} rounds (ratio to the file's median):");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let base = median(&mut rates[0]);
    for (name, v) in names.iter().zip(rates.iter_mut()) {
        let m = median(v);
        println!("  {name:<24} {m:>10.0} lines/s  {:.2}×", m / base);
    }
}

/// One round over every source; the rates in the order of the report.
fn measure(
    msgs: &[(usize, String)],
    dir: &std::path::Path,
    tz: &LogTimezone,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<f64> {
    let lines = msgs.len();
    let tz = tz.clone();
    let mut rates = vec![];
    let stamp = now.format("%b %e %H:%M:%S").to_string();
    let iso = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    // 1. A Postfix log file.
    let file = dir.join("maillog");
    let mut text = String::new();
    for (pid, m) in msgs {
        text.push_str(&format!("{stamp} mx1 postfix/smtpd[{pid}]: {m}\n"));
    }
    std::fs::write(&file, &text).unwrap();
    let t = Instant::now();
    let mut f = LogFollower::new(&file, Some(Position::default()));
    let (mut tracker, mut verdicts) = (ConnectionTracker::default(), 0);
    for l in f.poll() {
        judge(&mut tracker, parse_line_in(&l, now, &tz), &mut verdicts);
    }
    let base = report("Postfix log file", lines, verdicts, t, None);
    rates.push(base);

    // 2. Kubernetes container logs (CRI), partial lines joined.
    let cri = dir.join("0.log");
    let mut text = String::new();
    for (pid, m) in msgs {
        let whole = format!("postfix/smtpd[{pid}]: {m}");
        if m.contains("client=") {
            let (a, b) = whole.split_at(whole.len() / 2);
            text.push_str(&format!("{iso} stdout P {a}\n{iso} stdout F {b}\n"));
        } else {
            text.push_str(&format!("{iso} stdout F {whole}\n"));
        }
    }
    std::fs::write(&cri, &text).unwrap();
    let t = Instant::now();
    let mut f = LogFollower::new(&cri, Some(Position::default()));
    let (mut tracker, mut verdicts, mut joiner) =
        (ConnectionTracker::default(), 0, CriJoiner::default());
    for l in f.poll() {
        if let Ok(Some(c)) = joiner.push(&l) {
            judge(&mut tracker, c.to_line("node-1", now, &tz), &mut verdicts);
        }
    }
    rates.push(report(
        "container logs (CRI)",
        lines,
        verdicts,
        t,
        Some(base),
    ));

    // 3. The systemd journal, read back through journalctl.
    let jdir = dir.join("journal");
    let _ = std::fs::remove_dir_all(&jdir);
    std::fs::create_dir_all(&jdir).unwrap();
    let micros = now.timestamp_micros();
    let mut export = String::new();
    for (i, (pid, m)) in msgs.iter().enumerate() {
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mx1\nSYSLOG_IDENTIFIER=postfix/smtpd\nSYSLOG_PID={pid}\nMESSAGE={m}\n\n",
            micros + i as i64,
            1 + i
        ));
    }
    let export_file = dir.join("entries.export");
    std::fs::write(&export_file, export).unwrap();
    let written = Command::new("/lib/systemd/systemd-journal-remote")
        .arg(format!("--output={}", jdir.join("bench.journal").display()))
        .arg(&export_file)
        .stderr(Stdio::null())
        .status();
    if written.is_ok_and(|s| s.success()) {
        let t = Instant::now();
        let mut child = Command::new("journalctl")
            .arg(format!("--directory={}", jdir.display()))
            .args(["--output=json", "--no-pager"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("journalctl");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut tracker, mut verdicts) = (ConnectionTracker::default(), 0);
        for json in out.lines() {
            if let Some((line, _cursor)) = entry_line(&json.unwrap(), "mx1") {
                judge(&mut tracker, parse_line_in(&line, now, &tz), &mut verdicts);
            }
        }
        child.wait().unwrap();
        rates.push(report(
            "systemd journal (journalctl)",
            lines,
            verdicts,
            t,
            Some(base),
        ));
    } else {
        println!("  systemd journal: skipped (apt-get install systemd-journal-remote)");
        rates.push(0.0);
    }

    // 4. Exim's mainlog: the same connections as Exim logs them.
    let exim = dir.join("mainlog");
    let day = now.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut text = String::new();
    for (i, (pid, m)) in msgs.iter().enumerate() {
        let a = m
            .split('[')
            .nth(1)
            .and_then(|r| r.split(']').next())
            .unwrap_or("");
        text.push_str(&match i % 3 {
            0 => format!("{day} SMTP connection from [{a}]:{pid} (TCP/IP connection count = 1)\n"),
            1 => format!("{day} 1xX{pid:X}-0000-00 <= s@example.test H=(mail.example) [{a}]:{pid} P=esmtp S=449\n"),
            _ => format!("{day} SMTP connection from (mail.example) [{a}]:{pid} closed by QUIT\n"),
        });
    }
    std::fs::write(&exim, &text).unwrap();
    let t = Instant::now();
    let mut f = LogFollower::new(&exim, Some(Position::default()));
    let (mut tracker, mut verdicts) = (ConnectionTracker::default(), 0);
    for l in f.poll() {
        judge(&mut tracker, parse_line_in(&l, now, &tz), &mut verdicts);
    }
    rates.push(report("Exim mainlog file", lines, verdicts, t, Some(base)));

    // 5. Syslog over TCP, octet-counted, and over UDP.
    let syslog: Vec<String> = msgs
        .iter()
        .map(|(pid, m)| format!("<22>{stamp} mx1 postfix/smtpd[{pid}]: {m}"))
        .collect();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let payload: Vec<u8> = syslog
        .iter()
        .flat_map(|m| format!("{} {m}", m.len()).into_bytes())
        .collect();
    let sender = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&payload).unwrap();
    });
    let t = Instant::now();
    let (mut conn, peer) = tcp.accept().unwrap();
    let (mut framer, mut buf) = (Framer::default(), vec![0u8; 64 * 1024]);
    let (mut tracker, mut verdicts, mut got) = (ConnectionTracker::default(), 0, 0);
    while got < lines {
        let n = std::io::Read::read(&mut conn, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        for m in framer.push(&buf[..n]).unwrap() {
            got += 1;
            if let Some((_host, line)) = split(&m, &peer.ip().to_string()) {
                judge(&mut tracker, parse_line_in(&line, now, &tz), &mut verdicts);
            }
        }
    }
    sender.join().unwrap();
    rates.push(report(
        "syslog over TCP (octet-counted)",
        got,
        verdicts,
        t,
        Some(base),
    ));

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let to = udp.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for m in &syslog {
            s.send_to(m.as_bytes(), to).unwrap();
        }
    });
    let t = Instant::now();
    let (mut tracker, mut verdicts, mut got) = (ConnectionTracker::default(), 0, 0);
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = t;
    while let Ok((n, peer)) = udp.recv_from(&mut buf) {
        got += 1;
        last = Instant::now();
        let m = String::from_utf8_lossy(&buf[..n]);
        if let Some((_host, line)) = split(&m, &peer.ip().to_string()) {
            judge(&mut tracker, parse_line_in(&line, now, &tz), &mut verdicts);
        }
        if got == lines {
            break;
        }
    }
    sender.join().unwrap();
    let rate = report_until("syslog over UDP", got, verdicts, t, last, Some(base));
    if got < lines {
        println!(
            "    UDP lost {} of {lines} datagrams in the socket buffer (received at {rate:.0}/s)",
            lines - got
        );
    }
    rates.push(rate);
    rates
}
