//! DNS lists across the test bed, with real Postfix: rbldnsd on its own host lists a client;
//! the cluster looks it up once and every MX host's Postfix refuses it with the list's text
//! (the policy service's `REJECT`, as postscreen words it — a bounce the sender can read, no
//! silent drop). A fourth Postfix host without an agent uses a node's DNSBL zone through
//! `reject_rbl_client` and refuses a client the cluster banned.

use mxrep_tests::dns::{rbldnsd, Dataset};
use mxrep_tests::netns::*;
use mxrep_tests::testbed::*;
use mxrep_tests::*;

/// The list server's address on the test bed, and the zone node 1 serves.
const RESOLVER: &str = "192.0.2.53";
const ZONE: &str = "bl.mxrep.test";

#[test]
fn listed_clients_are_refused_with_the_lists_text_and_the_zone_serves_postfix_without_an_agent() {
    let test = "DNS lists with real Postfix";
    if !e2e_available(test)
        || !tool_available(test, "rbldnsd", "rbldnsd")
        || !tool_available(test, "swaks", "swaks")
    {
        return;
    }
    let _g = serial();
    // Node 1 also answers DNS on port 53 for its ban list (the port resolv.conf can name).
    let mut bed = Testbed::start_with(true, |id| {
        let zone = match id {
            1 => format!("dnsbl_listen = \"192.0.2.11:53\"\ndnsbl_zone = \"{ZONE}\"\n"),
            _ => String::new(),
        };
        format!("dns_resolver = \"{RESOLVER}:53\"\n{zone}")
    });
    let ns = bed.lab.host("dns", &[&format!("{RESOLVER}/24")]);
    let zones = bed.dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let _rbldnsd = rbldnsd(
        Some(&ns),
        &zones,
        &format!("{RESOLVER}/53"),
        &[Dataset {
            zone: "bl.test",
            kind: "ip4set",
            file: "bl.zone",
            text: ":127.0.0.2:Listed by bl.test, see https://bl.test/$\n127.0.0.2\n203.0.113.66\n",
        }],
    );
    let policy = bed.dir.path().join("dnsbl.toml");
    std::fs::write(
        &policy,
        "[dnsbl]\nsites = [\"bl.test=127.0.0.[2..11]*3\"]\nthreshold = 3\n",
    )
    .unwrap();
    let n1 = &bed.nodes[0];
    let out = ctl_in(
        n1.netns.as_deref(),
        &n1.api,
        &["policy", "set", policy.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The listed client: refused on every MX host, with the list's words, and never dropped.
    for (i, mx) in bed.mx.iter().enumerate() {
        let log = mx.postfix.as_ref().unwrap();
        wait_until(
            LIMIT,
            &format!("{} to refuse the listed client", mx.name),
            || {
                let delivered = bed.swaks(&bed.spam, "203.0.113.66", i, "user");
                let text = log.log_text();
                (!delivered
                && text.contains("554 5.7.1")
                && text.contains("Service unavailable; client [203.0.113.66] blocked using bl.test: Listed by bl.test"))
            .then_some(())
            },
        );
        assert!(
            mx.kernel_bans().is_empty(),
            "{} dropped a listed client: {:?}",
            mx.name,
            mx.kernel_bans()
        );
    }
    let bans = bed.ctl_json(&["bans", "list"]).unwrap();
    let ban = bans["bans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["prefix"] == "203.0.113.66/32")
        .cloned()
        .expect("the listing as a ban");
    assert_eq!(ban["action"], "reject", "{ban}");
    assert_eq!(ban["evidence"][0]["rule"], "dnsbl", "{ban}");
    // An unlisted neighbour is delivered.
    assert!(
        bed.swaks(&bed.spam, "203.0.113.67", 0, "user"),
        "an unlisted client was refused"
    );

    // A Postfix host without an agent, asking node 1's zone through resolv.conf.
    let mx4 = bed.lab.host("mx4", &["192.0.2.24/24"]);
    route(&mx4, "203.0.113.0/24");
    let etc_netns = std::path::PathBuf::from(format!("/etc/netns/{mx4}"));
    std::fs::create_dir_all(&etc_netns).unwrap();
    let _cleanup = RemoveOnDrop(etc_netns.clone());
    std::fs::write(etc_netns.join("resolv.conf"), "nameserver 192.0.2.11\n").unwrap();
    let postfix = Postfix::start(&mx4, &bed.dir.path().join("postfix"), "mx4", "192.0.2.24");
    postfix.reconfigure(&[&format!(
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, reject_rbl_client {ZONE}"
    )]);
    let out = ctl_in(
        n1.netns.as_deref(),
        &n1.api,
        &[
            "ban",
            "203.0.113.77",
            "--for",
            "1h",
            "--reason",
            "spam run seen by the fleet",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let to = "user@mx4.test";
    wait_until(LIMIT, "Postfix on mx4 to refuse the banned client", || {
        let delivered = swaks_at(&bed.spam, "203.0.113.77", "192.0.2.24", to);
        let text = postfix.log_text();
        (!delivered && text.contains(&format!("blocked using {ZONE}"))).then_some(())
    });
    assert!(
        postfix.log_text().contains("spam run seen by the fleet"),
        "the zone's TXT reason reaches the refusal: {}",
        postfix.log_text()
    );
    assert!(
        swaks_at(&bed.spam, "203.0.113.78", "192.0.2.24", to),
        "an unbanned client was refused by mx4"
    );
}

/// Removes a directory when dropped (the namespace's resolv.conf).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
