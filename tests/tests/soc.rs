//! The SOC engineer's view: a Python client (grpcio, stubs generated from the repository's .proto
//! files during the test) with a reader certificate looks up addresses in bulk, lists bans with
//! filters page by page and follows the ban list while an admin bans; what it saw is checked
//! against mxrepctl. Python with grpcio and grpcio-tools comes from `.ci/run` (`MXREP_PYTHON`).

use mxrep_tests::ctl::ctl_as;
use mxrep_tests::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn python() -> Option<String> {
    let py = std::env::var("MXREP_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    mxrep_tests::netns::skip_loudly(&format!("the SOC client test needs Python with grpcio and grpcio-tools ({py}; .ci/run makes a venv and sets MXREP_PYTHON)"));
    None
}

#[test]
fn a_python_soc_client_with_a_reader_certificate() {
    let Some(py) = python() else {
        return;
    };
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = mxrep_tests::ctl::certs_init(dir.path(), &[]);
    let node = NodeProc::single_tls(dir.path(), &pki);
    let api = node.api.clone();
    for p in ["203.0.113.5", "203.0.113.6", "203.0.113.7", "198.51.100.9"] {
        let out = ctl_as(
            &api,
            &pki,
            "admin",
            &["ban", p, "--for", "1h", "--reason", "soc test"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(&py)
        .arg(root.join("soc/soc_client.py"))
        .arg(&api)
        .arg(&pki)
        .arg(root.join("../proto"))
        .arg(dir.path().join("soc"))
        .args([
            "203.0.113.5",
            "192.0.2.200",
            "203.0.113.0/24",
            "not-an-address",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python SOC client");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("WATCHING") {
                let _ = tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!(
            "the client never followed the ban list: {}",
            reader.join().unwrap()
        );
    }
    let out = ctl_as(
        &api,
        &pki,
        "admin",
        &[
            "ban",
            "203.0.113.99",
            "--for",
            "1h",
            "--reason",
            "during the watch",
        ],
    );
    assert!(out.status.success());
    let output = child.wait_with_output().unwrap();
    let errors = reader.join().unwrap();
    assert!(output.status.success(), "client failed: {errors}");
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));

    // Bulk lookup: the same as `mxrepctl ip show`, one answer per query, errors per entry.
    let lookup = seen["lookup"].as_array().unwrap();
    assert_eq!(lookup.len(), 4);
    for r in &lookup[..3] {
        let q = r["query"].as_str().unwrap();
        let out = ctl_as(&api, &pki, "reader", &["--json", "ip", "show", q]);
        let ours: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let covering: Vec<&str> = ours["covering_bans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["prefix"].as_str().unwrap())
            // Made after the client looked up.
            .filter(|p| *p != "203.0.113.99/32")
            .collect();
        let theirs: Vec<&str> = r["covering"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(theirs, covering, "{q}");
    }
    assert_eq!(lookup[0]["banned"], true);
    assert_eq!(lookup[1]["banned"], false);
    assert!(
        lookup[3]["error"]
            .as_str()
            .unwrap()
            .contains("not-an-address"),
        "{}",
        lookup[3]
    );
    // Filtered, paged: the three manual bans in 203.0.113.0/24 (not 198.51.100.9), two a page,
    // each with its author.
    let pages = seen["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{seen}");
    let listed: Vec<&serde_json::Value> = pages
        .iter()
        .flat_map(|p| p["bans"].as_array().unwrap())
        .collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(pages[0]["total"], 3);
    for b in listed {
        assert!(b[0].as_str().unwrap().starts_with("203.0.113."), "{b}");
        assert!(
            b[1].as_str().unwrap().contains("mxrep:admin"),
            "author: {b}"
        );
    }
    assert_eq!(seen["bad_filter"], "INVALID_ARGUMENT");
    // The ban stream: the snapshot mxrepctl lists, then the ban made while it watched.
    let snapshot: Vec<&str> = seen["snapshot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(snapshot.len(), 4, "{seen}");
    let list = ctl_as(&api, &pki, "reader", &["bans", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(snapshot.iter().all(|p| text.contains(p)), "{text}");
    let change = &seen["changes"][0];
    assert_eq!(change["prefix"], "203.0.113.99/32", "{seen}");
    assert_eq!(change["reason"], "during the watch");
    assert!(
        change["author"].as_str().unwrap().contains("mxrep:admin"),
        "{change}"
    );
}
