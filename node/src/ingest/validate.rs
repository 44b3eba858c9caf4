//! Checks one event batch from an agent. Every bad event is refused with its position and a
//! reason, and never applied; the good events of the same batch go through. A batch that is bad as
//! a whole (too large, no MX host name) is refused entirely.

use mxrep_proto::v1 as pb;
use pb::event::Kind;
use std::net::IpAddr;

/// Bounds on what a batch may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_events: usize,
    /// Events older than this (relative to the node's clock) are refused.
    pub max_age_ms: i64,
    /// Events further in the future than this are refused (clock skew).
    pub max_ahead_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_age_ms: 24 * 3600 * 1000,
            max_ahead_ms: 5 * 60 * 1000,
        }
    }
}

/// What one valid event adds to the counters of its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    Connect,
    /// A connection ended without a successful MAIL command.
    NoMail,
    /// A disconnect that needs no counting (the session did send mail).
    Nothing,
    Reject,
    Greylisted,
    AuthFailure,
    Accepted,
    ProtocolError,
}

/// One event that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidEvent {
    pub addr: IpAddr,
    /// Event time, whole seconds since the epoch.
    pub at: u32,
    pub delta: Delta,
}

fn delta_of(kind: &Kind) -> Delta {
    match kind {
        Kind::Connect(_) => Delta::Connect,
        Kind::Disconnect(d) => {
            let mailed = d
                .commands
                .iter()
                .any(|c| c.command.eq_ignore_ascii_case("mail") && c.ok > 0);
            if mailed {
                Delta::Nothing
            } else {
                Delta::NoMail
            }
        }
        Kind::Rejected(r) if r.class == pb::RejectClass::Greylisted as i32 => Delta::Greylisted,
        Kind::Rejected(_) => Delta::Reject,
        Kind::AuthFailure(_) => Delta::AuthFailure,
        Kind::Accepted(_) => Delta::Accepted,
        Kind::ProtocolError(_) => Delta::ProtocolError,
        // Recorded for greylisting and DNSBL scoring to come; the log counts the connection.
        Kind::PolicyRequest(_) => Delta::Nothing,
    }
}

/// Splits a batch into valid events and refusals; `Err` refuses the whole batch.
pub fn validate_batch(
    batch: &pb::EventBatch,
    now_ms: i64,
    limits: &Limits,
) -> Result<(Vec<ValidEvent>, Vec<pb::EventRejection>), String> {
    if batch.events.len() > limits.max_events {
        return Err(format!(
            "batch of {} events is larger than the limit of {}",
            batch.events.len(),
            limits.max_events
        ));
    }
    let host = batch.mx_host.trim();
    if host.is_empty() || host.len() > 253 {
        return Err("batch has no valid mx_host (the reporting MX host's name)".into());
    }
    let mut good = Vec::with_capacity(batch.events.len());
    let mut bad = Vec::new();
    for (i, e) in batch.events.iter().enumerate() {
        let refuse = |reason: String| pb::EventRejection {
            index: i as u32,
            reason,
        };
        let Ok(addr) = e.client_address.trim().parse::<IpAddr>() else {
            bad.push(refuse(format!(
                "unparseable client address '{}'",
                e.client_address.chars().take(64).collect::<String>()
            )));
            continue;
        };
        let Some(kind) = &e.kind else {
            bad.push(refuse("unknown or missing event kind".into()));
            continue;
        };
        if e.time_unix_ms < now_ms - limits.max_age_ms {
            bad.push(refuse(format!(
                "event time {} ms is more than {} h in the past",
                e.time_unix_ms,
                limits.max_age_ms / 3_600_000
            )));
            continue;
        }
        if e.time_unix_ms > now_ms + limits.max_ahead_ms {
            bad.push(refuse(format!(
                "event time {} ms is more than {} s in the future (clock skew?)",
                e.time_unix_ms,
                limits.max_ahead_ms / 1000
            )));
            continue;
        }
        good.push(ValidEvent {
            addr,
            at: (e.time_unix_ms / 1000).clamp(0, u32::MAX as i64) as u32,
            delta: delta_of(kind),
        });
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(addr: &str, t: i64, kind: Option<Kind>) -> pb::Event {
        pb::Event {
            time_unix_ms: t,
            client_address: addr.into(),
            kind,
        }
    }

    #[test]
    fn refuses_bad_events_and_keeps_good_ones() {
        let now = 1_800_000_000_000;
        let connect = Some(Kind::Connect(pb::Connect {}));
        let batch = pb::EventBatch {
            seq: 1,
            mx_host: "mx1".into(),
            events: vec![
                ev("203.0.113.5", now, connect.clone()),
                ev("203.0.113.500", now, connect.clone()),
                ev("2001:db8::1", now, None),
                ev("203.0.113.6", now + 3_600_000, connect.clone()),
                ev("203.0.113.7", now - 3 * 86_400_000, connect.clone()),
                ev(" 2001:db8::2 ", now - 1000, connect),
            ],
        };
        let (good, bad) = validate_batch(&batch, now, &Limits::default()).unwrap();
        assert_eq!(good.len(), 2);
        let reasons: Vec<(u32, &str)> = bad.iter().map(|r| (r.index, r.reason.as_str())).collect();
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].1.contains("unparseable") && reasons[0].0 == 1);
        assert!(reasons[1].1.contains("kind"));
        assert!(reasons[2].1.contains("future"));
        assert!(reasons[3].1.contains("past"));
    }

    #[test]
    fn oversized_or_anonymous_batches_are_refused_whole() {
        let limits = Limits {
            max_events: 2,
            ..Limits::default()
        };
        let mut b = pb::EventBatch {
            seq: 1,
            mx_host: "mx1".into(),
            events: vec![ev("192.0.2.1", 0, None); 3],
        };
        assert!(validate_batch(&b, 0, &limits)
            .unwrap_err()
            .contains("larger"));
        b.events.truncate(1);
        b.mx_host = " ".into();
        assert!(validate_batch(&b, 0, &limits)
            .unwrap_err()
            .contains("mx_host"));
    }

    #[test]
    fn disconnect_without_mail_is_a_bad_signal() {
        let d = |mail_ok| {
            Kind::Disconnect(pb::Disconnect {
                commands: vec![pb::CommandCount {
                    command: "mail".into(),
                    ok: mail_ok,
                    total: 1,
                }],
            })
        };
        assert_eq!(delta_of(&d(0)), Delta::NoMail);
        assert_eq!(delta_of(&d(1)), Delta::Nothing);
    }
}
