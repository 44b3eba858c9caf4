//! Where events come from on an MX host: mail logs — Postfix's or Exim's, as files, the systemd
//! journal, Kubernetes container logs, or syslog forwarded to the agent — and Postfix's policy
//! requests.
//!
//! # Layout
//! - [`postfix`]: the line parser (smtpd, postscreen, Exim), pure;
//! - [`connections`]: one verdict per SMTP connection from its lines;
//! - [`log_follower`], [`log_pump`]: files followed across rotation and restarts, lines to verdicts;
//! - [`tail_scout`], [`ahead_ledger`]: decisive verdicts from the newest lines of a log far behind,
//!   sent ahead, and what keeps them from being counted twice;
//! - [`container_logs`], [`cri`]: pods' log files found by glob, the CRI format;
//! - [`journal`]: the systemd journal through `journalctl`;
//! - [`syslog`]: the UDP/TCP syslog receiver;
//! - [`timezone`], [`stamp_skew`]: the zone of zone-less stamps, and stamps that disagree;
//! - [`policy_request`], [`policy_server`], [`greylist`]: reading policy requests, Postfix's
//!   policy service and its greylisting.

pub mod ahead_ledger;
pub mod connections;
pub mod container_logs;
pub mod cri;
pub mod greylist;
pub mod journal;
pub mod log_follower;
pub mod log_pump;
pub mod policy_request;
pub mod policy_server;
pub mod postfix;
pub mod stamp_skew;
pub mod syslog;
pub mod tail_scout;
pub mod timezone;

#[cfg(test)]
mod postfix_shapes_tests;
#[cfg(test)]
mod postfix_tests;
