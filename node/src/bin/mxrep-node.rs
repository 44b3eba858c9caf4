//! `mxrep-node`: runs one member of the mxrep cluster. See `mxrep-node --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use mxrep_common::cli::{exit_on_clap_error, exit_on_error};
use mxrep_common::telemetry::{Options, Telemetry};
use mxrep_node::config::{NodeArgs, NodeConfig};

fn main() {
    let args = NodeArgs::try_parse().unwrap_or_else(|e| exit_on_clap_error(e));
    let cfg = NodeConfig::resolve(args).unwrap_or_else(|e| exit_on_error(e));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| exit_on_error(e));
    let opts = Options {
        service: "mxrep-node",
        default_filter: "info,openraft=warn,sled=warn",
        log_format: cfg.log_format,
        prometheus: cfg.metrics_listen.is_some(),
    };
    let result = runtime.block_on(Telemetry::around(opts, |registry| async move {
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        mxrep_node::server::run_until_signal(cfg, registry).await
    }));
    if let Err(e) = result {
        exit_on_error(e);
    }
}
