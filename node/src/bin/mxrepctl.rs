//! `mxrepctl`: query and administer an mxrep cluster. See `mxrepctl --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use mxrep_common::cli::{exit_on_clap_error, exit_on_error};
use mxrep_node::ctl::Cli;

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| exit_on_clap_error(e));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_on_error(e));
    if let Err(e) = runtime.block_on(mxrep_node::ctl::run(cli)) {
        exit_on_error(e);
    }
}
