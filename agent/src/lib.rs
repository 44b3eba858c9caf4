//! mxrep-agent: runs on every MX host. Sources (mail logs, policy service) turn what Postfix or
//! Exim does into events; the uplink streams them to the cluster; the enforcer keeps the host's
//! nftables sets equal to the cluster's ban list.
//!
//! # Layout
//! - [`sources`]: where events come from: the mail log parser (Postfix's smtpd and postscreen,
//!   Exim) and file follower, the systemd journal, container logs (CRI) found by glob, the syslog
//!   receiver, the connection tracker that gives each SMTP connection one verdict, log time
//!   zones, the policy service and its greylisting (leases, the followed triplet keys, reports);
//! - [`uplink`]: verdicts to the cluster in acknowledged batches, exactly once across failover;
//! - [`enforce`]: the ban list into nftables: the stream, its pure translation, the kernel
//!   (nft and netlink), the table guard, the agent's ban view;
//! - [`metrics`]: what the agent counts and measures, for Prometheus and OTLP;
//! - [`state_dir`]: log positions and the ban-list version kept across restarts;
//! - [`config`]: the command line, validated; [`run`]: the running agent wired together;
//! - [`check_log`]: the `check-log` subcommand, the operator's way to test a log format.
//!
//! Unsafe code is denied everywhere but in `enforce::netlink`, which owns its netlink socket.
#![deny(unsafe_code)]

pub mod check_log;
pub mod config;
pub mod enforce;
pub mod metrics;
pub mod run;
pub mod sources;
pub mod state_dir;
pub mod uplink;
