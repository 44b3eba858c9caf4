//! Where events come from on an MX host: Postfix's log (a file, or syslog forwarded to the
//! agent) and Postfix's policy requests.

pub mod connections;
pub mod container_logs;
pub mod cri;
pub mod greylist;
pub mod journal;
pub mod log_follower;
pub mod log_pump;
pub mod policy_server;
pub mod postfix;
pub mod stamp_skew;
pub mod syslog;
pub mod timezone;

#[cfg(test)]
mod postfix_shapes_tests;
#[cfg(test)]
mod postfix_tests;
