//! Tests of the node's configuration: flags, the TOML file, `--dev`, the example in deploy/.

use super::*;

#[test]
fn the_example_config_in_deploy_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/node.toml");
    let f = load_file(&path).unwrap();
    assert_eq!(
        (f.metrics_listen.unwrap().port(), f.log_format),
        (9464, Some(LogFormat::Text))
    );
    assert!(peers_from_toml(f.peers.unwrap()).is_ok());
}

#[test]
fn peers_parse_and_refuse() {
    let p = parse_peers("1=127.0.0.1:7401, 2=node-b:7401").unwrap();
    assert_eq!(p.0.get(&2).unwrap(), "node-b:7401");
    for (bad, needle) in [
        ("1127.0.0.1:7401", "expected ID=HOST:PORT"),
        ("x=127.0.0.1:1", "positive integer"),
        ("0=127.0.0.1:1", "positive integer"),
        ("1=127.0.0.1", "no port"),
        ("1=127.0.0.1:99999", "invalid port"),
        ("1=a:1,1=b:2", "listed twice"),
        ("", "no peers"),
    ] {
        let e = parse_peers(bad).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn dev_defaults_and_flag_precedence() {
    let c = NodeConfig::resolve(NodeArgs {
        dev: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.id, 1);
    assert_eq!(c.api_listen.to_string(), "127.0.0.1:7400");
    assert_eq!(c.peers.get(&1).unwrap(), "127.0.0.1:7401");
    assert_eq!(c.data_dir, PathBuf::from("mxrep-data"));

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("n.toml");
    std::fs::write(
        &f,
        "id = 2\napi_listen = \"127.0.0.1:9000\"\npeer_listen = \"127.0.0.1:9001\"\n\
         data_dir = \"/tmp/x\"\npeers = { 1 = \"h:1\", 2 = \"h:2\" }\n[raft]\nheartbeat_ms = 50\n",
    )
    .unwrap();
    let c = NodeConfig::resolve(NodeArgs {
        config: Some(f.clone()),
        api_listen: Some("127.0.0.1:9100".parse().unwrap()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.id, 2);
    assert_eq!(c.api_listen.to_string(), "127.0.0.1:9100");
    assert_eq!(c.peer_listen.to_string(), "127.0.0.1:9001");
    assert_eq!(c.raft.heartbeat_ms, 50);
    assert_eq!(c.advertise_peer, "h:2");

    std::fs::write(&f, "id = 2\nbogus = 1\n").unwrap();
    let e = NodeConfig::resolve(NodeArgs {
        config: Some(f),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn a_follower_catching_up_is_sent_a_bounded_number_of_entries_at_a_time() {
    let c = RaftTuning::default().to_openraft().unwrap();
    assert_eq!(c.max_payload_entries, 64);
    let one = RaftTuning {
        max_entries_per_append: 0,
        ..RaftTuning::default()
    };
    assert_eq!(one.to_openraft().unwrap().max_payload_entries, 1);
}
