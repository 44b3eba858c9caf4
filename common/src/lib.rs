//! mxrep-common: the small pieces of process plumbing that `mxrep-node`, `mxrepctl` and
//! `mxrep-agent` share, each in one file and each tested on its own.
//!
//! # Layout
//! - [`shutdown`]: SIGTERM/SIGINT as a future, and a `Shutdown` handle that many tasks can await;
//! - [`cli`]: how a binary reports a bad flag or a fatal error (one line on stderr, an exit code);
//! - [`telemetry`]: log lines (`MXREP_LOG`, text or JSON), OpenTelemetry metrics served at
//!   `/metrics` and pushed over OTLP, traces over OTLP, and the `traceparent` between processes;
//! - [`clock`]: wall-clock unix milliseconds, the one place the edges read the clock;
//! - [`backoff`]: exponential backoff with jitter, and the reconnect loop that rotates over nodes;
//! - [`endpoint`]: a tonic `Endpoint` to a node with the keepalives every stream needs;
//! - [`addr`]: `HOST:PORT` checks with a message that names the problem;
//! - [`lock`]: mutex and rwlock access that survives a panicked holder;
//! - [`tls`]: mutual TLS: the three files, a node's server config, the process's client identity;
//! - [`triplet`]: the greylisting triplet key (sender normalisation, a stable 64-bit hash), the
//!   same on the agent that answers and on the node that remembers.
#![forbid(unsafe_code)]

pub mod addr;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod endpoint;
pub mod lock;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod triplet;
