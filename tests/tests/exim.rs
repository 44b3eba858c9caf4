//! Exim, Debian's default MTA, as the agent's source: a real Exim 4.96 (unpacked from Debian's
//! packages by `.ci/run`, since they conflict with Postfix's) receives mail through swaks,
//! delivering for one client and refusing unknown recipients for another; the agent follows its
//! mainlog and the cluster counts both, with the same events a Postfix host gives.

use mxrep_tests::netns::{sh, Daemon};
use mxrep_tests::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn count(api: &str, addr: &str, name: &str) -> Option<u64> {
    let r = ctl_json(api, &["ip", "show", addr]).ok()?;
    r["counters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?["count"]
        .as_u64()
}

fn swaks(port: u16, from: &str, rcpt: &str) -> bool {
    Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--local-interface",
            from,
        ])
        .args(["--to", rcpt, "--from", "sender@example.test"])
        .args(["--timeout", "10", "--silent", "2"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_real_exim_gives_the_cluster_the_same_events_as_postfix() {
    let exim = match std::env::var("MXREP_EXIM") {
        Ok(p) if std::path::Path::new(&p).exists() => p,
        _ => {
            assert_ne!(
                std::env::var("MXREP_REQUIRE_E2E").as_deref(),
                Ok("1"),
                "MXREP_REQUIRE_E2E=1 but MXREP_EXIM does not name an Exim binary (.ci/run unpacks one)"
            );
            eprintln!("\n!!!!! SKIPPED: the Exim test needs MXREP_EXIM (see .ci/run) !!!!!\n");
            return;
        }
    };
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_leading(dir.path(), "");
    let (spool, logs) = (dir.path().join("spool"), dir.path().join("log"));
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    sh(&["chmod", "755", &dir.path().display().to_string()]);
    sh(&[
        "chown",
        "-R",
        "Debian-exim",
        &spool.display().to_string(),
        &logs.display().to_string(),
    ]);
    let port = free_port();
    let conf = dir.path().join("exim.conf");
    std::fs::write(
        &conf,
        format!(
            "primary_hostname = mx-exim.test\n\
             domainlist local_domains = mx.test\n\
             spool_directory = {spool}\n\
             log_file_path = {logs}/%slog\n\
             log_selector = +incoming_port +smtp_connection +smtp_protocol_error +smtp_syntax_error\n\
             keep_environment =\n\
             tls_advertise_hosts =\n\
             queue_only = true\n\
             daemon_smtp_ports = {port}\n\
             local_interfaces = 127.0.0.1\n\
             never_users = root\n\
             acl_smtp_rcpt = acl_check_rcpt\n\
             begin acl\n\
             acl_check_rcpt:\n  accept domains = +local_domains\n         local_parts = user\n  deny message = User unknown\n\
             begin routers\n\
             devnull:\n  driver = redirect\n  data = :blackhole:\n",
            spool = spool.display(),
            logs = logs.display()
        ),
    )
    .unwrap();
    let _exim = Daemon(
        Command::new(&exim)
            .arg("-C")
            .arg(&conf)
            .args(["-bd", "-odq"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start exim"),
    );
    let mainlog = logs.join("mainlog");
    wait_until(LIMIT, "Exim to listen", || {
        std::fs::read_to_string(&mainlog)
            .ok()?
            .contains("daemon started")
            .then_some(())
    });
    let path = mainlog.display().to_string();
    let _agent = AgentProc::start(
        dir.path(),
        &node.api,
        "mx-exim",
        &["--dry-run", "--mail-log", &path, "--log-timezone", "UTC"],
        &[("TZ", "UTC")],
    );
    for _ in 0..2 {
        assert!(swaks(port, "127.0.0.2", "user@mx.test"), "a delivery");
    }
    for i in 0..3 {
        assert!(
            !swaks(port, "127.0.0.3", &format!("nobody{i}@mx.test")),
            "a refusal"
        );
    }
    wait_until(LIMIT, "two messages of 127.0.0.2 counted", || {
        (count(&node.api, "127.0.0.2", "accepted messages")? == 2).then_some(())
    });
    wait_until(LIMIT, "three bad connections of 127.0.0.3", || {
        (count(&node.api, "127.0.0.3", "bad connections (not mail)")? == 3).then_some(())
    });
    // How tests/fixtures/exim-4.96-mainlog.log was captured.
    if let Ok(to) = std::env::var("MXREP_CAPTURE_DIR") {
        std::fs::copy(
            &mainlog,
            std::path::Path::new(&to).join("exim-4.96-mainlog.log"),
        )
        .unwrap();
    }
    // Every line of the real mainlog understood.
    let out = run_ok(
        Command::new(bin("mxrep-agent"))
            .args(["check-log", "--json", "--log-timezone", "UTC"])
            .arg(&mainlog),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let s = &summary["summary"];
    let log = std::fs::read_to_string(&mainlog).unwrap();
    assert_eq!(s["not_understood"], 0, "{log}");
    assert_eq!(s["by_kind"]["accepted"], 2, "{s}");
    assert_eq!(s["by_kind"]["reject"], 3, "{s}");
    assert_eq!(s["by_kind"]["connect"], 5, "{s}");
}
