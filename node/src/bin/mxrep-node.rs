//! `mxrep-node`: runs one member of the mxrep cluster. See `mxrep-node --help`.

use clap::Parser;
use mxrep_node::cli_error::{exit_on_clap_error, exit_on_error};
use mxrep_node::config::{NodeArgs, NodeConfig};

fn main() {
    let args = NodeArgs::try_parse().unwrap_or_else(|e| exit_on_clap_error(e));
    let cfg = NodeConfig::resolve(args).unwrap_or_else(|e| exit_on_error(e));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MXREP_LOG")
                .unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| exit_on_error(e.into()));
    if let Err(e) = runtime.block_on(mxrep_node::server::run(cfg)) {
        exit_on_error(e);
    }
}
