//! Verified client names from the cluster's own DNS lookups (forward-confirmed reverse DNS),
//! against a real dnsmasq serving PTR and A/AAAA records: a client whose PTR name points back
//! at it gets that name — and with it the hostname allowlist (no greylisting) — a forged PTR
//! (the name points elsewhere) and a client without PTR get none. `mxrepctl ip show` says which.

use mxrep_proto::v1 as pb;
use mxrep_tests::events::{now_ms, send_blocking, verdict};
use mxrep_tests::netns::{tool_available, Daemon};
use mxrep_tests::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// dnsmasq on 127.0.0.1:`port`, answering only from its own records.
fn dnsmasq(port: u16) -> Daemon {
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            // Authoritative for everything it holds: NXDOMAIN, not REFUSED, for the rest.
            "--local=/#/",
            "--host-record=mail.example.org,198.51.100.20",
            "--host-record=mail6.example.org,2001:db8::25",
            // A forged PTR: 192.0.2.66 claims a name whose address is another one.
            "--ptr-record=66.2.0.192.in-addr.arpa,mail.example.org",
        ])
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    Daemon(child)
}

#[test]
fn the_cluster_verifies_client_names_once_and_the_hostname_allowlist_uses_them() {
    if !tool_available("the FCrDNS test", "dnsmasq", "dnsmasq-base") {
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _dns = dnsmasq(port);
    let node =
        NodeProc::single_leading(dir.path(), &format!("dns_resolver = \"127.0.0.1:{port}\""));
    let api = node.api.clone();
    mxrep_tests::ctl::set_policy(
        &api,
        dir.path(),
        "[dnsbl]\nverify_client_names = true\n[safety]\nallow_client_names = [\"example.org\"]\n[greylist]\nenabled = true\n",
    );

    let clients = ["198.51.100.20", "2001:db8::25", "192.0.2.66", "203.0.113.1"];
    let dns_of = |addr: &str| {
        let r = ctl_json(&api, &["ip", "show", addr]).ok()?;
        (!r["dns"].is_null()).then_some(r)
    };
    // Lookups start within seconds of the policy naming them; connections keep coming.
    let shown = wait_until(LIMIT, "every client looked up", || {
        let events = clients
            .iter()
            .map(|a| verdict(a, now_ms(), pb::Verdict::Neutral, |v| v.deferred = 1))
            .collect();
        send_blocking(&api, "mx1", events);
        clients
            .iter()
            .map(|a| dns_of(a))
            .collect::<Option<Vec<_>>>()
    });
    let name = |r: &serde_json::Value| r["dns"]["verified_name"].as_str().map(str::to_string);
    assert_eq!(
        name(&shown[0]).as_deref(),
        Some("mail.example.org"),
        "{}",
        shown[0]
    );
    assert_eq!(
        name(&shown[1]).as_deref(),
        Some("mail6.example.org"),
        "{}",
        shown[1]
    );
    assert_eq!(
        name(&shown[2]),
        None,
        "a forged PTR is no name: {}",
        shown[2]
    );
    assert_eq!(name(&shown[3]), None, "no PTR, no name: {}", shown[3]);
    assert_eq!(shown[0]["allowlisted"], true, "{}", shown[0]);
    assert_eq!(shown[2]["allowlisted"], false, "{}", shown[2]);
    let text =
        String::from_utf8_lossy(&ctl(&api, &["ip", "show", "198.51.100.20"]).stdout).to_string();
    assert!(text.contains("verified name mail.example.org"), "{text}");

    // Postfix says "unknown" (no policy service saw a name), the cluster knows better.
    let service = mxrep_tests::policy::PolicyClient::greylisting(&api, "mx1");
    let ask = |client: &str| service.rcpt(client);
    assert_eq!(
        ask("198.51.100.20"),
        "DUNNO",
        "a verified, allowlisted name"
    );
    assert!(
        ask("192.0.2.66").starts_with("DEFER_IF_PERMIT"),
        "the forger is greylisted"
    );
}
