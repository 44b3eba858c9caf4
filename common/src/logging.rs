//! Tracing set up alike in every binary: the filter from `MXREP_LOG` (default `info`), lines on
//! stderr, colours only on a terminal.

/// Installs the process-wide subscriber with `default` as the filter unless `MXREP_LOG` is set;
/// a second call is a no-op.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MXREP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
