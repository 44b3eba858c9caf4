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

/// What a connection verdict adds to the counters of its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictDelta {
    pub verdict: pb::Verdict,
    pub messages: u32,
    /// Permanently rejected recipients, counted only when the connection delivered nothing.
    pub rejects: u32,
    pub auth_failures: u32,
    /// The forward-confirmed client name, when Postfix verified one.
    pub verified_name: Option<String>,
}

/// One event that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEvent {
    pub addr: IpAddr,
    /// Event time, whole seconds since the epoch.
    pub at: u32,
    /// The connection verdict; `None` for the informational single events (connect, reject, …),
    /// which are accepted but not counted: the verdict of their connection is.
    pub verdict: Option<VerdictDelta>,
}

/// The counted part of an event, or why it is refused.
fn verdict_of(kind: &Kind) -> Result<Option<VerdictDelta>, String> {
    let Kind::Verdict(v) = kind else {
        return Ok(None);
    };
    let verdict = match pb::Verdict::try_from(v.verdict) {
        Ok(pb::Verdict::Unspecified) | Err(_) => {
            return Err(format!(
                "connection verdict {} is not one of delivered, neutral, bad",
                v.verdict
            ))
        }
        Ok(x) => x,
    };
    if v.client_name.len() > 253 {
        return Err("client_name longer than 253 characters".into());
    }
    let name = v.client_name.trim().to_ascii_lowercase();
    Ok(Some(VerdictDelta {
        verdict,
        messages: v.messages,
        rejects: if verdict == pb::Verdict::Delivered {
            0
        } else {
            v.rejected_recipients
        },
        auth_failures: v.auth_failures,
        verified_name: (!name.is_empty() && name != "unknown").then_some(name),
    }))
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
        let verdict = match verdict_of(kind) {
            Ok(v) => v,
            Err(reason) => {
                bad.push(refuse(reason));
                continue;
            }
        };
        good.push(ValidEvent {
            addr,
            at: (e.time_unix_ms / 1000).clamp(0, u32::MAX as i64) as u32,
            verdict,
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
            session: 0,
            traceparent: String::new(),
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
            session: 0,
            traceparent: String::new(),
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
    fn verdicts_count_and_single_events_inform() {
        let v = |verdict: pb::Verdict, rejected| {
            Kind::Verdict(pb::ConnectionVerdict {
                verdict: verdict as i32,
                rejected_recipients: rejected,
                client_name: "Mail.Example.org".into(),
                ..Default::default()
            })
        };
        let bad = verdict_of(&v(pb::Verdict::Bad, 3)).unwrap().unwrap();
        assert_eq!(
            (bad.rejects, bad.verified_name.as_deref()),
            (3, Some("mail.example.org"))
        );
        let good = verdict_of(&v(pb::Verdict::Delivered, 2)).unwrap().unwrap();
        assert_eq!(
            good.rejects, 0,
            "unknown recipients beside a delivery are forgiven"
        );
        assert!(verdict_of(&v(pb::Verdict::Unspecified, 0)).is_err());
        assert_eq!(verdict_of(&Kind::Connect(pb::Connect {})).unwrap(), None);
    }
}
