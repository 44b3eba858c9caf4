//! `mxrepctl`: query and administer an mxrep cluster. See `mxrepctl --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use mxrep_common::cli::{clap_error_line, exit_on_clap_error, exit_on_error};
use mxrep_common::telemetry::{otlp, Options, Telemetry};
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
    // Only under OTEL_* (a trace endpoint) does a command start a trace; the OTLP exporter
    // then needs a runtime with a worker thread beside the one that waits for it at exit.
    let traced = otlp::requested(otlp::Signal::Traces, |k| std::env::var(k).ok());
    let runtime = if traced {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap_or_else(|e| exit_on_error(e));
    let result = runtime.block_on(async {
        let telemetry = traced
            .then(|| {
                Telemetry::init(Options {
                    service: "mxrepctl",
                    default_filter: "warn",
                    log_format: Default::default(),
                    prometheus: false,
                })
            })
            .and_then(Result::ok);
        let result = mxrep_node::ctl::run(cli).await;
        if let Some(t) = telemetry {
            t.shutdown();
        }
        result
    });
    if let Err(e) = result {
        e.exit(json);
    }
}
