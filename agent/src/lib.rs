//! mxrep-agent: runs on every MX host. Sources (Postfix log, policy service) turn what Postfix
//! does into events; the uplink streams them to the cluster; the enforcer keeps the host's
//! nftables sets equal to the cluster's ban list.
//!
//! - [`sources`]: Postfix log parser and follower, policy-service server;
//! - [`check_log`]: the `check-log` subcommand, the operator's way to test a log format.

pub mod check_log;
pub mod config;
pub mod enforce;
pub mod run;
pub mod sources;
pub mod state_dir;
pub mod uplink;
