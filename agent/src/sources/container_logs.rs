//! Kubernetes container logs: the agent follows every file matching the given globs (say
//! `/var/log/pods/mail_postfix-*/postfix/*.log`), picking up files as pods come and dropping them
//! when their pod is gone. Files there at start are read from their end (or where the agent left
//! them); files that appear later are read whole. The kubelet's rotation (rename, a new file,
//! then compression of the old one) is the follower's rename-and-create case.

use super::log_pump::{FileFormat, Pump};
use std::path::PathBuf;
use std::time::Duration;

/// How often the globs are matched again.
const RESCAN: Duration = Duration::from_secs(2);

/// The files matching `patterns` now.
fn matching(patterns: &[String]) -> Vec<PathBuf> {
    let mut out = vec![];
    for p in patterns {
        match glob::glob(p) {
            Ok(paths) => out.extend(paths.flatten().filter(|p| p.is_file())),
            Err(e) => tracing::warn!("container log pattern {p:?}: {e}"),
        }
    }
    out
}

/// Checks every pattern now (a malformed one is an error), then follows what matches, forever.
pub fn watch(patterns: Vec<String>, pump: Pump) -> anyhow::Result<()> {
    for p in &patterns {
        glob::Pattern::new(p).map_err(|e| anyhow::anyhow!("--container-log {p:?}: {e}"))?;
    }
    for path in matching(&patterns) {
        pump.follow(&path, FileFormat::Cri, false);
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RESCAN).await;
            for path in matching(&patterns) {
                if !pump.follows(&path) {
                    tracing::info!("following container log {}", path.display());
                    pump.follow(&path, FileFormat::Cri, true);
                }
            }
        }
    });
    Ok(())
}
