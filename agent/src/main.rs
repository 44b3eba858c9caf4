//! `mxrep-agent`: runs on every MX host. See `mxrep-agent --help`; `mxrep-agent check-log FILE`
//! prints what it reads from a Postfix log.

use clap::{Parser, Subcommand};
use mxrep_agent::check_log;
use mxrep_agent::config::RunArgs;
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
        file: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            e.exit()
        }
        let text = e.to_string();
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid arguments");
        eprintln!("error: {}", line.trim_start_matches("error: "));
        std::process::exit(2);
    });
    match cli.command {
        Some(Cmd::CheckLog { file, json }) => {
            let f = std::fs::File::open(&file)
                .unwrap_or_else(|e| fail(format!("cannot open {}: {e}", file.display())));
            let mut out = std::io::stdout().lock();
            let result = check_log::check(BufReader::new(f), &mut out, json)
                .and_then(|summary| check_log::print_summary(&summary, &mut out, json));
            match result {
                Ok(()) => {}
                // The reader went away (`| head`): nothing more to say.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => fail(format!("reading {}: {e}", file.display())),
            }
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("MXREP_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let cfg = cli.run.resolve().unwrap_or_else(|e| fail(format!("{e:#}")));
            let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
            if let Err(e) = rt.block_on(mxrep_agent::run::run(cfg)) {
                fail(format!("{e:#}"));
            }
        }
    }
}
