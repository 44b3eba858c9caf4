//! Manual bans are guarded like automatic ones: a typo such as `0.0.0.0/0` is refused with what it
//! would cover, as are bans broader than the breadth limit, covering an allowlisted prefix or a
//! cluster node's own address — each with `--force` as the explicit way through.

use mxrep_tests::*;
use std::time::Duration;

fn refused(api: &str, args: &[&str]) -> String {
    let out = ctl(api, args);
    assert!(!out.status.success(), "{args:?} must be refused");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn a_ban_that_would_lock_out_the_world_needs_force() {
    let _g = serial();
    let c = TestCluster::start(1, Tuning::default());
    c.wait_for_leader(1, Duration::from_secs(30));
    let api = c.node(1).api.clone();
    let e = refused(&api, &["ban", "0.0.0.0/0", "--for", "1m"]);
    assert!(
        e.contains("covers every IPv4 address") && e.contains("--force"),
        "{e}"
    );
    let e = refused(&api, &["ban", "10.0.0.0/8", "--for", "1m"]);
    assert!(e.contains("16,777,216 addresses"), "{e}");
    assert!(ctl(&api, &["allow", "add", "198.51.100.0/24"])
        .status
        .success());
    let e = refused(&api, &["ban", "198.51.100.9", "--for", "1m"]);
    assert!(e.contains("covers allowlisted 198.51.100.0/24"), "{e}");
    let e = refused(&api, &["ban", "127.0.0.0/24", "--for", "1m"]);
    assert!(e.contains("cluster node 1"), "{e}");
    let e = refused(&api, &["ban", "203.0.113.7/24", "--for", "1m"]);
    assert!(
        e.contains("did you mean 203.0.113.0/24") && e.contains("203.0.113.7/32"),
        "{e}"
    );
    // Nothing of it was banned.
    assert_eq!(c.node(1).ban_prefixes().unwrap(), Vec::<String>::new());
    // The explicit way through.
    let out = ctl(
        &api,
        &[
            "ban",
            "10.0.0.0/8",
            "--for",
            "1m",
            "--force",
            "--reason",
            "known bad network",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.node(1).ban_prefixes().unwrap(), vec!["10.0.0.0/8"]);
    // ip show takes a prefix too: the bans covering it or inside it.
    let r = ctl_json(&api, &["ip", "show", "10.1.0.0/16"]).unwrap();
    assert_eq!(r["address"], "10.1.0.0/16");
    assert_eq!(r["covering_bans"][0]["prefix"], "10.0.0.0/8", "{r}");
    let r = ctl_json(&api, &["ip", "show", "10.0.0.0/7"]).unwrap();
    assert_eq!(
        r["covering_bans"][0]["prefix"], "10.0.0.0/8",
        "a ban inside it: {r}"
    );
    let r = ctl_json(&api, &["ip", "show", "203.0.113.0/24"]).unwrap();
    assert_eq!(r["banned"], false);
    // Importing a list: the same guards, a summary that says what happened to every line.
    let list = c.dir.path().join("drop.txt");
    std::fs::write(
        &list,
        "; Spamhaus DROP List\n198.18.0.0/24 ; SBL1\n192.0.2.77  # seen\n\n10.0.0.0/8 ; SBL2\n0.0.0.0/0 ; typo\n203.0.113.7/24 ; SBL3\n",
    )
    .unwrap();
    let r = ctl_json(
        &api,
        &["bans", "import", list.to_str().unwrap(), "--for", "1h"],
    )
    .unwrap();
    assert_eq!(
        (r["added"].as_u64(), r["already_banned"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    let refused = r["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{r}");
    assert!(
        refused[0]["why"]
            .as_str()
            .unwrap()
            .contains("every IPv4 address"),
        "{r}"
    );
    assert_eq!(refused[1]["line"], 7);
    assert!(
        refused[1]["why"]
            .as_str()
            .unwrap()
            .contains("did you mean 203.0.113.0/24"),
        "{r}"
    );
    let listed = c.node(1).ban_prefixes().unwrap();
    assert!(
        listed.contains(&"198.18.0.0/24".to_string())
            && listed.contains(&"192.0.2.77/32".to_string())
    );
    // The node said when it was serving, and logs every administrative change.
    let log = wait_until(
        Duration::from_secs(10),
        "the change in the node's log",
        || {
            let l = c.node(1).log_text();
            l.contains("manual ban of 10.0.0.0/8").then_some(l)
        },
    );
    assert!(log.contains("serving: API 127.0.0.1:"), "{log}");
    assert!(
        log.contains("known bad network") && log.contains("198.51.100.0/24 added to the allowlist"),
        "{log}"
    );
}
