//! The ban-list stream: a snapshot, then ordered changes; a watcher that already holds a version
//! is sent only what came after it.

use mxrep_proto::v1::ban_update::Update;
use mxrep_proto::v1::BanChangeKind;
use mxrep_tests::events::*;
use mxrep_tests::*;
use std::time::Duration;

fn change(u: Update) -> (u64, BanChangeKind, String) {
    match u {
        Update::Change(c) => (c.version, c.kind(), c.ban.unwrap().prefix),
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn snapshot_then_changes_and_resume_from_a_version() {
    let _g = serial();
    let c = TestCluster::start(3, Tuning::default());
    c.wait_for_leader(3, Duration::from_secs(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = c.node(2).api.clone();
    rt.block_on(async {
        let mut w = watch(&api, 0).await;
        let Update::Snapshot(s) = next_update(&mut w).await else {
            panic!("a new watcher starts with a snapshot");
        };
        assert!(s.bans.is_empty());

        for p in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            let out = ctl(&c.node(1).api, &["ban", p, "--for", "1h"]);
            assert!(out.status.success());
        }
        assert!(ctl(&c.node(3).api, &["unban", "192.0.2.2"])
            .status
            .success());
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(change(next_update(&mut w).await));
        }
        let kinds: Vec<(BanChangeKind, &str)> =
            seen.iter().map(|(_, k, p)| (*k, p.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (BanChangeKind::Added, "192.0.2.1/32"),
                (BanChangeKind::Added, "192.0.2.2/32"),
                (BanChangeKind::Added, "192.0.2.3/32"),
                (BanChangeKind::Removed, "192.0.2.2/32"),
            ]
        );
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0),
            "versions increase: {seen:?}"
        );

        // Resume holding the version of the second ban: only the last two changes come.
        let held = seen[1].0;
        let last = seen[3].0;
        wait_until(
            Duration::from_secs(30),
            "node 3 to apply every change",
            || (c.node(3).status()?["ban_version"].as_u64()? >= last).then_some(()),
        );
        let mut r = watch(&c.node(3).api, held).await;
        let rest = vec![
            change(next_update(&mut r).await),
            change(next_update(&mut r).await),
        ];
        assert_eq!(rest, seen[2..].to_vec());

        // A version this node never had: a fresh snapshot.
        let mut far = watch(&api, seen[3].0 + 1_000_000).await;
        let Update::Snapshot(s) = next_update(&mut far).await else {
            panic!("an unknown version gets a snapshot");
        };
        let mut prefixes: Vec<String> = s.bans.into_iter().map(|b| b.prefix).collect();
        prefixes.sort();
        assert_eq!(prefixes, vec!["192.0.2.1/32", "192.0.2.3/32"]);
        assert_eq!(s.version, seen[3].0);
    });
}
