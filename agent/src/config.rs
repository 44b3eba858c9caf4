//! The agent's command line (stable, see docs/ARCHITECTURE.md) and its validated form.

use crate::sources::timezone::LogTimezone;
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;

/// Flags of `mxrep-agent` when it runs.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// API addresses of cluster nodes, tried in turn.
    #[arg(long, default_value = "127.0.0.1:7400", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// This MX host's name in events (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Mail log file to follow: Postfix's, or Exim's mainlog (repeatable).
    #[arg(long, visible_alias = "mail-log")]
    pub postfix_log: Vec<PathBuf>,
    /// Follow Postfix in the systemd journal (`journalctl`), from now on the first start and
    /// from the saved cursor after that.
    #[arg(long)]
    pub journal: bool,
    /// A journal directory to follow instead of the system journal (implies --journal).
    #[arg(long)]
    pub journal_dir: Option<PathBuf>,
    /// A journal match FIELD=VALUE (repeatable; default SYSLOG_IDENTIFIER=postfix/smtpd and
    /// SYSLOG_IDENTIFIER=postfix/postscreen; implies --journal).
    #[arg(long)]
    pub journal_match: Vec<String>,
    /// Kubernetes container logs (CRI format) to follow, as a glob, e.g.
    /// '/var/log/pods/mail_postfix-*/postfix/*.log' (repeatable); pods are picked up as they come.
    #[arg(long)]
    pub container_log: Vec<String>,
    /// Receive syslog (UDP and TCP, RFC 5424 or 3164) on this address, e.g. 0.0.0.0:5514; each
    /// message's host name is the MX host of its events (off unless given).
    #[arg(long)]
    pub syslog_listen: Option<std::net::SocketAddr>,
    /// Address for Postfix's check_policy_service, e.g. 127.0.0.1:10040 (off unless given).
    #[arg(long)]
    pub policy_listen: Option<std::net::SocketAddr>,
    /// Where log positions and the ban-list version are remembered.
    #[arg(long, default_value = "/var/lib/mxrep-agent")]
    pub state_dir: PathBuf,
    /// nftables table (family inet) the agent owns.
    #[arg(long, default_value = "mxrep")]
    pub nft_table: String,
    /// Ports to protect.
    #[arg(long, default_value = "25", value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// Do everything but write to nftables; log what would have been done.
    #[arg(long)]
    pub dry_run: bool,
    /// Also drop, on this host alone, the 4th new connection within 60 s from one address
    /// (before the cluster decides). Off by default.
    #[arg(long)]
    pub local_rate: bool,
    /// Zone of log stamps that carry none (RFC 3164 syslog): `local` (this host's zone, the
    /// default), `UTC`, an offset like `+02:00`, or a name like `Europe/Berlin`.
    #[arg(long, default_value = "local", value_parser = |s: &str| s.parse::<LogTimezone>())]
    pub log_timezone: LogTimezone,
    /// Serve metrics for Prometheus at http://HOST:PORT/metrics (off unless given).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How often the connection attempts the drop rules dropped are reported to the cluster
    /// (`mxrepctl report`), e.g. 30s or 1m.
    #[arg(long, default_value = "30s", value_parser = parse_every)]
    pub drop_report_every: std::time::Duration,
    /// Log lines as `text` (default) or `json` (one object per line).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: mxrep_common::telemetry::LogFormat,
    #[command(flatten)]
    pub tls: mxrep_common::tls::TlsArgs,
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub cluster: Vec<String>,
    pub node_name: String,
    pub postfix_logs: Vec<PathBuf>,
    pub container_logs: Vec<String>,
    /// The journal to follow, if any.
    pub journal: Option<crate::sources::journal::JournalConfig>,
    pub policy_listen: Option<std::net::SocketAddr>,
    pub syslog_listen: Option<std::net::SocketAddr>,
    pub state_dir: PathBuf,
    pub nft_table: String,
    pub ports: Vec<u16>,
    pub dry_run: bool,
    pub local_rate: bool,
    pub log_timezone: LogTimezone,
    /// mTLS to the nodes (None: plaintext).
    pub tls: Option<mxrep_common::tls::TlsFiles>,
    /// Where `/metrics` is served (None: not served).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How often dropped connection attempts are reported.
    pub drop_report_every: std::time::Duration,
    pub log_format: mxrep_common::telemetry::LogFormat,
}

/// A report interval: a duration between 100 ms and one hour.
fn parse_every(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("'{s}' is not a duration (e.g. 30s, 1m)"))?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("'{s}': between 100ms and 1h"));
    }
    Ok(d)
}

impl RunArgs {
    pub fn resolve(self) -> anyhow::Result<AgentConfig> {
        let cluster: Vec<String> = self
            .cluster
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if cluster.is_empty() {
            bail!("--cluster needs at least one HOST:PORT");
        }
        for c in &cluster {
            mxrep_common::addr::host_port(c).map_err(|e| anyhow::anyhow!("--cluster: {e}"))?;
        }
        let node_name = match self.node_name {
            Some(n) if !n.trim().is_empty() => n.trim().to_string(),
            Some(_) => bail!("--node-name is empty"),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
                .context("cannot read the host name; give --node-name")?,
        };
        let t = &self.nft_table;
        if t.is_empty()
            || t.len() > 64
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("--nft-table '{t}' must be 1-64 letters, digits, '_' or '-'");
        }
        if self.ports.is_empty() || self.ports.contains(&0) {
            bail!("--ports needs one or more ports between 1 and 65535");
        }
        let tls = self.tls.files_or(Default::default())?;
        for m in &self.journal_match {
            let ok = m.split_once('=').is_some_and(|(f, _)| {
                !f.is_empty()
                    && f.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            });
            if !ok {
                bail!("--journal-match '{m}' must be FIELD=VALUE with an upper-case field name, e.g. SYSLOG_IDENTIFIER=postfix/smtpd");
            }
        }
        let journal = (self.journal
            || self.journal_dir.is_some()
            || !self.journal_match.is_empty())
        .then(|| crate::sources::journal::JournalConfig {
            dir: self.journal_dir.clone(),
            matches: if self.journal_match.is_empty() {
                crate::sources::journal::DEFAULT_MATCHES
                    .map(String::from)
                    .to_vec()
            } else {
                self.journal_match.clone()
            },
            host: node_name.clone(),
        });
        Ok(AgentConfig {
            tls,
            cluster,
            node_name,
            postfix_logs: self.postfix_log,
            container_logs: self.container_log,
            journal,
            policy_listen: self.policy_listen,
            syslog_listen: self.syslog_listen,
            state_dir: self.state_dir,
            nft_table: self.nft_table,
            ports: self.ports,
            dry_run: self.dry_run,
            local_rate: self.local_rate,
            log_timezone: self.log_timezone,
            metrics_listen: self.metrics_listen,
            drop_report_every: self.drop_report_every,
            log_format: self.log_format,
        })
    }
}
