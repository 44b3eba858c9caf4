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
//! `--steady-rate N` (connections/s, default 45000), `--failover-rounds N` (default 20),
//! `--failover-only`.

use mxrep_tests::netns::e2e_available;
use mxrep_tests::netns::Daemon;
use mxrep_tests::testbed::Testbed;
use mxrep_tests::{bin, wait_until};

mod failover;
mod load;
mod probe;

use failover::failover;
use probe::KernelWatch;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    /// Connections per second (all MX hosts) of the steady load beside which propagation is
    /// measured again.
    #[arg(long, default_value_t = 45_000.0)]
    steady_rate: f64,
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

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// What one bed measured: idle propagation times, ingest rate, propagation times under load.
struct Measured {
    idle: Vec<f64>,
    ingest: f64,
    loaded: Vec<f64>,
    steady: Vec<f64>,
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
        steady_rate,
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
            all[on as usize].push(measure(&bed, bans, load_lines, steady_rate));
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
        "{} beside {} (2 rounds each): propagation p50 {:.0} vs {:.0} ms, p99 {p99_tls:.0} vs {p99_plain:.0} ms ({:+.0} %), under load p99 {:.0} vs {:.0} ms, beside a steady load p99 {:.0} vs {:.0} ms; ingest {:.0} vs {:.0} connections/s ({:.2}×)",
        names[1],
        names[0],
        pooled(tls, |m| &m.idle, 0.5),
        pooled(plain, |m| &m.idle, 0.5),
        (p99_tls / p99_plain - 1.0) * 100.0,
        pooled(tls, |m| &m.loaded, 0.99),
        pooled(plain, |m| &m.loaded, 0.99),
        pooled(tls, |m| &m.steady, 0.99),
        pooled(plain, |m| &m.steady, 0.99),
        ingest(tls),
        ingest(plain),
        ingest(tls) / ingest(plain),
    );
    failover(&mut Testbed::start(false), failover_rounds);
}

fn measure(bed: &Testbed, bans: usize, load_lines: usize, steady_rate: f64) -> Measured {
    let watch = KernelWatch::start(bed);
    // 1. Propagation, idle cluster.
    let mut idle: Vec<f64> = (0..bans)
        .map(|k| {
            watch
                .one_ban(bed, &format!("198.18.{}.1", k + 1), k % 3)
                .as_secs_f64()
                * 1000.0
        })
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
        .map(|k| {
            watch
                .one_manual_ban(bed, &format!("198.19.{}.1", k + 1))
                .as_secs_f64()
                * 1000.0
        })
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
    let full_speed = load::Load {
        per_host: load_lines,
        rate: None,
        net: 0,
    };
    let writers = load::start(bed, full_speed, Arc::default());
    let loaded_addr = |k: usize| format!("198.18.{}.2", 100 + k);
    // When each decisive line was written (wall clock, unix ms), to set beside the cluster time
    // its ban's entry was proposed at.
    let mut written_ms = vec![];
    // Per MX host (each follows its own node first: mx1 node 1, …), for the first bans.
    let mut each_mx: Vec<Vec<u64>> = vec![];
    let mut loaded: Vec<f64> = (0..20)
        .map(|k| {
            written_ms.push(mxrep_common::clock::unix_ms());
            let each = watch.one_ban_each(bed, &loaded_addr(k), k % 3);
            each_mx.push(each.iter().map(|d| d.as_millis() as u64).collect());
            each.into_iter().max().unwrap().as_secs_f64() * 1000.0
        })
        .collect();
    // In the order made: where in the flood the slow ones fall.
    let in_order: Vec<u64> = loaded.iter().map(|ms| *ms as u64).collect();
    for w in writers {
        w.join().unwrap();
    }
    let total = (3 * load_lines) as u64;
    let accepted = |bed: &Testbed, addr: &str| -> Option<u64> {
        let r = bed.ctl_json(&["ip", "show", addr]).ok()?;
        r["counters"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "accepted messages")?["count"]
            .as_u64()
    };
    // Client `a` of a log writes every 100th connection: its share of them.
    let share = |a: usize| (load_lines / 100 + usize::from(a < load_lines % 100)) as u64;
    // Every query is an `mxrepctl` process in a namespace, competing with the bed for the two
    // cores: wait on the three clients written last (3 queries a poll), then sum all 300.
    let last = (load_lines - 1) % 100;
    wait_until(
        Duration::from_secs(600),
        "the last client of every log to be counted",
        || {
            (0..3)
                .all(|i| accepted(bed, &format!("198.19.{i}.{last}")) == Some(share(last)))
                .then_some(())
        },
    );
    let counted = |bed: &Testbed| -> Option<u64> {
        let mut sum = 0;
        for i in 0..3 {
            for a in 0..100 {
                sum += accepted(bed, &format!("198.19.{i}.{a}"))?;
            }
        }
        Some(sum)
    };
    // The time is taken when the last clients are counted; if the sum then falls short, when
    // it is whole.
    let mut took = start.elapsed().as_secs_f64();
    let mut whole_at_once = true;
    wait_until(
        Duration::from_secs(600),
        "the cluster to count every load event",
        || {
            let whole = counted(bed).is_some_and(|n| n >= total);
            whole_at_once &= whole;
            whole.then_some(())
        },
    );
    if !whole_at_once {
        took = start.elapsed().as_secs_f64();
    }
    println!("ingest: {total} delivering connections (3 log lines each) from 3 agents reading logs written at full speed, all counted in {took:.1} s = {:.0} connections/s", total as f64 / took);
    println!(
        "  propagation meanwhile, 20 bans: p50 {:.0} ms   p99 {:.0} ms   (each, in order, ms: {in_order:?})",
        pct(&mut loaded, 0.5),
        pct(&mut loaded, 0.99)
    );
    // The leader stamps an entry when it proposes it: the line's way up to that point (agent
    // reading and sending, the node's queue) against the rest (commit, apply, ban streams,
    // netlink on every MX host).
    let bans = bed.ctl_json(&["bans", "list"]).expect("bans list");
    let up: Vec<i64> = (0..20)
        .map(|k| {
            let prefix = format!("{}/32", loaded_addr(k));
            bans["bans"]
                .as_array()
                .and_then(|a| a.iter().find(|b| b["prefix"] == prefix.as_str()))
                .and_then(|b| b["created_unix_ms"].as_i64())
                .map_or(-1, |created| created - written_ms[k])
        })
        .collect();
    println!("    of which line written -> its entry proposed by the leader, ms: {up:?}");
    println!(
        "    the first three on mx1, mx2, mx3 (following nodes 1, 2, 3; node {} leads), ms: {:?}",
        bed.wait_for_leader(),
        &each_mx[..3]
    );
    let steady = steady_propagation(bed, &watch, steady_rate);
    Measured {
        idle,
        ingest: total as f64 / took,
        loaded,
        steady,
    }
}

/// Propagation of 20 bans while every MX host's log grows at a steady `rate` connections/s in
/// all (three lines each), below what the bed absorbs: the backlog stays small, so this shows
/// whether a decision overtakes the counting that goes on beside it.
fn steady_propagation(bed: &Testbed, watch: &KernelWatch, rate: f64) -> Vec<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let steady = load::Load {
        per_host: usize::MAX,
        rate: Some(rate / 3.0),
        net: 10,
    };
    let started = Instant::now();
    let writers = load::start(bed, steady, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let mut times: Vec<f64> = (0..20)
        .map(|k| {
            watch
                .one_ban(bed, &format!("198.18.{}.4", 150 + k), k % 3)
                .as_secs_f64()
                * 1000.0
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    println!(
        "  propagation under a steady {:.0} connections/s ({:.0} lines/s written), 20 bans: p50 {:.0} ms   p99 {:.0} ms",
        rate,
        3.0 * written as f64 / started.elapsed().as_secs_f64(),
        pct(&mut times, 0.5),
        pct(&mut times, 0.99)
    );
    times
}
