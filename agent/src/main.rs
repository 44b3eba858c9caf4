//! `mxrep-agent`: runs on every MX host. See `mxrep-agent --help`; `mxrep-agent check-log FILE`
//! prints what it reads from a Postfix log.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use mxrep_agent::check_log;
use mxrep_agent::config::RunArgs;
use mxrep_agent::sources::timezone::LogTimezone;
use mxrep_common::telemetry::{Options, Telemetry};
use std::io::BufReader;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "mxrep-agent", version, about = "mxrep agent for an MX host")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the events read from a Postfix log, one per line, and a summary.
    CheckLog {
        /// The Postfix log to read (maillog_file, syslog, RFC 5424, or a Kubernetes container log).
        file: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Zone of stamps that carry none: local (default), UTC, +02:00, Europe/Berlin.
        #[arg(long, default_value = "local", value_parser = |s: &str| s.parse::<LogTimezone>())]
        log_timezone: LogTimezone,
    },
}

fn fail(msg: impl std::fmt::Display) -> ! {
    mxrep_common::cli::exit_on_error(anyhow::anyhow!("{msg}"))
}

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| mxrep_common::cli::exit_on_clap_error(e));
    match cli.command {
        Some(Cmd::CheckLog {
            file,
            json,
            log_timezone,
        }) => {
            let f = std::fs::File::open(&file)
                .unwrap_or_else(|e| fail(format!("cannot open {}: {e}", file.display())));
            let mut out = std::io::stdout().lock();
            let result = check_log::check(BufReader::new(f), &mut out, json, &log_timezone)
                .and_then(|summary| check_log::print_summary(&summary, &mut out, json));
            match result {
                Ok(()) => {}
                // The reader went away (`| head`): nothing more to say.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => fail(format!("reading {}: {e}", file.display())),
            }
        }
        None => {
            let cfg = cli.run.resolve().unwrap_or_else(|e| fail(format!("{e:#}")));
            let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
            let opts = Options {
                service: "mxrep-agent",
                default_filter: "info",
                log_format: cfg.log_format,
                prometheus: cfg.metrics_listen.is_some(),
            };
            let result = rt.block_on(Telemetry::around(opts, |registry| {
                mxrep_agent::run::run(cfg, registry)
            }));
            if let Err(e) = result {
                fail(format!("{e:#}"));
            }
        }
    }
}
