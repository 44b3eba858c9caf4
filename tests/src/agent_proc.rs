//! One `mxrep-agent` process on this host's network (no namespace), for the tests of its
//! sources: started with the given flags and environment, awaited until it runs.

use crate::netns::Daemon;
use crate::{bin, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running agent and its log.
pub struct AgentProc {
    pub log: PathBuf,
    _daemon: Daemon,
}

impl AgentProc {
    /// Starts `mxrep-agent --cluster API --node-name NAME --state-dir DIR/NAME-state ARGS…` with
    /// `env`, logging to DIR/NAME.log, and waits until it runs.
    pub fn start(dir: &Path, api: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin("mxrep-agent"))
            .args(["--cluster", api, "--node-name", name])
            .arg("--state-dir")
            .arg(dir.join(format!("{name}-state")))
            .args(args)
            .env("MXREP_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start mxrep-agent");
        let agent = Self {
            log,
            _daemon: Daemon(child),
        };
        wait_until(Duration::from_secs(60), "the agent to run", || {
            agent
                .log_text()
                .contains("mxrep-agent running")
                .then_some(())
        });
        agent
    }

    /// SIGTERM, as `systemctl stop` or a pod's end sends it; waits for the exit up to `limit`.
    /// Returns whether the agent exited by itself (it is killed otherwise) and its log.
    pub fn stop(mut self, limit: Duration) -> (bool, String) {
        let pid = self._daemon.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + limit;
        let exited = loop {
            match self._daemon.0.try_wait() {
                Ok(Some(_)) => break true,
                _ if std::time::Instant::now() >= deadline => break false,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        (exited, self.log_text())
    }

    /// SIGTERM; asserts that the agent exits by itself within 15 s. Returns its log.
    pub fn stopped(self) -> String {
        let (exited, text) = self.stop(Duration::from_secs(15));
        assert!(exited, "the agent did not exit on SIGTERM:\n{text}");
        text
    }

    /// Waits (up to a minute) until the agent's log says `what`.
    pub fn wait_for_log(&self, what: &str) {
        crate::wait_until(
            Duration::from_secs(60),
            &format!("the agent to log {what:?}"),
            || self.log_text().contains(what).then_some(()),
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
