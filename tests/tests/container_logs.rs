//! Kubernetes container logs as the kubelet writes them (CRI format under /var/log/pods): the
//! agent follows a glob, joins partial lines, uses the runtime's zoned stamps, picks up a pod
//! that starts later (read whole), and follows the kubelet's rotation (rename, new file, the old
//! one compressed) — and the cluster counts every connection exactly once.

use mxrep_tests::*;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// CRI lines of one delivering connection of `addr`, the `client=` line split in two parts.
fn delivering(addr: &str, pid: u32) -> String {
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    format!(
        "{t} stdout F postfix/smtpd[{pid}]: connect from mail.example[{addr}]\n\
         {t} stdout P postfix/smtpd[{pid}]: 4N{pid:X}: cli\n\
         {t} stdout F ent=mail.example[{addr}]\n\
         {t} stderr F some other output\n\
         {t} stdout F postfix/smtpd[{pid}]: disconnect from mail.example[{addr}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5\n"
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn pods_come_and_rotate_and_every_connection_counts_once() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_leading(dir.path(), "");
    let pods = dir.path().join("pods");
    let a_dir = pods.join("mail_postfix-a_0001/postfix");
    std::fs::create_dir_all(&a_dir).unwrap();
    let a_log = a_dir.join("0.log");
    let addr = "198.51.100.80";
    // Lines from before the agent started are history: not counted.
    append(
        &a_log,
        &(1..=3)
            .map(|i| delivering(addr, 100 + i))
            .collect::<String>(),
    );

    let pattern = format!("{}/*/postfix/*.log", pods.display());
    let agent = AgentProc::start(
        dir.path(),
        &node.api,
        "k8s-node-1",
        &["--dry-run", "--container-log", &pattern],
        &[],
    );
    append(
        &a_log,
        &(1..=2)
            .map(|i| delivering(addr, 200 + i))
            .collect::<String>(),
    );
    wait_until(LIMIT, "two messages from pod a", || {
        (accepted_messages(&node.api, addr)? == 2).then_some(())
    });

    // A pod that starts now: its file is read from its first line.
    let b_dir = pods.join("mail_postfix-b_0002/postfix");
    std::fs::create_dir_all(&b_dir).unwrap();
    append(
        &b_dir.join("0.log"),
        &(1..=2)
            .map(|i| delivering(addr, 300 + i))
            .collect::<String>(),
    );
    wait_until(LIMIT, "pod b's two messages too", || {
        (accepted_messages(&node.api, addr)? == 4).then_some(())
    });

    // The kubelet rotates pod a's log: rename, a new file, then the old one compressed.
    let rotated = a_dir.join("0.log.20261127-203000");
    std::fs::rename(&a_log, &rotated).unwrap();
    append(&a_log, &delivering(addr, 401));
    let gz = Command::new("gzip").arg(&rotated).status().unwrap();
    assert!(gz.success());
    wait_until(LIMIT, "the message after the rotation", || {
        (accepted_messages(&node.api, addr)? == 5).then_some(())
    });
    let log = agent.log_text();
    assert!(log.contains("following container log"), "{log}");
    assert!(!log.contains("not understood"), "{log}");
    // Exactly once: a later marker from another sender is counted after anything read twice
    // would have been, and the count has not moved.
    append(&a_log, &delivering("198.51.100.81", 501));
    wait_until(LIMIT, "the marker counted", || {
        (accepted_messages(&node.api, "198.51.100.81")? == 1).then_some(())
    });
    assert_eq!(accepted_messages(&node.api, addr), Some(5));
}
