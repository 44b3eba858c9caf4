//! `mxrepctl`: the operator's client for the admin API. One file per command; this one parses the
//! command line, connects, and dispatches. Every command prints words for people, or JSON with
//! `--json`; every failure is one line on stderr and a non-zero exit.

mod allow;
mod audit;
mod ban;
mod bans;
mod certs;
mod cluster;
pub mod error;
mod import;
mod ip;
mod observe_only;
mod policy;
mod render;
mod replay;
mod report;
mod status;
mod unban;

use clap::{Parser, Subcommand};
use mxrep_proto::v1::admin_client::AdminClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Command line of `mxrepctl`.
#[derive(Debug, Parser)]
#[command(
    name = "mxrepctl",
    version,
    about = "Query and administer an mxrep cluster"
)]
pub struct Cli {
    /// API address of any cluster node.
    #[arg(long, global = true, default_value = "127.0.0.1:7400")]
    pub endpoint: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub tls: mxrep_common::tls::TlsArgs,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Members, leader, term and what this node has applied.
    Status,
    /// The ban list.
    Bans {
        #[command(subcommand)]
        command: bans::BansCommand,
    },
    /// Ban an address or prefix on every MX host.
    Ban(ban::BanArgs),
    /// Lift the ban of an address or prefix.
    Unban(unban::UnbanArgs),
    /// What the cluster knows about an address.
    Ip {
        #[command(subcommand)]
        command: ip::IpCommand,
    },
    /// Add or remove cluster members.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// The replicated policy document.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Prefixes never banned automatically.
    Allow {
        #[command(subcommand)]
        command: allow::AllowCommand,
    },
    /// The safety switch that stops enforcing new automatic bans.
    ObserveOnly {
        #[command(subcommand)]
        command: observe_only::ObserveOnlyCommand,
    },
    /// What mxrep would have decided over Postfix logs, offline, with a policy.
    Replay(replay::ReplayArgs),
    /// Every administrative write: who, when, what, and what it replaced.
    Audit(audit::AuditArgs),
    /// What protection did: attempts dropped per MX host, bans made, greylisting, DNS list hits,
    /// the bans that dropped most, bans lifted by hand.
    Report(report::ReportArgs),
    /// Certificates for mTLS, offline: `certs init DIR`.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
}

/// Output settings shared by the commands.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn json(&self, v: serde_json::Value) {
        println!("{v}");
    }
}

/// Connects to the node at `endpoint`, failing fast when nothing answers.
pub async fn connect(endpoint: &str) -> anyhow::Result<AdminClient<Channel>> {
    let invalid = |_| anyhow::anyhow!("'{endpoint}' is not a valid endpoint (expected HOST:PORT)");
    let ep = if endpoint.contains("://") {
        Endpoint::from_shared(endpoint.to_string()).map_err(invalid)?
    } else {
        mxrep_common::endpoint::endpoint(endpoint).map_err(invalid)?
    }
    .connect_timeout(Duration::from_secs(3))
    .timeout(Duration::from_secs(30));
    let ch = ep.connect().await.map_err(|e| {
        anyhow::anyhow!("cannot reach mxrep node at {endpoint}: {}", root_cause(&e))
    })?;
    Ok(AdminClient::new(ch))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Runs the parsed command; a failure carries its code and exit status (see [`error`]).
pub async fn run(cli: Cli) -> Result<(), error::CtlError> {
    let ep = cli.endpoint.clone();
    run_command(cli)
        .await
        .map_err(|e| match e.downcast_ref::<tonic::Status>() {
            Some(s) => error::CtlError::from_status(s, &ep),
            None if e.to_string().starts_with("cannot reach") => {
                error::CtlError::unavailable(e.to_string())
            }
            None => error::CtlError::other(&e),
        })
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    let out = Output { json: cli.json };
    let cli = match cli.command {
        CtlCommand::Replay(a) => return replay::run(&out, a),
        CtlCommand::Certs { command } => return certs::run(&out, command),
        command => Cli { command, ..cli },
    };
    let tls = cli.tls.clone().files_or(Default::default())?;
    mxrep_common::tls::use_for_clients(tls);
    let mut client = connect(&cli.endpoint).await?;
    let res = match cli.command {
        CtlCommand::Status => status::run(&mut client, &out).await,
        CtlCommand::Audit(a) => audit::run(&mut client, &out, a).await,
        CtlCommand::Report(a) => report::run(&mut client, &out, a).await,
        CtlCommand::Bans { command } => bans::run(&mut client, &out, command).await,
        CtlCommand::Ban(a) => ban::run(&mut client, &out, a).await,
        CtlCommand::Unban(a) => unban::run(&mut client, &out, a).await,
        CtlCommand::Ip { command } => ip::run(&mut client, &out, command).await,
        CtlCommand::Cluster { command } => cluster::run(&mut client, &out, command).await,
        CtlCommand::Policy { command } => policy::run(&mut client, &out, command).await,
        CtlCommand::Allow { command } => allow::run(&mut client, &out, command).await,
        CtlCommand::ObserveOnly { command } => observe_only::run(&mut client, &out, command).await,
        CtlCommand::Replay(_) | CtlCommand::Certs { .. } => {
            unreachable!("replay and certs run offline, above")
        }
    };
    res
}
