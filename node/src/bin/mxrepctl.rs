//! `mxrepctl`: query and administer an mxrep cluster. See `mxrepctl --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use mxrep_common::cli::{clap_error_line, exit_on_clap_error, exit_on_error};
use mxrep_node::ctl::error::CtlError;
use mxrep_node::ctl::Cli;

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let cli = Cli::try_parse().unwrap_or_else(|e| match clap_error_line(&e) {
        Some(line) if json => {
            CtlError::usage(line.trim_start_matches("error: ").to_string()).exit(true)
        }
        _ => exit_on_clap_error(e),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_on_error(e));
    if let Err(e) = runtime.block_on(mxrep_node::ctl::run(cli)) {
        e.exit(json);
    }
}
