//! DNS benchmarks, each beside its baseline in the same run:
//!
//! 1. queries a DNS list receives for the same sessions over three MX hosts: mxrep (a real
//!    3-node cluster that looks each address up once for the fleet) beside one cache per MX host
//!    (what postscreen does; here hickory-resolver's cache, one per host), counted in each
//!    rbldnsd's query log — for the traffic mix (`mxrep_tests::mix`, MX chosen per session) and
//!    for a botnet whose every address tries all three MX hosts;
//! 2. mxrep's DNSBL zone: answers per second and p99 beside rbldnsd serving the same ban list
//!    exported with `mxrepctl bans export --format rbldnsd`, same client, same queries;
//! 3. time from a ban (the admin call) to the zone answering it.
//!
//! Needs root (rbldnsd drops to its user) and rbldnsd (installed by `.ci/run`).
//! `cargo build --release --workspace --bins && ./target/release/dns-bench`

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use mxrep_proto::v1 as pb;
use mxrep_tests::dns::{rbldnsd, rbldnsd_with, Dataset};
use mxrep_tests::events::{now_ms, send_blocking, verdict};
use mxrep_tests::netns::{tool_available, Daemon};
use mxrep_tests::*;
use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// A list whose query log counts what it was asked.
struct CountedList {
    _daemon: Daemon,
    log: std::path::PathBuf,
    port: u16,
}

impl CountedList {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let logs = dir.join("log");
        std::fs::create_dir_all(&logs).unwrap();
        std::process::Command::new("chown")
            .args(["rbldns"])
            .arg(&logs)
            .status()
            .unwrap();
        let log = logs.join("queries.log");
        // With an SOA, a "not listed" answer carries a negative TTL that caches may keep.
        let text = "$SOA 3600 ns.bl.test. hostmaster.bl.test. 1 3600 600 86400 3600\n:127.0.0.2:Listed by bl.test\n127.0.0.2\n203.0.113.0/24\n";
        let set = Dataset {
            zone: "bl.test",
            kind: "ip4set",
            file: "bl.zone",
            text,
        };
        let extra = ["-l".to_string(), format!("+{}", log.display())];
        let daemon = rbldnsd_with(None, dir, &format!("127.0.0.1/{port}"), &[set], &extra);
        Self {
            _daemon: daemon,
            log,
            port,
        }
    }

    /// A-record queries so far (a listed address's TXT is not counted: postscreen asks none).
    fn a_queries(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" A IN:"))
            .count()
    }

    /// Waits until the count stops moving (2 s without a new query), within a minute.
    fn settled(&self) -> usize {
        let mut last = (usize::MAX, Instant::now());
        wait_until(Duration::from_secs(60), "the queries to settle", || {
            std::thread::sleep(Duration::from_millis(200));
            let n = self.a_queries();
            if n != last.0 {
                last = (n, Instant::now());
            }
            (last.1.elapsed() > Duration::from_secs(2)).then_some(n)
        })
    }
}

/// (MX host, client address) in arrival order.
type Traffic = Vec<(usize, String)>;

fn mix_traffic(secs: u64) -> Traffic {
    (0..secs)
        .flat_map(mxrep_tests::mix::sessions)
        .map(|s| (s.mx, s.addr))
        .collect()
}

fn botnet_traffic(bots: u32) -> Traffic {
    (0..bots)
        .flat_map(|i| {
            let a = format!("198.18.{}.{}", 100 + i / 250, 1 + i % 250);
            (0..3).map(move |mx| (mx, a.clone()))
        })
        .collect()
}

/// Queries the list received while mxrep's cluster ingested `traffic`.
fn mxrep_queries(c: &TestCluster, list: &CountedList, traffic: &Traffic) -> usize {
    let before = list.a_queries();
    for chunk in traffic.chunks(60) {
        for mx in 0..3 {
            let events: Vec<pb::Event> = chunk
                .iter()
                .filter(|(m, _)| *m == mx)
                .map(|(_, a)| verdict(a, now_ms(), pb::Verdict::Neutral, |v| v.deferred = 1))
                .collect();
            if !events.is_empty() {
                let node = c.node(mx as u64 + 1);
                send_blocking(&node.api, &format!("mx{}", mx + 1), events);
            }
        }
    }
    list.settled() - before
}

fn resolver_at(port: u16) -> TokioResolver {
    let mut ns = NameServerConfig::udp_and_tcp(IpAddr::from([127, 0, 0, 1]));
    for c in &mut ns.connections {
        c.port = port;
    }
    let mut opts = ResolverOpts::default();
    opts.attempts = 1;
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .unwrap()
}

/// Queries the list received with one caching resolver per MX host asking for every session.
fn per_host_queries(rt: &tokio::runtime::Runtime, list: &CountedList, traffic: &Traffic) -> usize {
    let before = list.a_queries();
    rt.block_on(async {
        let hosts: Vec<TokioResolver> = (0..3).map(|_| resolver_at(list.port)).collect();
        for (mx, addr) in traffic {
            let ip: IpAddr = addr.parse().unwrap();
            let name = mxrep_node::dns::resolver::query_name(ip, "bl.test");
            let _ = hosts[*mx].ipv4_lookup(name.as_str()).await;
        }
    });
    list.settled() - before
}

fn queries_bench(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let (ours, theirs) = (CountedList::start(&ours), CountedList::start(&theirs));
    let port = ours.port;
    let c = TestCluster::start_with(3, Tuning::default(), |_| {
        format!("dns_resolver = \"127.0.0.1:{port}\"")
    });
    c.wait_for_leader(3, Duration::from_secs(30));
    let policy = c.dir.path().join("dnsbl.toml");
    std::fs::write(&policy, "[dnsbl]\nsites = [\"bl.test\"]\nthreshold = 100\n").unwrap();
    assert!(
        ctl(&c.node(1).api, &["policy", "set", policy.to_str().unwrap()])
            .status
            .success()
    );
    // Lookups start once every node has seen the policy (it polls every 2 s).
    for id in 1..=3 {
        let api = c.node(id).api.clone();
        wait_until(Duration::from_secs(30), "the policy everywhere", || {
            let p = ctl_json(&api, &["policy", "show"]).ok()?;
            (p["dnsbl"]["sites"][0] == "bl.test").then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(2500));
    println!(
        "DNS list queries for the same sessions over 3 MX hosts (A queries the list received):"
    );
    for (what, traffic) in [
        (
            "traffic mix, 600 s (MX chosen per session)",
            mix_traffic(600),
        ),
        (
            "botnet, 400 addresses each trying all 3 MX hosts",
            botnet_traffic(400),
        ),
    ] {
        let distinct: BTreeSet<&str> = traffic.iter().map(|(_, a)| a.as_str()).collect();
        let per_host: HashSet<(usize, &str)> =
            traffic.iter().map(|(m, a)| (*m, a.as_str())).collect();
        let mx = mxrep_queries(&c, &ours, &traffic);
        let base = per_host_queries(rt, &theirs, &traffic);
        println!(
            "  {what}: {} sessions, {} distinct addresses ({} distinct per host)\n    mxrep cluster: {mx:6} queries   one cache per MX host: {base:6}   ratio {:.2}",
            traffic.len(),
            distinct.len(),
            per_host.len(),
            mx as f64 / base as f64
        );
    }
}

/// A DNS query for `name` type A with id `id`, in wire format.
fn query_packet(id: u16, name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.trim_end_matches('.').split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
    p
}

/// Closed-loop load on `server`: `clients` sockets, one query in flight each, for `secs`;
/// (answers per second, p99 ms). Every answer's id and status is checked.
async fn zone_load(
    server: SocketAddr,
    names: &[(String, bool)],
    clients: usize,
    secs: u64,
) -> (f64, f64) {
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = vec![];
    for c in 0..clients {
        let names = names.to_vec();
        tasks.push(tokio::spawn(async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sock.connect(server).await.unwrap();
            let mut buf = [0u8; 1500];
            let mut lat = vec![];
            let mut i = c * 7919;
            while Instant::now() < until {
                let (name, listed) = &names[i % names.len()];
                let id = (i % 65_536) as u16;
                i += 1;
                let t = Instant::now();
                sock.send(&query_packet(id, name)).await.unwrap();
                let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
                    .await
                    .expect("an answer within 2 s")
                    .unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id);
                let rcode = buf[3] & 0x0f;
                assert_eq!(rcode == 0, *listed, "{name}: rcode {rcode}");
            }
            lat
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    (rate, all[all.len() * 99 / 100])
}

fn zone_bench(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let zport = free_port();
    let zone = "bl.mxrep.test";
    let node = NodeProc::single_leading(
        dir.path(),
        &format!("dnsbl_listen = \"127.0.0.1:{zport}\"\ndnsbl_zone = \"{zone}\""),
    );
    // 20,000 bans: 18,000 addresses and 2,000 /24 prefixes.
    let mut list = String::new();
    for i in 0..18_000u32 {
        list.push_str(&format!(
            "10.{}.{}.{}\n",
            1 + i / 60_000,
            (i / 250) % 250,
            1 + i % 250
        ));
    }
    for i in 0..2_000u32 {
        list.push_str(&format!("172.{}.{}.0/24\n", 16 + i / 250, i % 250));
    }
    let file = dir.path().join("bans.txt");
    std::fs::write(&file, list).unwrap();
    let t = Instant::now();
    let out = ctl(
        &node.api,
        &[
            "bans",
            "import",
            file.to_str().unwrap(),
            "--for",
            "1d",
            "--reason",
            "bench",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "mxrep DNSBL zone (20,000 bans imported in {:.1} s):",
        t.elapsed().as_secs_f64()
    );
    let export = ctl(&node.api, &["bans", "export", "--format", "rbldnsd"]);
    assert!(export.status.success());
    let zones = dir.path().join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    let rport = free_port();
    let text = String::from_utf8_lossy(&export.stdout).to_string();
    let set = Dataset {
        zone,
        kind: "ip4set",
        file: "mxrep.zone",
        text: &text,
    };
    let _rbldnsd = rbldnsd(None, &zones, &format!("127.0.0.1/{rport}"), &[set]);
    // Queries: listed addresses, addresses inside listed /24s, and unlisted ones.
    let mut names = vec![];
    for i in 0..3_000u32 {
        let (a, listed) = match i % 4 {
            0 | 1 => (format!("10.1.{}.{}", (i / 250) % 72, 1 + i % 250), true),
            2 => (
                format!("172.{}.{}.{}", 16 + (i / 250) % 8, i % 250, 1 + i % 200),
                true,
            ),
            _ => (format!("192.0.2.{}", i % 250), false),
        };
        let ip: IpAddr = a.parse().unwrap();
        names.push((mxrep_node::dns::resolver::query_name(ip, zone), listed));
    }
    wait_until(
        Duration::from_secs(30),
        "rbldnsd to load the export",
        || {
            let (s, _) = mxrep_tests::dns::dig("127.0.0.1", rport, &names[0].0, "A");
            (s == "NOERROR").then_some(())
        },
    );
    let (clients, secs) = (16, 5);
    let ours = rt.block_on(zone_load(
        SocketAddr::from(([127, 0, 0, 1], zport)),
        &names,
        clients,
        secs,
    ));
    let theirs = rt.block_on(zone_load(
        SocketAddr::from(([127, 0, 0, 1], rport)),
        &names,
        clients,
        secs,
    ));
    println!(
        "  mxrep-node zone:  {:8.0} answers/s   p99 {:5.2} ms",
        ours.0, ours.1
    );
    println!(
        "  rbldnsd (export): {:8.0} answers/s   p99 {:5.2} ms   (mxrep at {:.2}× rbldnsd's rate; {clients} clients, one query in flight each, {secs} s)",
        theirs.0,
        theirs.1,
        ours.0 / theirs.0
    );
    ban_to_zone(rt, &node.api, zport, zone);
}

/// From the admin call that bans an address to the zone answering it, over 20 bans.
fn ban_to_zone(rt: &tokio::runtime::Runtime, api: &str, zport: u16, zone: &str) {
    let times = rt.block_on(async {
        let ch = mxrep_common::endpoint::connect(api).await.unwrap();
        let mut admin = pb::admin_client::AdminClient::new(ch);
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(("127.0.0.1", zport)).await.unwrap();
        let mut times = vec![];
        for i in 0..20u16 {
            let addr: IpAddr = format!("100.64.0.{}", i + 1).parse().unwrap();
            let name = mxrep_node::dns::resolver::query_name(addr, zone);
            let t = Instant::now();
            admin
                .ban(pb::BanRequest {
                    prefix: addr.to_string(),
                    duration_seconds: 3600,
                    reason: "bench".into(),
                    force: false,
                })
                .await
                .unwrap();
            let mut buf = [0u8; 1500];
            loop {
                sock.send(&query_packet(i, &name)).await.unwrap();
                let n = sock.recv(&mut buf).await.unwrap();
                if n >= 12 && buf[3] & 0x0f == 0 {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "the ban never reached the zone"
                );
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times
    });
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  ban → zone answers it: median {:.2} ms, max {:.2} ms (20 bans, from the admin call)",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
}

fn main() {
    if !tool_available("dns-bench", "rbldnsd", "rbldnsd") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    queries_bench(&rt);
    zone_bench(&rt);
}
