//! `mxrepctl` as the tests call it: the real binary, in a network namespace or not.

use crate::bin;
use serde_json::Value;
use std::process::{Command, Output};

/// Certificates every `mxrepctl` call presents while a test bed with TLS runs (its admin's).
static TLS: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Makes every following `mxrepctl` call use the admin certificate in `pki` (None: plaintext).
/// The test bed sets it for its life; tests hold `serial()` meanwhile.
pub fn use_tls(pki: Option<std::path::PathBuf>) {
    *TLS.lock().unwrap_or_else(|p| p.into_inner()) = pki;
}

/// `mxrepctl policy set` of the document `toml` (written to a file in `dir`); panics with
/// mxrepctl's words if the cluster refuses it.
pub fn set_policy(endpoint: &str, dir: &std::path::Path, toml: &str) {
    let file = dir.join("policy.toml");
    std::fs::write(&file, toml).expect("write the policy file");
    let out = ctl(
        endpoint,
        &["policy", "set", file.to_str().expect("a UTF-8 path")],
    );
    assert!(
        out.status.success(),
        "policy set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mxrepctl certs init DIR/pki --san …` (offline); returns DIR/pki.
pub fn certs_init(dir: &std::path::Path, sans: &[&str]) -> std::path::PathBuf {
    let pki = dir.join("pki");
    let mut args = vec!["certs", "init", pki.to_str().expect("a UTF-8 path")];
    for s in sans {
        args.extend(["--san", s]);
    }
    let out = ctl("127.0.0.1:1", &args);
    assert!(
        out.status.success(),
        "certs init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pki
}

/// Runs `mxrepctl` with the certificate `kind` (admin, reader, agent) from `pki`.
pub fn ctl_as(endpoint: &str, pki: &std::path::Path, kind: &str, args: &[&str]) -> Output {
    let f = |n: String| pki.join(n).display().to_string();
    let mut all = vec![
        "--tls-ca".to_string(),
        f("ca.pem".into()),
        "--tls-cert".into(),
        f(format!("{kind}.pem")),
        "--tls-key".into(),
        f(format!("{kind}-key.pem")),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    ctl(endpoint, &refs)
}

/// Runs `mxrepctl --endpoint EP ARGS…`.
pub fn ctl(endpoint: &str, args: &[&str]) -> Output {
    ctl_in(None, endpoint, args)
}

/// Runs `mxrepctl --endpoint EP ARGS…`, inside network namespace `ns` if given.
pub fn ctl_in(ns: Option<&str>, endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin("mxrepctl"));
            c
        }
        None => Command::new(bin("mxrepctl")),
    };
    if let Some(pki) = TLS.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        cmd.arg("--tls-ca")
            .arg(pki.join("ca.pem"))
            .arg("--tls-cert")
            .arg(pki.join("admin.pem"))
            .arg("--tls-key")
            .arg(pki.join("admin-key.pem"));
    }
    cmd.arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("run mxrepctl")
}

/// Runs `mxrepctl … --json` and parses its output; `Err(stderr)` when it fails.
pub fn ctl_json(endpoint: &str, args: &[&str]) -> Result<Value, String> {
    ctl_json_in(None, endpoint, args)
}

/// [`ctl_json`] inside network namespace `ns` if given.
pub fn ctl_json_in(ns: Option<&str>, endpoint: &str, args: &[&str]) -> Result<Value, String> {
    let mut a = args.to_vec();
    a.push("--json");
    let out = ctl_in(ns, endpoint, &a);
    if !out.status.success() {
        // With --json the error is on stdout: {"error": {"code", "message"}}.
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        return Err(if stdout.trim().is_empty() {
            String::from_utf8_lossy(&out.stderr).into_owned()
        } else {
            stdout
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON from mxrepctl: {e}"))
}

/// The count of `addr`'s "accepted messages" counter, as `mxrepctl ip show` reports it.
pub fn accepted_messages(endpoint: &str, addr: &str) -> Option<u64> {
    let r = ctl_json(endpoint, &["ip", "show", addr]).ok()?;
    r["counters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "accepted messages")?["count"]
        .as_u64()
}

/// The MX hosts named by the evidence of the ban of `prefix` (sorted, once each), once it exists.
pub fn ban_evidence_hosts(endpoint: &str, prefix: &str) -> Option<Vec<String>> {
    evidence_hosts_in(&ctl_json(endpoint, &["bans", "list"]).ok()?, prefix)
}

/// The MX hosts named by the evidence of `prefix`'s ban in a `bans list` answer `v`.
pub fn evidence_hosts_in(v: &Value, prefix: &str) -> Option<Vec<String>> {
    let ban = v["bans"]
        .as_array()?
        .iter()
        .find(|b| b["prefix"] == prefix)?
        .clone();
    let mut hosts: Vec<String> = ban["evidence"]
        .as_array()?
        .iter()
        .flat_map(|e| e["mx_hosts"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h.as_str().map(String::from))
        .collect();
    hosts.sort();
    hosts.dedup();
    Some(hosts)
}
