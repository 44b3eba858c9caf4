//! Log lines: the filter from `MXREP_LOG` (default given by the binary), on stderr, as text
//! (colours only on a terminal) or as JSON lines for a log collector.

use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (time, level, target, fields).
    Json,
}

/// The stderr layer in `format`, filtered by `MXREP_LOG` or else `default_filter`.
pub fn layer(
    format: LogFormat,
    default_filter: &str,
) -> Box<dyn Layer<Registry> + Send + Sync + 'static> {
    let filter =
        EnvFilter::try_from_env("MXREP_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
    }
}
