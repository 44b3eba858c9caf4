//! `mxrepctl` as the tests call it: the real binary, in a network namespace or not.

use crate::bin;
use serde_json::Value;
use std::process::{Command, Output};

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
