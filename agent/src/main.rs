//! `mxrep-agent`: runs on every MX host. It will read Postfix's log and policy requests, stream
//! events to the cluster, and enforce the cluster's ban list with nftables sets.
//!
//! This is the placeholder binary of the workspace's first milestone: it accepts the stable flags
//! of `DESIGN.md` and says plainly that enforcement is not built yet, rather than pretending to run.

use clap::Parser;

/// Command line of `mxrep-agent` (flags fixed by DESIGN.md).
#[derive(Debug, Parser)]
#[command(name = "mxrep-agent", version, about = "mxrep agent for an MX host")]
struct Args {
    /// API addresses of cluster nodes.
    #[arg(long, default_value = "127.0.0.1:7400", value_delimiter = ',')]
    cluster: Vec<String>,
    /// This MX host's name in events (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Postfix log file to follow (repeatable).
    #[arg(long)]
    postfix_log: Vec<std::path::PathBuf>,
    /// Address for Postfix's check_policy_service (off unless given).
    #[arg(long)]
    policy_listen: Option<String>,
    /// Where log positions and the ban-list version are remembered.
    #[arg(long, default_value = "/var/lib/mxrep-agent")]
    state_dir: std::path::PathBuf,
    /// nftables table (inet family) the agent owns.
    #[arg(long, default_value = "mxrep")]
    nft_table: String,
    /// Ports to protect.
    #[arg(long, default_value = "25", value_delimiter = ',')]
    ports: Vec<u16>,
    /// Do everything but write to nftables.
    #[arg(long)]
    dry_run: bool,
}

fn main() {
    let _args = Args::parse();
    eprintln!("error: mxrep-agent is not implemented yet in this build (event sources, uplink and nftables enforcement arrive with the agent milestone)");
    std::process::exit(1);
}
