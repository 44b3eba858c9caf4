//! The enforcement benchmarks of agent-bench: loading 100,000 bans and one more ban beside
//! `nft -f`, and extending and removing one ban while 100,000 prefixes are held, over netlink
//! beside the same change through `nft -f -`.

use ipnet::IpNet;
use mxrep_agent::enforce::nft::NftEnforcer;
use mxrep_agent::enforce::{BanOp, Enforcer};
use mxrep_tests::netns::sh;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// 100,000 bans: 90,000 addresses and 10,000 /24 prefixes, all in 198.18.0.0/15 and 10.0.0.0/8.
fn ban_list() -> Vec<(IpNet, u64)> {
    let mut v = Vec::new();
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    for i in 0..90_000u32 {
        v.push((
            IpNet::from(std::net::IpAddr::V4(Ipv4Addr::from(base + i))),
            3600,
        ));
    }
    for i in 0..10_000u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (i << 8));
        v.push((IpNet::new(a.into(), 24).unwrap(), 3600));
    }
    v
}

pub fn nft_benches(ns: &str) {
    let list = ban_list();
    let mut e = NftEnforcer::new("mxbench", &[25]).in_netns(ns);

    // Baseline: plain nft -f of the same elements into fresh sets.
    let mut script = String::from(
        "add table inet plain\nadd set inet plain ban4 { type ipv4_addr; flags timeout; }\n\
         add set inet plain ban4net { type ipv4_addr; flags interval, timeout; }\n",
    );
    for (set, pick) in [("ban4", 32u8), ("ban4net", 24u8)] {
        let elems: Vec<String> = list
            .iter()
            .filter(|(p, _)| p.prefix_len() == pick)
            .map(|(p, t)| {
                if pick == 32 {
                    format!("{} timeout {t}s", p.addr())
                } else {
                    format!("{p} timeout {t}s")
                }
            })
            .collect();
        for chunk in elems.chunks(10_000) {
            script.push_str(&format!(
                "add element inet plain {set} {{ {} }}\n",
                chunk.join(", ")
            ));
        }
    }
    let path = std::env::temp_dir().join(format!("mxrep-bench-{}.nft", std::process::id()));
    std::fs::write(&path, &script).unwrap();
    let t = Instant::now();
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);
    let plain = t.elapsed();
    let _ = std::fs::remove_file(&path);

    e.setup().unwrap();
    let t = Instant::now();
    e.reconcile(&list).unwrap();
    let ours = t.elapsed();
    assert_eq!(e.list_set("ban4").unwrap().len(), 90_000);
    println!("load 100,000 bans (90,000 addresses + 10,000 /24 prefixes) into empty sets:");
    println!("  nft -f of a plain script:           {:8.0} ms", ms(plain));
    println!(
        "  agent reconcile (reads sets first): {:8.0} ms   (ratio {:.2})",
        ms(ours),
        ours.as_secs_f64() / plain.as_secs_f64()
    );

    let mut one = |p: IpNet| {
        let t = Instant::now();
        e.apply(&[BanOp::Add {
            prefix: p,
            timeout_secs: 600,
        }])
        .unwrap();
        ms(t.elapsed())
    };
    let addr: Vec<f64> = (1..=5)
        .map(|i| one(format!("192.0.2.{i}/32").parse().unwrap()))
        .collect();
    let pfx: Vec<f64> = (1..=5)
        .map(|i| one(format!("172.16.{i}.0/24").parse().unwrap()))
        .collect();
    println!("one more ban with 100,000 elements in the sets (median of 5):");
    println!(
        "  address (ban4, timeout set):        {:8.3} ms",
        median(addr)
    );
    println!(
        "  prefix (ban4net, interval set):     {:8.1} ms",
        median(pfx)
    );
}

/// `nft -f -` of `script` in `ns`: what the agent did for a refresh or removal before netlink.
fn nft_stdin(ns: &str, script: &str) -> Duration {
    use std::io::Write as _;
    let t = Instant::now();
    let mut c = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success(), "{script}");
    t.elapsed()
}

/// Extending and removing one ban while `ban4net` holds 100,000 prefixes: over netlink (the
/// agent now) beside the same change through `nft -f -` (the agent before), in one run.
pub fn extend_and_remove_bench(ns: &str) {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let list: Vec<(IpNet, u64)> = (0..100_000u32)
        .map(|i| {
            (
                IpNet::new(Ipv4Addr::from(base + (i << 4)).into(), 28).unwrap(),
                3600,
            )
        })
        .collect();
    let mut e = NftEnforcer::new("mxext", &[25]).in_netns(ns);
    e.setup().unwrap();
    let t = Instant::now();
    e.reconcile(&list).unwrap();
    println!(
        "load 100,000 /28 prefixes over netlink: {:.0} ms",
        ms(t.elapsed())
    );
    assert_eq!(e.list_set("ban4net").unwrap().len(), 100_000);
    let timed = |f: &mut dyn FnMut() -> Duration| median((0..5).map(|_| ms(f())).collect());
    let mut i = 0;
    let ext_ours = timed(&mut || {
        i += 1;
        let t = Instant::now();
        e.apply(&[BanOp::Refresh {
            prefix: list[i].0,
            timeout_secs: 7200,
        }])
        .unwrap();
        t.elapsed()
    });
    let ext_nft = timed(&mut || {
        i += 1;
        let p = list[i].0;
        nft_stdin(
            ns,
            &format!(
                "add element inet mxext ban4net {{ {p} timeout 7200s }}\n\
                 delete element inet mxext ban4net {{ {p} }}\n\
                 add element inet mxext ban4net {{ {p} timeout 7200s }}\n"
            ),
        )
    });
    let rm_ours = timed(&mut || {
        i += 1;
        let t = Instant::now();
        e.apply(&[BanOp::Remove { prefix: list[i].0 }]).unwrap();
        t.elapsed()
    });
    let rm_nft = timed(&mut || {
        i += 1;
        let p = list[i].0;
        nft_stdin(
            ns,
            &format!(
                "add element inet mxext ban4net {{ {p} timeout 1s }}\n\
                 delete element inet mxext ban4net {{ {p} }}\n"
            ),
        )
    });
    assert_eq!(e.list_set("ban4net").unwrap().len(), 100_000 - 10);
    println!("with 100,000 prefixes held (median of 5): netlink | nft -f - (before) | ratio");
    println!(
        "  extend one ban:  {ext_ours:8.2} ms | {ext_nft:8.1} ms | {:.4}",
        ext_ours / ext_nft
    );
    println!(
        "  remove one ban:  {rm_ours:8.2} ms | {rm_nft:8.1} ms | {:.4}",
        rm_ours / rm_nft
    );
}
