//! Configuration of `mxrep-node`: command-line flags, the TOML file (same keys), and `--dev`.
//!
//! Precedence: a flag beats the file, the file beats `--dev`'s embedded defaults. Everything is
//! validated here, before any socket or file is opened, with errors that name the bad value.

use anyhow::{bail, Context};
use clap::Parser;
use mxrep_common::telemetry::LogFormat;
use mxrep_common::tls::TlsFiles;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Command-line flags of `mxrep-node`.
#[derive(Debug, Parser, Default)]
#[command(
    name = "mxrep-node",
    version,
    about = "A member of the mxrep reputation cluster"
)]
pub struct NodeArgs {
    /// This node's id: a positive integer, unique in the cluster.
    #[arg(long)]
    pub id: Option<u64>,
    /// Address of the API (agents, mxrepctl, SOC tooling), e.g. 127.0.0.1:7400.
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Address of the peer service (Raft between nodes), e.g. 127.0.0.1:7401.
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
    /// Folder for the Raft log, votes and snapshots (sled).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Initial members as ID=PEER_ADDR,…; the lowest id initialises the cluster once all answer.
    /// Without it, a node waits to be added with `mxrepctl cluster add`.
    #[arg(long, value_parser = parse_peers)]
    pub peers: Option<Peers>,
    /// TOML file with the same keys as these flags (flags win), plus a [raft] table.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// One node on embedded defaults: data in ./mxrep-data, API 127.0.0.1:7400, peer 127.0.0.1:7401.
    #[arg(long)]
    pub dev: bool,
    /// DNS server for DNSBL/DNSWL lookups, HOST:PORT (default: /etc/resolv.conf). Spamhaus
    /// refuses public resolvers: point this at your own.
    #[arg(long)]
    pub dns_resolver: Option<SocketAddr>,
    /// Serve the ban list as a DNSBL zone on this address (UDP and TCP), e.g. 127.0.0.1:5300.
    #[arg(long)]
    pub dnsbl_listen: Option<SocketAddr>,
    /// The DNSBL zone's name (default: bl.mxrep.invalid).
    #[arg(long)]
    pub dnsbl_zone: Option<String>,
    #[command(flatten)]
    pub tls: mxrep_common::tls::TlsArgs,
    /// Serve plaintext on a non-loopback address anyway (anyone who reaches the port can ban).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Serve metrics for Prometheus at http://HOST:PORT/metrics (off unless given).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve gRPC health checking alone, in plaintext, for probes (off unless given): service
    /// "" while running, "readiness" while a leader is known.
    #[arg(long)]
    pub health_listen: Option<SocketAddr>,
    /// Log lines as `text` (default) or `json` (one object per line).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(flatten)]
    pub membership: MembershipArgs,
}

/// Initial members: id → peer address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers(pub BTreeMap<u64, String>);

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> Result<Peers, String> {
    let mut map = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, addr)) = entry.split_once('=') else {
            return Err(format!(
                "malformed peer entry '{entry}': expected ID=HOST:PORT"
            ));
        };
        let id: u64 = match id.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "malformed peer entry '{entry}': the id must be a positive integer"
                ))
            }
        };
        let addr = addr.trim();
        mxrep_common::addr::host_port(addr)
            .map_err(|e| format!("malformed peer entry '{entry}': {e}"))?;
        if map.insert(id, addr.to_string()).is_some() {
            return Err(format!("peer id {id} is listed twice"));
        }
    }
    if map.is_empty() {
        return Err("no peers given: expected ID=HOST:PORT,…".into());
    }
    Ok(Peers(map))
}

/// Raft timing and log compaction; the `[raft]` table of the TOML file.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind a snapshot (for followers that lag a little).
    pub max_in_snapshot_log_to_keep: u64,
    /// Purge the log only once at least this many entries can go.
    pub purge_batch_size: u64,
    /// Most log entries in one AppendEntries. openraft 0.9 gives each AppendEntries `heartbeat_ms`
    /// to be answered, and an ingest entry holds up to 10,000 addresses: besides this count, what
    /// a follower is sent at once is held to the bytes it has been seen to take in within the
    /// heartbeat (`raft/append_budget.rs`), so a follower far behind is never sent more than it
    /// can answer in time (openraft's 300 entries, tens of megabytes, timed out on every try).
    pub max_entries_per_append: u64,
    /// How often the leader proposes a tick entry that carries time forward.
    pub tick_ms: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 250,
            election_timeout_max_ms: 500,
            snapshot_logs_since_last: 10_000,
            max_in_snapshot_log_to_keep: 1_000,
            purge_batch_size: 256,
            max_entries_per_append: 64,
            tick_ms: 1_000,
        }
    }
}

impl RaftTuning {
    pub fn to_openraft(&self) -> anyhow::Result<openraft::Config> {
        let c = openraft::Config {
            cluster_name: "mxrep".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: 5_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            purge_batch_size: self.purge_batch_size.max(1),
            max_payload_entries: self.max_entries_per_append.max(1),
            ..Default::default()
        };
        c.validate().context("invalid [raft] settings")
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
    }
}

/// The TOML file: the flags' keys with underscores, plus `[raft]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    api_listen: Option<SocketAddr>,
    peer_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    /// `"1=a:1,2=b:2"` or a table `{ 1 = "a:1", 2 = "b:2" }`.
    peers: Option<toml::Value>,
    dns_resolver: Option<SocketAddr>,
    dnsbl_listen: Option<SocketAddr>,
    dnsbl_zone: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    insecure_plaintext: bool,
    metrics_listen: Option<SocketAddr>,
    health_listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    join: Option<String>,
    #[serde(default)]
    id_from_hostname: bool,
    advertise_peer: Option<String>,
    advertise_api: Option<String>,
    cluster_size: Option<u64>,
    #[serde(default)]
    raft: RaftTuning,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    pub api_listen: SocketAddr,
    pub peer_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Initial members; empty when the node waits to be added.
    pub peers: BTreeMap<u64, String>,
    pub raft: RaftTuning,
    /// DNS server for list lookups (None: the system's).
    pub dns_resolver: Option<SocketAddr>,
    /// Where the ban list is served as a DNSBL zone, and the zone's name.
    pub dnsbl: Option<(SocketAddr, String)>,
    /// Mutual TLS on both ports (None: plaintext, loopback only unless `insecure_plaintext`).
    pub tls: Option<TlsFiles>,
    /// Where `/metrics` is served for Prometheus (None: not served).
    pub metrics_listen: Option<SocketAddr>,
    /// Where plaintext gRPC health is served for probes (None: not served).
    pub health_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// Any member's API address to ask for membership at start (`--join`).
    pub join: Option<String>,
    /// HOST:PORT peers reach this node at (its entry in --peers, --advertise-peer, or the listener).
    pub advertise_peer: String,
    /// HOST:PORT clients reach the API at.
    pub advertise_api: String,
    /// Voters the deployment runs; members with higher ids are removed once gone.
    pub cluster_size: Option<u64>,
    /// Warnings found while resolving, logged once logging is set up.
    pub warnings: Vec<String>,
}

impl NodeConfig {
    /// Merges flags, file and `--dev` defaults, and validates the result.
    pub fn resolve(args: NodeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let file_peers = match file.peers {
            None => None,
            Some(v) => Some(peers_from_toml(v).context("in the config file, key 'peers'")?),
        };
        let dev = args.dev;
        let m = args.membership;
        let from_hostname = match m.id_from_hostname || file.id_from_hostname {
            true => Some(id_from_hostname(&host_name()?)?),
            false => None,
        };
        let id = args.id.or(from_hostname).or(file.id).or(dev.then_some(1));
        let Some(id) = id else {
            bail!("--id is required (or use --dev for a single local node)");
        };
        if id == 0 {
            bail!("--id must be a positive integer");
        }
        let api_listen = args
            .api_listen
            .or(file.api_listen)
            .or(dev.then(|| SocketAddr::from(([127, 0, 0, 1], 7400))));
        let peer_listen = args
            .peer_listen
            .or(file.peer_listen)
            .or(dev.then(|| SocketAddr::from(([127, 0, 0, 1], 7401))));
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .or(dev.then(|| PathBuf::from("mxrep-data")));
        let (Some(api_listen), Some(peer_listen), Some(data_dir)) =
            (api_listen, peer_listen, data_dir)
        else {
            bail!("--api-listen, --peer-listen and --data-dir are required (or use --dev)");
        };
        let zone = args
            .dnsbl_zone
            .or(file.dnsbl_zone)
            .unwrap_or_else(|| "bl.mxrep.invalid".into());
        let zone_ok = zone.trim_end_matches('.').split('.').count() >= 2
            && zone
                .trim_end_matches('.')
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !zone_ok {
            bail!("--dnsbl-zone '{zone}' is not a DNS zone name (e.g. bl.example.org)");
        }
        let mut peers = args.peers.map(|p| p.0).or(file_peers).unwrap_or_default();
        if dev && peers.is_empty() {
            peers.insert(id, peer_listen.to_string());
        }
        let join = m
            .join
            .or(file.join)
            .map(|j| checked("--join", &j))
            .transpose()?;
        if !peers.is_empty() && !peers.contains_key(&id) && join.is_none() {
            bail!(
                "--peers does not list this node's own id {id} (give --join to be added to them)"
            );
        }
        let advertise_peer = match m.advertise_peer.or(file.advertise_peer) {
            Some(a) => checked("--advertise-peer", &a)?,
            None => peers
                .get(&id)
                .cloned()
                .unwrap_or_else(|| peer_listen.to_string()),
        };
        let advertise_api = match m.advertise_api.or(file.advertise_api) {
            Some(a) => checked("--advertise-api", &a)?,
            None => api_listen.to_string(),
        };
        let cluster_size = m.cluster_size.or(file.cluster_size);
        if cluster_size == Some(0) {
            bail!("cluster_size must be at least 1");
        }
        let tls = args.tls.files_or(mxrep_common::tls::TlsArgs {
            tls_ca: file.tls_ca,
            tls_cert: file.tls_cert,
            tls_key: file.tls_key,
        })?;
        let open = [api_listen, peer_listen]
            .into_iter()
            .find(|a| !a.ip().is_loopback())
            .filter(|_| tls.is_none());
        let mut warnings = vec![];
        match open {
            Some(a) if !(args.insecure_plaintext || file.insecure_plaintext) => bail!(
                "refusing to serve plaintext on {a}: anyone who reaches it could ban and unban; give --tls-ca, --tls-cert and --tls-key (see `mxrepctl certs init`), or --insecure-plaintext"
            ),
            Some(a) => warnings.push(format!(
                "serving PLAINTEXT on {a} (--insecure-plaintext): anyone who reaches the port can ban, unban and join Raft"
            )),
            None => {}
        }
        Ok(Self {
            tls,
            id,
            api_listen,
            peer_listen,
            data_dir,
            peers,
            raft: file.raft,
            dns_resolver: args.dns_resolver.or(file.dns_resolver),
            dnsbl: args.dnsbl_listen.or(file.dnsbl_listen).map(|a| (a, zone)),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            health_listen: args.health_listen.or(file.health_listen),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            join,
            advertise_peer,
            advertise_api,
            cluster_size,
            warnings,
        })
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_string();
        anyhow::anyhow!("config file {}: {}", path.display(), msg.trim())
    })
}

fn peers_from_toml(v: toml::Value) -> anyhow::Result<BTreeMap<u64, String>> {
    match v {
        toml::Value::String(s) => parse_peers(&s).map(|p| p.0).map_err(anyhow::Error::msg),
        toml::Value::Table(t) => {
            let spec: Vec<String> = t
                .into_iter()
                .map(|(k, v)| match v {
                    toml::Value::String(a) => Ok(format!("{k}={a}")),
                    other => bail!("peer {k}: expected an address string, got {other}"),
                })
                .collect::<anyhow::Result<_>>()?;
            parse_peers(&spec.join(","))
                .map(|p| p.0)
                .map_err(anyhow::Error::msg)
        }
        other => bail!("expected \"ID=HOST:PORT,…\" or a table, got {other}"),
    }
}

#[path = "config_membership.rs"]
mod membership;
use membership::{checked, host_name};
pub use membership::{id_from_hostname, MembershipArgs};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
