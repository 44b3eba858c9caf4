//! Agent benchmarks, each beside its baseline in the same run:
//!
//! 1. loading a 100,000-element ban list into empty sets (the agent's reconcile) beside `nft -f`
//!    loading the same elements from a plain script;
//! 2. one more ban reaching the kernel when the sets already hold 100,000 elements, for an
//!    address (timeout-only set) and for a prefix (interval set); extending and removing one
//!    ban while 100,000 prefixes are held, over netlink beside the same change through
//!    `nft -f -` (how the agent did it before);
//! 3. Postfix log lines parsed per second (the shared real capture, repeated);
//! 4. policy requests per second and p99 latency over persistent connections, the agent's policy
//!    service beside postgrey, driven by the same client.
//!
//! Needs root, nftables and postgrey (installed by `.ci/run`); nft work happens in a network
//! namespace of its own, so the host's ruleset is never touched.
//!
//! `cargo build --release --workspace --bins && ./target/release/agent-bench`

use mxrep_agent::enforce::view::{BanView, Known, Refusal};
use mxrep_agent::sources::greylist::GreylistClient;
use mxrep_agent::sources::policy_server::PolicyService;
use mxrep_agent::sources::postfix::{parse_line, Parsed};
use mxrep_agent::uplink::{Uplink, UplinkConfig};
use mxrep_tests::netns::{e2e_available, Lab};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

mod enforcement;
use enforcement::{extend_and_remove_bench, nft_benches};

fn parse_bench() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/postfix-3.7-maillog.log"
    );
    let text = std::fs::read_to_string(path).expect("sample log");
    let lines: Vec<&str> = text.lines().collect();
    let now = chrono_now();
    let rounds = 200;
    let t = Instant::now();
    let mut events = 0;
    for _ in 0..rounds {
        for l in &lines {
            if let Parsed::Event(_) = parse_line(l, now) {
                events += 1;
            }
        }
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "log parsing: {:.0} lines/s ({} lines of the real capture x {rounds}, {events} events)",
        (lines.len() * rounds) as f64 / el,
        lines.len()
    );
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// `conns` persistent connections, each sending requests one after another for `secs`.
async fn policy_load(addr: &str, conns: usize, secs: u64) -> (f64, f64) {
    let req = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=10.250.0.10\nclient_name=unknown\nhelo_name=spam1.test\nsender=bulk@spam.test\nrecipient=user@mx1.test\nrecipient_count=0\ninstance=2692.6b086701.1d70c.0\n\n";
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..conns {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let (r, mut w) = tokio::net::TcpStream::connect(&addr)
                .await
                .unwrap()
                .into_split();
            let mut r = BufReader::new(r);
            let mut lat = Vec::new();
            let mut line = String::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                // A new triplet each time, so a greylister does real work.
                let body = req.replace("user@mx1.test", &format!("u{c}x{i}@mx1.test"));
                i += 1;
                let t = Instant::now();
                w.write_all(body.as_bytes()).await.unwrap();
                line.clear();
                r.read_line(&mut line).await.unwrap();
                assert!(line.starts_with("action="), "{line:?}");
                line.clear();
                r.read_line(&mut line).await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    (rate, p99)
}

fn policy_bench() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conns = 4;
    let secs = 5;
    let ours = rt.block_on(async {
        let view = BanView::default();
        view.insert(
            "203.0.113.0/24".parse().unwrap(),
            Known {
                expires_ms: i64::MAX,
                reason: "bench".into(),
                refusal: Refusal::Drop,
            },
        );
        // Events go to an uplink whose cluster is unreachable: pushing costs what it costs live.
        let mut cfg = UplinkConfig::new(vec!["127.0.0.1:1".into()], "bench".into());
        cfg.queue_capacity = 1_000_000;
        let svc = PolicyService {
            view,
            uplink: Some(Uplink::start(cfg)),
            greylist: None,
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(svc.serve(l));
        policy_load(&addr, conns, secs).await
    });

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("postgrey");
    std::fs::create_dir_all(&db).unwrap();
    let _ = Command::new("chown")
        .args(["postgrey", db.to_str().unwrap()])
        .status();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut pg = Command::new("postgrey")
        .arg(format!("--inet=127.0.0.1:{port}"))
        .arg("--delay=60")
        .arg(format!("--dbdir={}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgrey (apt-get install postgrey)");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "postgrey did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let theirs = rt.block_on(policy_load(&addr, conns, secs));
    let _ = pg.kill();
    let _ = pg.wait();
    let grey = greylist_load(&rt, conns, secs);
    println!("policy requests, {conns} persistent connections, {secs} s each:");
    println!(
        "  mxrep-agent policy service:  {:8.0} req/s   p99 {:6.2} ms",
        ours.0, ours.1
    );
    println!(
        "  postgrey 1.37 (--delay=60):  {:8.0} req/s   p99 {:6.2} ms   (ratio {:.1})",
        theirs.0,
        theirs.1,
        ours.0 / theirs.0
    );
    println!(
        "  mxrep greylisting (3 nodes): {:8.0} req/s   p99 {:6.2} ms   (ratio {:.1} to postgrey; every request a new triplet)",
        grey.0,
        grey.1,
        grey.0 / theirs.0
    );
}

/// The policy service with greylisting on, answered by a real three-node cluster on loopback.
fn greylist_load(rt: &tokio::runtime::Runtime, conns: usize, secs: u64) -> (f64, f64) {
    let c = mxrep_tests::TestCluster::start(3, mxrep_tests::Tuning::default());
    c.wait_for_leader(3, Duration::from_secs(30));
    let policy = c.dir.path().join("greylist.toml");
    std::fs::write(&policy, "[greylist]\nenabled = true\n").unwrap();
    let out = mxrep_tests::ctl(&c.node(1).api, &["policy", "set", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api = c.node(2).api.clone();
    mxrep_tests::wait_until(Duration::from_secs(30), "the policy on node 2", || {
        let p = mxrep_tests::ctl_json(&api, &["policy", "show"]).ok()?;
        (p["greylist"]["enabled"] == true).then_some(())
    });
    let grey = {
        let _in_runtime = rt.enter();
        GreylistClient::start(vec![api], "bench".into())
    };
    let r = rt.block_on(async {
        let svc = PolicyService {
            view: BanView::default(),
            uplink: None,
            greylist: Some(grey.clone()),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(svc.serve(l));
        policy_load(&addr, conns, secs).await
    });
    let failed = grey.stats.failed_open.load(Ordering::Relaxed);
    let deferred = grey.stats.deferred.load(Ordering::Relaxed);
    assert!(deferred > 0, "greylisting answered nothing");
    // Deferrals answered on the agent count only if the cluster remembers them: wait for the
    // reports, then for the cluster's key set (followed by the agent) to hold them.
    let here = grey.stats.deferred_here.load(Ordering::Relaxed);
    let reported = mxrep_tests::wait_until(Duration::from_secs(60), "the reports", || {
        let r = grey.reported();
        let (sent, lost) = (
            r.sent.load(Ordering::Relaxed),
            r.dropped.load(Ordering::Relaxed),
        );
        (sent + lost >= here).then_some((sent, lost))
    });
    // A fresh follower of node 3 sees what the cluster remembers.
    let follower = {
        let _in_runtime = rt.enter();
        GreylistClient::start(vec![c.node(3).api.clone()], "check".into())
    };
    let remembered =
        mxrep_tests::wait_until(Duration::from_secs(60), "node 3 to hold them", || {
            let n = follower.known().len() as u64;
            (follower.known().is_live() && n >= deferred - reported.1).then_some(n)
        });
    println!(
        "  (greylisting: {deferred} deferred, {here} of them on the agent; {} reported, {} lost; node 3 remembers {remembered} triplets; {failed} failed open past the 100 ms deadline)",
        reported.0, reported.1
    );
    r
}

fn main() {
    parse_bench();
    if !e2e_available("agent-bench nftables") {
        return;
    }
    {
        let mut lab = Lab::new("b");
        let ns = lab.host("mx", &["192.0.2.1/24"]);
        nft_benches(&ns);
    }
    {
        let mut lab = Lab::new("x");
        let ns = lab.host("mx", &["192.0.2.1/24"]);
        extend_and_remove_bench(&ns);
    }
    policy_bench();
}
