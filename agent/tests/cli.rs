//! `mxrep-agent check-log` on the real Postfix capture, and bad command lines: one line, non-zero
//! exit, no panic.

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_mxrep-agent");
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/postfix-3.7-maillog.log"
);

#[test]
fn check_log_prints_events_and_a_summary() {
    let out = Command::new(AGENT)
        .args(["check-log", SAMPLE])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lines read:          1452"), "{text}");
    assert!(text.contains("lines not understood: 0"), "{text}");
    assert!(text.lines().any(|l| l.contains("10.250.0.10")
        && l.contains("reject")
        && l.contains("class=greylisted")));

    let out = Command::new(AGENT)
        .args(["check-log", SAMPLE, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["lines"], 1452);
    assert_eq!(
        summary["events"].as_u64().unwrap() as usize,
        lines.len() - 1
    );
    assert_eq!(summary["by_kind"]["connect"], 211);
    assert_eq!(
        summary["by_kind"]["verdict"], 211,
        "one verdict per connection"
    );
    let delivered = lines
        .iter()
        .filter(|l| {
            l["kind"] == "verdict" && l["details"].as_str().unwrap().starts_with("delivered")
        })
        .count();
    assert_eq!(delivered, 202);
}

#[test]
fn check_log_counts_garbage_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mixed.log");
    std::fs::write(
        &f,
        "garbage line\nNov 26 17:06:09 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]\n\u{0}\u{1}\nNov 26 17:06:09 mx1 postfix/qmgr[2]: 2B066B6317: removed\n",
    )
    .unwrap();
    let out = Command::new(AGENT)
        .args(["check-log", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"]["not_understood"], 2);
    assert_eq!(last["summary"]["ignored"], 1);
    // The connect, and the verdict of its connection judged at the end of the file.
    assert_eq!(last["summary"]["events"], 2);
}

fn refused(args: &[&str]) -> String {
    let out = Command::new(AGENT).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} must fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    lines[0].to_string()
}

#[test]
fn bad_input_is_one_clear_line() {
    assert!(refused(&["check-log", "/no/such/file"]).contains("cannot open /no/such/file"));
    assert!(refused(&["--nft-table", "bad table;", "--node-name", "mx1"]).contains("--nft-table"));
    assert!(refused(&["--cluster", "nohostport", "--node-name", "mx1"]).contains("HOST:PORT"));
    assert!(refused(&["--ports", "0", "--node-name", "mx1"]).contains("--ports"));
    assert!(refused(&["--policy-listen", "not-an-address"]).contains("--policy-listen"));
}
