//! nftables enforcement on a real kernel, in network namespaces this test creates: the table and
//! sets, bans of an address, an IPv4 prefix and an IPv6 prefix with their timeouts, real TCP
//! connections to port 25 dropped while banned and accepted after unban or expiry, a restart
//! that keeps every ban, and nothing touched outside the agent's table.

use ipnet::IpNet;
use mxrep_agent::enforce::nft::NftEnforcer;
use mxrep_agent::enforce::{BanOp, Enforcer};
use mxrep_tests::netns::*;
use mxrep_tests::nft_witness::nft_set;
use std::time::Duration;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn enforcer(ns: &str) -> NftEnforcer {
    NftEnforcer::new("mxtest", &[25]).in_netns(ns)
}

#[test]
fn bans_reach_the_kernel_and_drop_real_connections() {
    if !e2e_available("bans_reach_the_kernel_and_drop_real_connections") {
        return;
    }
    let mut lab = Lab::new("n");
    let mx = lab.host("mx", &["192.0.2.1/24", "2001:db8:ff::1/64"]);
    let cl = lab.host(
        "cl",
        &[
            "192.0.2.2/24",
            "203.0.113.5/32",
            "203.0.113.6/32",
            "203.0.113.7/32",
            "198.51.100.9/32",
            "2001:db8:ff::2/64",
            "2001:db8:1::9/64",
        ],
    );
    route(&mx, "203.0.113.0/24");
    route(&mx, "198.51.100.0/24");
    sh(&[
        "ip",
        "-n",
        &mx,
        "-6",
        "route",
        "add",
        "2001:db8:1::/64",
        "dev",
        "eth0",
    ]);
    // Someone else's table, which must stay exactly as it is.
    sh(&["ip", "netns", "exec", &mx, "nft", "add table inet other; add set inet other keep { type ipv4_addr; }; add element inet other keep { 192.0.2.77 }"]);
    let other_before = sh(&[
        "ip", "netns", "exec", &mx, "nft", "list", "table", "inet", "other",
    ]);
    let _listener = listen_25(&mx);
    wait_for(Duration::from_secs(10), "the port 25 listener", || {
        connects(&cl, "203.0.113.5", "192.0.2.1")
    });
    wait_for(Duration::from_secs(10), "IPv6 reachability", || {
        connects(&cl, "2001:db8:1::9", "2001:db8:ff::1")
    });

    let mut e = enforcer(&mx);
    e.setup().unwrap();
    e.apply(&[
        BanOp::Add {
            prefix: net("203.0.113.5/32"),
            timeout_secs: 600,
        },
        BanOp::Add {
            prefix: net("198.51.100.0/24"),
            timeout_secs: 3600,
        },
        BanOp::Add {
            prefix: net("2001:db8:1::/64"),
            timeout_secs: 120,
        },
        // Broader than the agent's limit: refused whatever the cluster says.
        BanOp::Add {
            prefix: net("10.0.0.0/8"),
            timeout_secs: 600,
        },
    ])
    .unwrap();
    // What the agent reads back over netlink is what nft sees.
    for set in ["ban4", "ban4net", "ban6net"] {
        let ours: Vec<IpNet> = e.list_set(set).unwrap().into_keys().collect();
        let nft: Vec<IpNet> = nft_set(&mx, "mxtest", set).into_keys().collect();
        assert_eq!(ours, nft, "{set}");
    }
    let ban4 = nft_set(&mx, "mxtest", "ban4");
    let left = ban4[&net("203.0.113.5/32")].expect("timeout");
    assert!((590..=600).contains(&left), "{left}");
    let ban4net = nft_set(&mx, "mxtest", "ban4net");
    assert!(ban4net[&net("198.51.100.0/24")].unwrap() > 3500);
    assert_eq!(ban4net.len(), 1, "the /8 was refused: {ban4net:?}");
    assert!(nft_set(&mx, "mxtest", "ban6net")[&net("2001:db8:1::/64")].unwrap() > 100);

    assert!(
        !connects(&cl, "203.0.113.5", "192.0.2.1"),
        "banned address got through"
    );
    assert!(
        !connects(&cl, "198.51.100.9", "192.0.2.1"),
        "banned prefix got through"
    );
    assert!(
        !connects(&cl, "2001:db8:1::9", "2001:db8:ff::1"),
        "banned IPv6 prefix got through"
    );
    assert!(
        connects(&cl, "203.0.113.6", "192.0.2.1"),
        "an unbanned neighbour must pass"
    );
    let rules = sh(&[
        "ip",
        "netns",
        "exec",
        &mx,
        "nft",
        "list",
        "chain",
        "inet",
        "mxtest",
        "prerouting",
    ]);
    let ban4_rule = rules
        .lines()
        .find(|l| l.contains("@ban4 "))
        .expect("ban4 rule");
    assert!(
        ban4_rule.contains("counter packets") && !ban4_rule.contains("packets 0 "),
        "{rules}"
    );

    // Unban: accepted again at once.
    e.apply(&[BanOp::Remove {
        prefix: net("203.0.113.5/32"),
    }])
    .unwrap();
    assert!(connects(&cl, "203.0.113.5", "192.0.2.1"));
    // Removing what is already gone is not an error.
    e.apply(&[BanOp::Remove {
        prefix: net("203.0.113.5/32"),
    }])
    .unwrap();

    // Expiry in the kernel, with no one watching.
    e.apply(&[BanOp::Add {
        prefix: net("203.0.113.7/32"),
        timeout_secs: 2,
    }])
    .unwrap();
    assert!(!connects(&cl, "203.0.113.7", "192.0.2.1"));
    wait_for(
        Duration::from_secs(10),
        "the 2 s ban to expire in the kernel",
        || !nft_set(&mx, "mxtest", "ban4").contains_key(&net("203.0.113.7/32")),
    );
    assert!(connects(&cl, "203.0.113.7", "192.0.2.1"));

    // A restarted agent: setup again keeps every ban, then reconcile to the cluster's list.
    let mut again = enforcer(&mx);
    again.setup().unwrap();
    assert!(
        nft_set(&mx, "mxtest", "ban4net").contains_key(&net("198.51.100.0/24")),
        "setup dropped a ban"
    );
    again
        .reconcile(&[(net("198.51.100.0/24"), 3000), (net("203.0.113.6/32"), 600)])
        .unwrap();
    assert_eq!(
        nft_set(&mx, "mxtest", "ban6net").len(),
        0,
        "a ban the cluster no longer has is gone"
    );
    assert!(nft_set(&mx, "mxtest", "ban4").contains_key(&net("203.0.113.6/32")));
    assert!(!connects(&cl, "198.51.100.9", "192.0.2.1"));
    assert!(!connects(&cl, "203.0.113.6", "192.0.2.1"));
    assert!(connects(&cl, "2001:db8:1::9", "2001:db8:ff::1"));

    // A prefix ban expires in the kernel too (start and end of its interval).
    again
        .apply(&[BanOp::Add {
            prefix: net("2001:db8:1::/64"),
            timeout_secs: 2,
        }])
        .unwrap();
    assert!(!connects(&cl, "2001:db8:1::9", "2001:db8:ff::1"));
    wait_for(
        Duration::from_secs(15),
        "the 2 s prefix ban to expire in the kernel",
        || nft_set(&mx, "mxtest", "ban6net").is_empty(),
    );
    assert!(connects(&cl, "2001:db8:1::9", "2001:db8:ff::1"));

    let tables = sh(&["ip", "netns", "exec", &mx, "nft", "list", "tables"]);
    assert_eq!(
        tables.lines().collect::<Vec<_>>(),
        vec!["table inet other", "table inet mxtest"]
    );
    let other_after = sh(&[
        "ip", "netns", "exec", &mx, "nft", "list", "table", "inet", "other",
    ]);
    assert_eq!(other_before, other_after);
}

#[test]
fn local_rate_drops_the_fourth_new_connection_within_a_minute() {
    if !e2e_available("local_rate_drops_the_fourth_new_connection_within_a_minute") {
        return;
    }
    let mut lab = Lab::new("l");
    let mx = lab.host("mx", &["192.0.2.1/24"]);
    let cl = lab.host("cl", &["192.0.2.2/24", "203.0.113.5/32", "203.0.113.6/32"]);
    route(&mx, "203.0.113.0/24");
    let _listener = listen_25(&mx);
    wait_for(Duration::from_secs(10), "the port 25 listener", || {
        connects(&cl, "192.0.2.2", "192.0.2.1")
    });
    let mut e = enforcer(&mx);
    e.local_rate = true;
    e.setup().unwrap();
    for i in 1..=3 {
        assert!(
            connects(&cl, "203.0.113.5", "192.0.2.1"),
            "connection {i} must pass"
        );
    }
    assert!(
        !connects(&cl, "203.0.113.5", "192.0.2.1"),
        "the 4th within a minute must be dropped"
    );
    assert!(
        connects(&cl, "203.0.113.6", "192.0.2.1"),
        "other addresses are not affected"
    );
    // Off again: the meter is gone, the bans' sets are untouched.
    e.local_rate = false;
    e.setup().unwrap();
    let chains = sh(&[
        "ip", "netns", "exec", &mx, "nft", "list", "table", "inet", "mxtest",
    ]);
    assert!(
        !chains.contains("localrate") && !chains.contains("rate4"),
        "{chains}"
    );
    assert!(connects(&cl, "203.0.113.5", "192.0.2.1"));
}

#[test]
fn the_kernel_announces_deletions_in_a_table() {
    use mxrep_agent::enforce::netlink::socket::in_netns;
    use mxrep_agent::enforce::netlink::wire::msg;
    use mxrep_agent::enforce::netlink::Notifications;
    if !e2e_available("the_kernel_announces_deletions_in_a_table") {
        return;
    }
    let mut lab = Lab::new("w");
    let mx = lab.host("mx", &["192.0.2.1/24"]);
    let mut heard = in_netns(&mx, Notifications::open).expect("notification socket");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(changes) = heard.wait() {
            if tx.send(changes).is_err() {
                return;
            }
        }
    });
    sh(&[
        "ip",
        "netns",
        "exec",
        &mx,
        "nft",
        "add table inet watched; delete table inet watched",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = vec![];
    while !seen.contains(&(msg::DELTABLE, Some("watched".to_string()))) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.extend(
            rx.recv_timeout(left)
                .expect("a deletion announced within 5 s"),
        );
    }
    assert!(
        seen.contains(&(msg::NEWTABLE, Some("watched".to_string()))),
        "{seen:?}"
    );
}
