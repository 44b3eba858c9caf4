//! DNS lists against a real rbldnsd serving three zones: a blocklist, an allowlist (DNSWL) and a
//! broken list that answers 127.255.255.254 for everything (a wildcard list error). A listed
//! client is banned on the cluster with the list named in its evidence and a postscreen-style
//! reason; the broken list causes no ban and is reported failing by `mxrepctl status`; the
//! allowlisted client is not greylisted; lookups stop when a list's daily budget is spent.

use mxrep_proto::v1 as pb;
use mxrep_tests::dns::Dataset;
use mxrep_tests::events::{now_ms, send_blocking, verdict};
use mxrep_tests::netns::Daemon;
use mxrep_tests::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn rbldnsd_available() -> bool {
    mxrep_tests::netns::tool_available("dnsbl tests", "rbldnsd", "rbldnsd")
}

/// rbldnsd on 127.0.0.1:`port` serving bl.test, wl.test and broken.test from `dir`.
fn rbldnsd(dir: &std::path::Path, port: u16) -> Daemon {
    let set = |zone, file, text| Dataset {
        zone,
        kind: "ip4set",
        file,
        text,
    };
    mxrep_tests::dns::rbldnsd(
        None,
        dir,
        &format!("127.0.0.1/{port}"),
        &[
            set(
                "bl.test",
                "bl.zone",
                ":127.0.0.2:Listed by bl.test, see https://bl.test/$\n127.0.0.2\n203.0.113.0/24\n",
            ),
            set(
                "wl.test",
                "wl.zone",
                ":127.0.10.3:Trusted sender\n127.0.0.2\n198.51.100.0/24\n",
            ),
            // Everything (rbldnsd takes no /0): a list answering errors for every query.
            set(
                "broken.test",
                "broken.zone",
                "0.0.0.0/1 :127.255.255.254:Query refused\n128.0.0.0/1 :127.255.255.254:Query refused\n",
            ),
        ],
    )
}

fn one_node(dir: &std::path::Path, extra: &str) -> NodeProc {
    NodeProc::single_leading(dir, extra)
}

fn status_list(api: &str, zone: &str) -> Option<serde_json::Value> {
    let s = ctl_json(api, &["status"]).ok()?;
    s["dns_lists"]
        .as_array()?
        .iter()
        .find(|l| l["zone"] == zone)
        .cloned()
}

#[test]
fn listed_clients_are_banned_broken_lists_never_ban_and_allowlisted_ones_are_not_greylisted() {
    if !rbldnsd_available() {
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let port = free_port();
    let _dns = rbldnsd(&zones, port);
    let node = one_node(dir.path(), &format!("dns_resolver = \"127.0.0.1:{port}\""));
    let api = node.api.clone();
    mxrep_tests::ctl::set_policy(
        &api,
        dir.path(),
        "[dnsbl]\nsites = [\"bl.test=127.0.0.[2..11]*3\", \"broken.test*3\", \"wl.test=127.0.[0..255].[2..3]*-2\"]\nthreshold = 3\ndaily_budget = 6\n[greylist]\nenabled = true\n",
    );
    // The leader probes the lists as soon as they appear: the wildcard list is out of scoring.
    let broken = wait_until(LIMIT, "broken.test reported failing", || {
        status_list(&api, "broken.test").filter(|l| l["healthy"] == false)
    });
    assert!(
        broken["reason"].as_str().unwrap().contains("list error"),
        "{broken}"
    );
    assert_eq!(status_list(&api, "bl.test").unwrap()["healthy"], true);

    let seen = |addr: &str| {
        let e = verdict(addr, now_ms(), pb::Verdict::Neutral, |v| v.deferred = 1);
        assert_eq!(send_blocking(&api, "mx1", vec![e]).accepted, 1);
    };
    // A listed client: banned, the list named.
    seen("203.0.113.9");
    let ban = wait_until(LIMIT, "the listed client banned", || {
        let l = ctl_json(&api, &["bans", "list"]).ok()?;
        l["bans"]
            .as_array()?
            .iter()
            .find(|b| b["prefix"] == "203.0.113.9/32")
            .cloned()
    });
    assert_eq!(ban["evidence"][0]["rule"], "dnsbl", "{ban}");
    let reason = ban["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Service unavailable; client [203.0.113.9] blocked using bl.test"),
        "{reason}"
    );
    assert!(reason.contains("Listed by bl.test"), "{reason}");
    // A client only the broken list "lists": no ban.
    seen("192.0.2.77");
    // The allowlisted client: not greylisted, while a stranger is.
    seen("198.51.100.7");
    wait_until(LIMIT, "the allowlist answer applied", || {
        let r = ctl_json(&api, &["status"]).ok()?;
        let q = r["dns_lists"]
            .as_array()?
            .iter()
            .find(|l| l["zone"] == "wl.test")?["queries_today"]
            .as_u64()?;
        (q >= 3).then_some(())
    });
    let service = mxrep_tests::policy::PolicyClient::greylisting(&api, "mx1");
    let ask = |client: &str| service.rcpt(client);
    let vouched = wait_until(LIMIT, "the DNSWL client let through", || {
        let a = ask("198.51.100.7");
        (a == "DUNNO").then_some(a)
    });
    assert_eq!(vouched, "DUNNO");
    assert!(ask("192.0.2.200").starts_with("DEFER_IF_PERMIT"));
    let bans = ctl_json(&api, &["bans", "list"]).unwrap();
    let prefixes: Vec<&str> = bans["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        vec!["203.0.113.9/32"],
        "the broken list banned nobody"
    );

    // Budget: 6 queries a day per list; three more clients spend it, the rest are not asked.
    for i in 20..26 {
        seen(&format!("203.0.113.{i}"));
    }
    let bl = wait_until(LIMIT, "bl.test's budget spent", || {
        status_list(&api, "bl.test").filter(|l| l["queries_today"] == 6)
    });
    assert_eq!(bl["daily_budget"], 6);
    // Three of the six were looked up (and are banned); the other three never were.
    let banned = wait_until(LIMIT, "the looked-up clients banned", || {
        let l = ctl_json(&api, &["bans", "list"]).ok()?;
        let n = l["bans"]
            .as_array()?
            .iter()
            .filter(|b| b["evidence"][0]["rule"] == "dnsbl")
            .count();
        (n == 4).then_some(n)
    });
    assert_eq!(banned, 4, "203.0.113.9 and three of the six");
}

fn dig(port: u16, name: &str, qtype: &str) -> (String, String) {
    mxrep_tests::dns::dig("127.0.0.1", port, name, qtype)
}

#[test]
fn the_ban_list_served_as_a_dnsbl_zone() {
    if !rbldnsd_available() {
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = one_node(
        dir.path(),
        &format!("dnsbl_listen = \"127.0.0.1:{port}\"\ndnsbl_zone = \"bl.mxrep.test\""),
    );
    let api = node.api.clone();
    for (p, why) in [
        ("203.0.113.0/24", "snowshoe"),
        ("192.0.2.7", "spam run"),
        ("2001:db8:5::/48", "v6 rotation"),
    ] {
        let out = ctl(&api, &["ban", p, "--for", "1h", "--reason", why]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let zone = "bl.mxrep.test";
    let q = |labels: &str| format!("{labels}.{zone}");
    let listed = wait_until(LIMIT, "the zone to answer", || {
        let (status, a) = dig(port, &q("9.113.0.203"), "A");
        (status == "NOERROR").then_some(a)
    });
    assert_eq!(listed, "127.0.0.2");
    let (_, txt) = dig(port, &q("9.113.0.203"), "TXT");
    assert!(
        txt.contains("snowshoe") && txt.contains("203.0.113.0/24"),
        "{txt}"
    );
    assert_eq!(
        dig(port, &q("7.2.0.192"), "A"),
        ("NOERROR".into(), "127.0.0.2".into())
    );
    assert_eq!(dig(port, &q("8.2.0.192"), "A").0, "NXDOMAIN");
    // IPv6, reversed nibbles: 2001:db8:5::1 is inside the banned /48.
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.5.0.0.0.8.b.d.0.1.0.0.2";
    assert_eq!(
        dig(port, &q(v6), "A"),
        ("NOERROR".into(), "127.0.0.2".into())
    );
    // RFC 5782 test entries and the apex.
    assert_eq!(dig(port, &q("2.0.0.127"), "A").1, "127.0.0.2");
    assert_eq!(dig(port, &q("1.0.0.127"), "A").0, "NXDOMAIN");
    let (status, soa) = dig(port, zone, "SOA");
    assert_eq!(status, "NOERROR");
    assert!(soa.contains("ns.bl.mxrep.test."), "{soa}");
    assert_eq!(dig(port, &q("not.an.address"), "A").0, "NXDOMAIN");
    // The same list exported for rbldnsd answers alike.
    let out = ctl(&api, &["bans", "export", "--format", "rbldnsd"]);
    assert!(out.status.success());
    let zones = dir.path().join("export");
    std::fs::create_dir(&zones).unwrap();
    let rport = free_port();
    let _rbldnsd = mxrep_tests::dns::rbldnsd(
        None,
        &zones,
        &format!("127.0.0.1/{rport}"),
        &[Dataset {
            zone,
            kind: "ip4set",
            file: "mxrep.zone",
            text: &String::from_utf8_lossy(&out.stdout),
        }],
    );
    let theirs = wait_until(LIMIT, "rbldnsd to serve the export", || {
        let (status, a) = dig(rport, &q("9.113.0.203"), "A");
        (status == "NOERROR").then_some(a)
    });
    assert_eq!(theirs, "127.0.0.2");
    assert_eq!(dig(rport, &q("8.2.0.192"), "A").0, "NXDOMAIN");
    // An unban leaves the zone as soon as it is applied.
    assert!(ctl(&api, &["unban", "192.0.2.7"]).status.success());
    wait_until(LIMIT, "the unban in the zone", || {
        (dig(port, &q("7.2.0.192"), "A").0 == "NXDOMAIN").then_some(())
    });
}
