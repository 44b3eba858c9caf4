//! Greylisting once for the whole fleet, against a real three-node cluster: two MX hosts' policy
//! services (mx1 on node 1, mx2 on node 2). A first attempt is deferred on mx1; a retry before the
//! delay is still deferred, on mx2 and from another address of the /24; after the delay it passes
//! there; a network that passed often enough is no longer greylisted; with every node gone the
//! answer is DUNNO at once (fail open) and nothing blocks.

use mxrep_agent::enforce::view::BanView;
use mxrep_agent::sources::greylist::GreylistClient;
use mxrep_agent::sources::policy_server::PolicyService;
use mxrep_tests::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn service(rt: &tokio::runtime::Runtime, api: &str, mx: &str) -> PolicyService {
    let _in_runtime = rt.enter();
    PolicyService {
        view: BanView::default(),
        uplink: None,
        greylist: Some(GreylistClient::start(vec![api.to_string()], mx.into())),
    }
}

fn request(client: &str, sender: &str) -> HashMap<String, String> {
    [
        ("request", "smtpd_access_policy"),
        ("protocol_state", "RCPT"),
        ("client_address", client),
        ("client_name", "unknown"),
        ("sender", sender),
        ("recipient", "user@mx.test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn a_retry_on_another_mx_host_from_the_same_network_passes_after_the_delay() {
    let _g = serial();
    let mut c = TestCluster::start(3, Tuning::default());
    c.wait_for_leader(3, LIMIT);
    let policy = c.dir.path().join("greylist.toml");
    std::fs::write(
        &policy,
        "[greylist]\nenabled = true\ndelay_secs = 4\nauto_allowlist_spacing_secs = 1\n",
    )
    .unwrap();
    assert!(
        ctl(&c.node(1).api, &["policy", "set", policy.to_str().unwrap()])
            .status
            .success()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mx1, mx2) = (
        service(&rt, &c.node(1).api, "mx1"),
        service(&rt, &c.node(2).api, "mx2"),
    );
    wait_until(LIMIT, "the policy on node 2", || {
        let p = ctl_json(&c.node(2).api, &["policy", "show"]).ok()?;
        (p["greylist"]["enabled"] == true).then_some(())
    });
    let ask = |svc: &PolicyService, client: &str, sender: &str| {
        rt.block_on(svc.answer(&request(client, sender)))
    };

    let first = ask(&mx1, "203.0.113.5", "news-1001@list.test");
    let t0 = Instant::now();
    assert!(
        first.starts_with("DEFER_IF_PERMIT Greylisted by mxrep: first delivery attempt"),
        "{first}"
    );
    // Too early, on the other MX host, from another address of the /24, with the list's next
    // VERP sender: the same triplet, still deferred.
    let early = wait_until(LIMIT, "mx2 to know the triplet", || {
        let a = ask(&mx2, "203.0.113.77", "news-1002@list.test");
        a.contains("retry in").then_some(a)
    });
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the early retry came too late to test"
    );
    assert!(early.starts_with("DEFER_IF_PERMIT"), "{early}");
    // After the delay: passes there.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(t0.elapsed()));
    let after = wait_until(LIMIT, "the retry to pass", || {
        let a = ask(&mx2, "203.0.113.77", "news-1003@list.test");
        (a == "DUNNO").then_some(a)
    });
    assert_eq!(after, "DUNNO");
    // Other networks start over.
    assert!(ask(&mx2, "198.51.100.7", "news-1003@list.test").starts_with("DEFER_IF_PERMIT"));
    // A never-seen triplet of that client, now leased to mx2, is answered on mx2 itself (it
    // follows every key the cluster remembers), and reported: mx1's set learns it.
    let (g1, g2) = (
        mx1.greylist.as_ref().unwrap(),
        mx2.greylist.as_ref().unwrap(),
    );
    wait_until(LIMIT, "mx2 to follow the triplet keys", || {
        g2.known().is_live().then_some(())
    });
    let here = ask(&mx2, "198.51.100.7", "fresh@sender.test");
    assert_eq!(
        here,
        "DEFER_IF_PERMIT Greylisted by mxrep: first delivery attempt, retry in 4 s"
    );
    assert_eq!(g2.stats.deferred_here.load(Ordering::Relaxed), 1);
    wait_until(LIMIT, "mx1 to learn the triplet mx2 answered", || {
        (g1.known().len() == 3).then_some(())
    });
    assert_eq!(g2.reported().sent.load(Ordering::Relaxed), 1);
    // Passes a second or more apart count toward the allowlist: after five, a new sender from
    // the network is not greylisted at all.
    let r = wait_until(LIMIT, "five passes and the allowlist", || {
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(ask(&mx1, "203.0.113.5", "news-1004@list.test"), "DUNNO");
        let r = ctl_json(&c.node(3).api, &["ip", "show", "203.0.113.9"]).ok()?;
        r["greylist"]["allowlisted_until_unix_ms"]
            .as_i64()
            .map(|_| r)
    });
    assert_eq!(r["greylist"]["network"], "203.0.113.0/24", "{r}");
    assert!(r["greylist"]["passes"].as_u64().unwrap() >= 5);
    let fresh = wait_until(LIMIT, "the allowlist on node 1", || {
        let a = ask(&mx1, "203.0.113.200", "someone-new@elsewhere.test");
        (a == "DUNNO").then_some(a)
    });
    assert_eq!(fresh, "DUNNO");

    // Every node gone: DUNNO at once, counted.
    for id in 1..=3 {
        c.node_mut(id).kill();
    }
    let t = Instant::now();
    assert_eq!(ask(&mx1, "192.0.2.50", "x@y.test"), "DUNNO");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "fail open took {:?}",
        t.elapsed()
    );
    // A leased client too, once mx2's key stream has broken (at once: the node is gone).
    let mut n = 0;
    wait_until(LIMIT, "mx2 to stop answering new triplets itself", || {
        n += 1;
        let mut req = request("198.51.100.7", "late@sender.test");
        req.insert("recipient".into(), format!("user{n}@mx.test"));
        (rt.block_on(mx2.answer(&req)) == "DUNNO").then_some(())
    });
    assert!(
        !g2.known().is_live(),
        "answers from a set that no longer follows"
    );
    let stats = &mx1.greylist.as_ref().unwrap().stats;
    assert!(stats.failed_open.load(Ordering::Relaxed) >= 1);
    assert!(stats.deferred.load(Ordering::Relaxed) >= 1);
}
