//! `mxrep-node`: runs one member of the mxrep cluster. See `mxrep-node --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use mxrep_common::cli::{exit_on_clap_error, exit_on_error};
use mxrep_node::config::{NodeArgs, NodeConfig};

fn main() {
    let args = NodeArgs::try_parse().unwrap_or_else(|e| exit_on_clap_error(e));
    mxrep_common::logging::init("info,openraft=warn,sled=warn");
    let cfg = NodeConfig::resolve(args).unwrap_or_else(|e| exit_on_error(e));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| exit_on_error(e));
    if let Err(e) = runtime.block_on(mxrep_node::server::run_until_signal(cfg)) {
        exit_on_error(e);
    }
}
