//! Faults for the soak test: a node's data dir on a small tmpfs that can be filled, an agent
//! stopped the way a rollout stops it, and the memory of a process.

use crate::netns::{sh, Daemon};
use crate::NodeProc;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Moves `node`'s data dir onto a tmpfs of `mib` MiB (the node is stopped and started again).
pub fn data_dir_on_tmpfs(node: &mut NodeProc, mib: u64) {
    node.stop();
    let dir = node.data_dir.clone();
    let saved = dir.with_extension("saved");
    std::fs::rename(&dir, &saved).expect("move the data dir aside");
    std::fs::create_dir_all(&dir).unwrap();
    let size = format!("size={mib}m");
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &size,
        "tmpfs",
        dir.to_str().unwrap(),
    ]);
    sh(&[
        "cp",
        "-a",
        &format!("{}/.", saved.display()),
        dir.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&saved).unwrap();
    node.start();
}

/// Unmounts what [`data_dir_on_tmpfs`] mounted on `dir` (lazily: a node may still hold it).
pub fn unmount_data_dir(dir: &Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(dir)
        .status();
}

/// Fills the filesystem holding `dir` with one file; returns it (remove it to free the space).
pub fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("create filler");
    let chunk = vec![0u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    // The last bytes, to the very end.
    while f.write_all(&chunk[..4096]).is_ok() {}
    let _ = f.sync_all();
    filler
}

/// SIGTERM to `agent` and its exit awaited (SIGKILL after `limit`); true if it exited by itself.
pub fn terminate(agent: Daemon, limit: Duration) -> bool {
    let mut d = agent;
    let pid = d.0.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = d.0.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Resident memory of process `pid` in bytes (0 if it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}
