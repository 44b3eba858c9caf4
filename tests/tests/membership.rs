//! A cluster that follows its deployment: a running 3-node cluster grows to 5 with `--join`
//! (what `helm upgrade --set node.replicas=5` does) and shrinks back to 3 (`--cluster-size`: the
//! leader removes members above it once they have gone), while an operator keeps banning and two
//! agents follow the ban list. No ban is lost, every agent holds every ban.

use mxrep_tests::policy::ask_policy;
use mxrep_tests::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// The voters node `n` reports, sorted.
fn voters(n: &NodeProc) -> Option<Vec<u64>> {
    let s = n.status()?;
    let mut v: Vec<u64> = s["members"]
        .as_array()?
        .iter()
        .filter(|m| m["voter"].as_bool() == Some(true))
        .filter_map(|m| m["id"].as_u64())
        .collect();
    v.sort();
    Some(v)
}

#[test]
fn grows_to_five_with_join_and_shrinks_back_to_three_losing_no_ban() {
    let _g = serial();
    let mut c = TestCluster::start_with(3, Tuning::default(), |_| "cluster_size = 3".into());
    c.wait_for_leader(3, LIMIT);
    let via = c.node(1).api.clone();
    for id in [4, 5] {
        let n = NodeProc::new(c.dir.path(), id, None, &c.tuning);
        n.prepend_config(&format!("join = \"{via}\"\ncluster_size = 3"));
        c.nodes.push(n);
    }
    let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();

    // Two agents: one first attached to a node that is about to join, one to a founder.
    let dir = tempfile::tempdir().unwrap();
    let mut agents = vec![];
    for (name, order) in [("mx1", [3, 4, 0, 1, 2]), ("mx2", [0, 1, 2, 3, 4])] {
        let listen = format!("127.0.0.1:{}", free_port());
        let cluster: Vec<&str> = order.iter().map(|&i| apis[i].as_str()).collect();
        let agent = AgentProc::start(
            dir.path(),
            &cluster.join(","),
            name,
            &["--dry-run", "--policy-listen", &listen],
            &[],
        );
        agents.push((agent, listen));
    }

    // An operator bans one address after another, through whichever node answers.
    let made = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let banner = {
        let (made, done, apis) = (made.clone(), done.clone(), apis.clone());
        std::thread::spawn(move || {
            for i in 0u32.. {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let addr = format!("198.51.{}.{}", 100 + i / 250, 1 + i % 250);
                let api = &apis[i as usize % 3];
                if ctl_json(api, &["ban", &addr, "--for", "1h", "--reason", "grow"]).is_ok() {
                    made.lock().unwrap().push(addr);
                }
            }
        })
    };
    let made_at_least = |n: usize| {
        wait_until(LIMIT, &format!("{n} bans made"), || {
            (made.lock().unwrap().len() >= n).then_some(())
        })
    };
    made_at_least(5);

    // Grow: nodes 4 and 5 ask node 1 to add them.
    c.node_mut(4).start();
    c.node_mut(5).start();
    wait_until(LIMIT, "five voters", || {
        (voters(c.node(1))? == vec![1, 2, 3, 4, 5]).then_some(())
    });
    let before = made.lock().unwrap().len();
    made_at_least(before + 5);
    // The joiners answer for the cluster like everyone else.
    assert_eq!(voters(c.node(5)), Some(vec![1, 2, 3, 4, 5]));
    assert!(c.node(4).log_text().contains("joined the cluster through"));

    // Shrink: the pods above the size stop; the leader removes them once they have gone.
    c.node_mut(5).stop();
    c.node_mut(4).stop();
    wait_until(LIMIT, "three voters again", || {
        (voters(c.node(1))? == vec![1, 2, 3]).then_some(())
    });
    let before = made.lock().unwrap().len();
    made_at_least(before + 5);
    done.store(true, Ordering::SeqCst);
    banner.join().unwrap();

    let made = made.lock().unwrap().clone();
    let want: Vec<String> = made.iter().map(|a| format!("{a}/32")).collect();
    wait_until(LIMIT, "every running node to hold every ban made", || {
        c.nodes
            .iter()
            .filter(|n| n.is_running())
            .all(|n| {
                n.ban_prefixes()
                    .is_some_and(|have| want.iter().all(|w| have.contains(w)))
            })
            .then_some(())
    });
    for (agent, listen) in &agents {
        wait_until(LIMIT, "the agent to refuse every banned address", || {
            made.iter()
                .all(|a| ask_policy(listen, a).is_some_and(|x| x.starts_with("action=REJECT")))
                .then_some(())
        });
        assert!(agent.log_text().contains("mxrep-agent running"));
    }
    let leader_log: String = c.nodes.iter().map(|n| n.log_text()).collect();
    assert!(
        leader_log.contains("beyond the cluster size 3"),
        "no removal logged"
    );
}
