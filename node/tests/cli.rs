//! Bad input to the binaries: every refusal is one line on stderr that names the problem, with a
//! non-zero exit, and never a panic or a backtrace.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_mxrep-node");
const CTL: &str = env!("CARGO_BIN_EXE_mxrepctl");

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `mxrep-node` as node 1 with its API on `api` and its data in `data_dir` (stdout discarded).
fn node_on(api: &str, data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(NODE);
    c.args([
        "--id",
        "1",
        "--api-listen",
        api,
        "--peer-listen",
        &free_addr(),
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .stdout(Stdio::null());
    c
}

/// Asserts a clean refusal and returns its one line.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "expected a non-zero exit");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

#[test]
fn malformed_peers_entry() {
    let dir = tempfile::tempdir().unwrap();
    for (peers, needle) in [
        (
            "1=127.0.0.1:7401,2127.0.0.1:7402",
            "malformed peer entry '2127.0.0.1:7402'",
        ),
        ("1=127.0.0.1:7401,two=127.0.0.1:7402", "positive integer"),
        ("1=127.0.0.1", "no port"),
    ] {
        let out = Command::new(NODE)
            .args(["--id", "1", "--api-listen", &free_addr()])
            .args(["--peer-listen", &free_addr()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--peers", peers])
            .output()
            .unwrap();
        let line = refused(&out);
        assert!(line.contains(needle), "{peers}: {line}");
    }
    let out = Command::new(NODE)
        .args(["--id", "3", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--api-listen", &free_addr(), "--peer-listen", &free_addr()])
        .output()
        .unwrap();
    assert!(refused(&out).contains("own id 3"));
}

#[test]
fn bad_config_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("node.toml");
    std::fs::write(&f, "id = 1\napi_lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(NODE).arg("--config").arg(&f).output().unwrap();
    let line = refused(&out);
    assert!(
        line.contains("api_lisen") && line.contains("node.toml"),
        "{line}"
    );
}

#[test]
fn prefixes_out_of_range_or_malformed_are_refused_before_any_network() {
    // The endpoint is closed: the refusal must come from checking the argument.
    let closed = free_addr();
    for (prefix, needle) in [
        ("10.0.0.0/33", "at most /32"),
        ("2001:db8::/129", "at most /128"),
        ("mail.example.com", "not an IP address"),
        ("10.0.0.1/24", "did you mean 10.0.0.0/24"),
    ] {
        let out = Command::new(CTL)
            .args(["--endpoint", &closed, "ban", prefix])
            .args(["--for", "10m", "--reason", "x"])
            .output()
            .unwrap();
        let line = refused(&out);
        assert!(line.contains(prefix) && line.contains(needle), "{line}");
    }
    let out = Command::new(CTL)
        .args([
            "--endpoint",
            &closed,
            "ban",
            "192.0.2.1",
            "--for",
            "ten minutes",
        ])
        .output()
        .unwrap();
    assert!(refused(&out).contains("--for"));
}

#[test]
fn unreachable_endpoint() {
    let closed = free_addr();
    let out = Command::new(CTL)
        .args(["--endpoint", &closed, "status"])
        .output()
        .unwrap();
    let line = refused(&out);
    assert!(
        line.contains("cannot reach") && line.contains(&closed),
        "{line}"
    );
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn data_dir_held_by_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_addr();
    let start = |api: &str| {
        let mut c = node_on(api, dir.path());
        c.stderr(Stdio::piped());
        c
    };
    let _first = Running(start(&api).stderr(Stdio::null()).spawn().unwrap());
    // Wait until the first node serves: then it surely holds the lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&api).is_err() {
        assert!(Instant::now() < deadline, "first node never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = start(&free_addr()).output().unwrap();
    let line = refused(&out);
    assert!(
        line.contains("already in use") && line.contains(&dir.path().display().to_string()),
        "{line}"
    );
}

#[test]
fn json_errors_with_codes_and_exit_statuses() {
    let closed = free_addr();
    let run = |args: &[&str]| Command::new(CTL).args(args).output().unwrap();
    // No node: "unavailable", exit 3, as JSON on stdout.
    let out = run(&["--endpoint", &closed, "--json", "status"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    // A bad command line: "usage", exit 2, naming the problem and what was meant.
    let out = run(&[
        "--endpoint",
        &closed,
        "--json",
        "ban",
        "10.0.0.1/24",
        "--for",
        "1m",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "usage");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 10.0.0.0/24"),
        "{v}"
    );
    // Durations say how they are written.
    let out = run(&["--endpoint", &closed, "ban", "192.0.2.1", "--for", "banana"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'banana' is not a duration") && err.contains("10m"),
        "{err}"
    );
}

#[test]
fn json_log_lines_and_a_taken_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let node = |api: &str, extra: &[&str], stderr: Stdio| {
        let mut c = node_on(api, &dir.path().join(api.replace([':', '.'], "_")));
        c.args(["--peers", "1=127.0.0.1:1"])
            .args(extra)
            .stderr(stderr);
        c
    };
    // A port someone else holds: one line naming it, before anything starts.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = node(&free_addr(), &["--metrics-listen", &port], Stdio::piped())
        .output()
        .unwrap();
    let line = refused(&out);
    assert!(
        line.contains("cannot listen for metrics on") && line.contains(&port),
        "{line}"
    );

    // JSON lines: every line a JSON object with a level and a message.
    let log = dir.path().join("node.log");
    let api = free_addr();
    let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
    let _n = Running(
        node(&api, &["--log-format", "json"], stderr)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("mxrep-node starting")
    {
        assert!(Instant::now() < deadline, "the node never logged its start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }
    let bad = Command::new(NODE)
        .args(["--dev", "--log-format", "yaml"])
        .output()
        .unwrap();
    assert!(refused(&bad).contains("yaml"));
}
