//! End-to-end benchmark on the multi-host test bed (3 nodes, 3 MX hosts with mxrep-agent and
//! real nftables, all in network namespaces; the agents follow log files this bench writes in
//! Postfix's own format, so "the decisive log line is written" is a moment we control):
//!
//! - ban propagation: from the write of the decisive log line on one MX host to the ban being an
//!   element of the kernel set on every MX host, p50 / p99 over many bans;
//! - ingest: events per second the cluster absorbs with all three agents reading logs written at
//!   full speed, and the propagation p99 under that load;
//! - failover: from SIGKILL of the leader to the first new ban enforced on every MX host.
//!
//! Needs root and nftables. `cargo build --release --workspace --bins && ./target/release/e2e-bench`
//! Options: `--bans N` (default 60), `--load-lines N` per MX host (default 100000),
//! `--compare tls|telemetry` (plaintext vs mutual TLS, or telemetry off vs on),
//! `--failover-rounds N` (default 20), `--failover-only`.

use mxrep_tests::netns::e2e_available;
use mxrep_tests::netns::Daemon;
use mxrep_tests::testbed::Testbed;
use mxrep_tests::{bin, wait_until};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

/// Options of the benchmark.
#[derive(clap::Parser)]
struct Opts {
    /// Bans measured on the idle cluster.
    #[arg(long, default_value_t = 60)]
    bans: usize,
    /// Delivering connections written per MX host in the ingest run (three log lines each).
    #[arg(long, default_value_t = 100_000)]
    load_lines: usize,
    /// What the two kinds of bed differ in: `tls` (plaintext vs mutual TLS) or `telemetry`
    /// (off vs /metrics on every process plus OTLP traces and metrics to a collector, every
    /// trace sampled).
    #[arg(long, default_value = "tls")]
    compare: Compare,
    /// Leader kills in the failover measure.
    #[arg(long, default_value_t = 20)]
    failover_rounds: usize,
    /// Measure failover only.
    #[arg(long)]
    failover_only: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compare {
    Tls,
    Telemetry,
}

/// Where the bed's processes send OTLP when telemetry is on (a host on the bed's bridge).
const COLLECTOR: &str = "192.0.2.51:4317";

/// A bed of the second kind (`on`) or the first, for the comparison asked for.
fn bed(compare: Compare, on: bool) -> (Testbed, Option<Daemon>) {
    match compare {
        Compare::Tls => (Testbed::start_opts(false, on, |_| String::new()), None),
        Compare::Telemetry if !on => (Testbed::start(false), None),
        Compare::Telemetry => {
            let env = [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{COLLECTOR}")),
                ("OTEL_TRACES_SAMPLER", "always_on".to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v));
            let mut bed =
                Testbed::start_telemetry(false, true, |_| String::new(), Some(env.to_vec()));
            let ns = bed.lab.host("ot", &["192.0.2.51/24"]);
            let sink = Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(bin("otlp-sink"))
                .args(["--listen", COLLECTOR])
                .spawn()
                .expect("start otlp-sink");
            (bed, Some(Daemon(sink)))
        }
    }
}

fn stamp() -> String {
    let out = Command::new("date")
        .args(["-u", "+%b %e %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Five connections from `addr`, each refused a recipient and delivering nothing: the last
/// `disconnect` line is the decisive one (it closes the fifth bad connection).
fn rejects(addr: &str, host: &str) -> String {
    let t = stamp();
    (0..5)
        .map(|i| {
            let p = format!("{t} {host} postfix/smtpd[{}]:", 1000 + i);
            format!(
                "{p} connect from unknown[{addr}]\n\
                 {p} NOQUEUE: reject: RCPT from unknown[{addr}]: 550 5.1.1 <nobody{i}@{host}.test>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.test> to=<nobody{i}@{host}.test> proto=ESMTP helo=<spam.test>\n\
                 {p} disconnect from unknown[{addr}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4\n"
            )
        })
        .collect()
}

fn in_kernel(ns: &str, addr: &str) -> bool {
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
fn one_ban(bed: &Testbed, addr: &str, i: usize) -> Duration {
    let text = rejects(addr, &bed.mx[i].name);
    until_everywhere(bed, addr, || append(&bed.mx[i].log, &text))
}

/// `mxrepctl ban ADDR` as an operator types it; returns the time from its start until all MX
/// hosts drop the address.
fn one_manual_ban(bed: &Testbed, addr: &str) -> Duration {
    until_everywhere(bed, addr, || {
        bed.ctl_json(&["ban", addr, "--for", "1h", "--reason", "bench"])
            .expect("mxrepctl ban");
    })
}

/// Runs `act`; returns the time from just before it until every MX host drops `addr`.
fn until_everywhere(bed: &Testbed, addr: &str, act: impl FnOnce()) -> Duration {
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

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// What one bed measured: idle propagation times, ingest rate, propagation times under load.
struct Measured {
    idle: Vec<f64>,
    ingest: f64,
    loaded: Vec<f64>,
}

fn main() {
    if !e2e_available("e2e-bench") {
        std::process::exit(1);
    }
    let Opts {
        bans,
        load_lines,
        compare,
        failover_rounds,
        failover_only,
    } = clap::Parser::parse();
    if failover_only {
        failover(&mut Testbed::start(false), failover_rounds);
        return;
    }
    let names = match compare {
        Compare::Tls => ["plaintext", "mutual TLS"],
        Compare::Telemetry => ["telemetry off", "telemetry on"],
    };
    // The same measures on the two kinds of bed, alternating twice: propagation times pooled
    // over both rounds of a kind, ingest the mean of its two rounds.
    let mut all: [Vec<Measured>; 2] = [vec![], vec![]];
    for round in 0..2 {
        for on in [false, true] {
            println!("--- round {}: {} ---", round + 1, names[on as usize]);
            let (bed, _collector) = bed(compare, on);
            all[on as usize].push(measure(&bed, bans, load_lines));
        }
    }
    let pooled = |ms: &[Measured], f: fn(&Measured) -> &Vec<f64>, p: f64| {
        let mut v: Vec<f64> = ms.iter().flat_map(|m| f(m).iter().copied()).collect();
        pct(&mut v, p)
    };
    let ingest = |ms: &[Measured]| ms.iter().map(|m| m.ingest).sum::<f64>() / ms.len() as f64;
    let (plain, tls) = (&all[0], &all[1]);
    let (p99_plain, p99_tls) = (
        pooled(plain, |m| &m.idle, 0.99),
        pooled(tls, |m| &m.idle, 0.99),
    );
    println!(
        "{} beside {} (2 rounds each): propagation p50 {:.0} vs {:.0} ms, p99 {p99_tls:.0} vs {p99_plain:.0} ms ({:+.0} %), under load p99 {:.0} vs {:.0} ms; ingest {:.0} vs {:.0} connections/s ({:.2}×)",
        names[1],
        names[0],
        pooled(tls, |m| &m.idle, 0.5),
        pooled(plain, |m| &m.idle, 0.5),
        (p99_tls / p99_plain - 1.0) * 100.0,
        pooled(tls, |m| &m.loaded, 0.99),
        pooled(plain, |m| &m.loaded, 0.99),
        ingest(tls),
        ingest(plain),
        ingest(tls) / ingest(plain),
    );
    failover(&mut Testbed::start(false), failover_rounds);
}

fn measure(bed: &Testbed, bans: usize, load_lines: usize) -> Measured {
    // 1. Propagation, idle cluster.
    let mut idle: Vec<f64> = (0..bans)
        .map(|k| one_ban(bed, &format!("198.18.{}.1", k + 1), k % 3).as_secs_f64() * 1000.0)
        .collect();
    let (p50, p99) = (pct(&mut idle, 0.5), pct(&mut idle, 0.99));
    println!(
        "ban propagation, decisive log line -> element of the set on all 3 MX hosts, {bans} bans:"
    );
    println!(
        "  p50 {p50:.0} ms   p99 {p99:.0} ms   max {:.0} ms",
        idle.last().unwrap()
    );
    let mut manual: Vec<f64> = (0..bans)
        .map(|k| one_manual_ban(bed, &format!("198.19.{}.1", k + 1)).as_secs_f64() * 1000.0)
        .collect();
    println!("operator ban, `mxrepctl ban` started -> element of the set on all 3 MX hosts, {bans} bans:");
    println!(
        "  p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        pct(&mut manual, 0.5),
        pct(&mut manual, 0.99),
        manual.last().unwrap()
    );

    // 2. Ingest at full speed, with propagation measured meanwhile.
    let policy = bed.dir.path().join("load-policy.toml");
    std::fs::write(
        &policy,
        "[message_rate]\nenabled = false\n[connection_rate]\nenabled = false\n",
    )
    .unwrap();
    bed.ctl_json(&["policy", "set", policy.to_str().unwrap()])
        .expect("policy set");
    let start = Instant::now();
    let writers: Vec<_> = bed
        .mx
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let log = m.log.clone();
            let host = m.name.clone();
            std::thread::spawn(move || {
                let t = stamp();
                let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                let mut buf = String::new();
                // One delivering connection per "event": connect, client=, disconnect.
                for n in 0..load_lines {
                    let (a, pid) = (n % 100, 10_000 + n);
                    buf.push_str(&format!(
                        "{t} {host} postfix/smtpd[{pid}]: connect from unknown[198.19.{i}.{a}]\n\
                         {t} {host} postfix/smtpd[{pid}]: {n:X}: client=unknown[198.19.{i}.{a}]\n\
                         {t} {host} postfix/smtpd[{pid}]: disconnect from unknown[198.19.{i}.{a}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"
                    ));
                    if buf.len() > 64 * 1024 {
                        f.write_all(buf.as_bytes()).unwrap();
                        buf.clear();
                    }
                }
                f.write_all(buf.as_bytes()).unwrap();
            })
        })
        .collect();
    let mut loaded: Vec<f64> = (0..20)
        .map(|k| one_ban(bed, &format!("198.18.{}.2", 100 + k), k % 3).as_secs_f64() * 1000.0)
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let total = (3 * load_lines) as u64;
    let counted = |bed: &Testbed| -> Option<u64> {
        let mut sum = 0;
        for i in 0..3 {
            for a in 0..100 {
                let r = bed
                    .ctl_json(&["ip", "show", &format!("198.19.{i}.{a}")])
                    .ok()?;
                sum += r["counters"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == "accepted messages")?["count"]
                    .as_u64()?;
            }
        }
        Some(sum)
    };
    wait_until(
        Duration::from_secs(600),
        "the cluster to count every load event",
        || (counted(bed)? >= total).then_some(()),
    );
    let took = start.elapsed().as_secs_f64();
    println!("ingest: {total} delivering connections (3 log lines each) from 3 agents reading logs written at full speed, all counted in {took:.1} s = {:.0} connections/s", total as f64 / took);
    println!(
        "  propagation meanwhile, 20 bans: p50 {:.0} ms   p99 {:.0} ms",
        pct(&mut loaded, 0.5),
        pct(&mut loaded, 0.99)
    );
    Measured {
        idle,
        ingest: total as f64 / took,
        loaded,
    }
}

/// Every node running, one leader named by all, and every node's log applied up to the leader's:
/// a healthy cluster, so each failover round starts from the same place.
fn wait_healthy(bed: &Testbed) -> u64 {
    wait_until(Duration::from_secs(60), "all 3 nodes caught up", || {
        let leader = bed.wait_for_leader();
        let statuses: Vec<_> = bed
            .nodes
            .iter()
            .map(|n| n.status())
            .collect::<Option<_>>()?;
        let top = statuses[leader as usize - 1]["last_log_index"].as_u64()?;
        statuses
            .iter()
            .all(|s| {
                s["last_applied"].as_u64() >= Some(top) && s["leader_id"].as_u64() == Some(leader)
            })
            .then_some(leader)
    })
}

/// Prints what the agents and nodes logged since `since` (an RFC 3339 stamp to the second).
fn explain_slow_round(bed: &Testbed, since: &str) {
    let recent = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.get(..19).is_some_and(|t| t >= since))
            .filter(|l| !l.contains("Unreachable") && !l.contains("backoff_drain"))
            .map(|l| l.chars().take(220).collect())
            .collect()
    };
    for m in &bed.mx {
        println!("    agent on {} since {since}:", m.name);
        recent(m.agent_log())
            .iter()
            .for_each(|l| println!("      {l}"));
    }
    for n in &bed.nodes {
        println!("    node {} since {since}:", n.id);
        recent(n.log_text())
            .iter()
            .for_each(|l| println!("      {l}"));
    }
}

fn failover(bed: &mut Testbed, rounds: usize) {
    // 3. Failover: SIGKILL of the leader of a healthy cluster, then one new ban.
    let mut fo = Vec::new();
    for round in 0..rounds {
        let leader = wait_healthy(bed);
        let stamp_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        bed.nodes[leader as usize - 1].kill();
        let killed = Instant::now();
        // One /24 per round: eight bad addresses in one /24 would ban the prefix instead.
        let addr = format!("198.19.{}.3", 150 + round % 100);
        let d = one_ban(bed, &addr, round % 3);
        let total = killed.elapsed().max(d);
        fo.push(total.as_secs_f64() * 1000.0);
        if total > Duration::from_secs(2) {
            explain_slow_round(bed, &stamp_at);
        }
        println!("  failover round {}: leader node {leader} killed, new ban enforced on all MX hosts after {:.0} ms", round + 1, fo[round]);
        bed.nodes[leader as usize - 1].start();
    }
    println!(
        "failover, leader SIGKILL -> first new ban on every MX host, {rounds} rounds: p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        pct(&mut fo, 0.5),
        pct(&mut fo, 0.99),
        fo.last().unwrap()
    );
}
