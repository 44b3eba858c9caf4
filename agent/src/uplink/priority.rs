//! Which events may decide a ban: they travel in the uplink's decisive lane, apart from the bulk
//! of delivered traffic, so a ban decision never queues behind counting.

use mxrep_proto::v1 as pb;
use pb::event::Kind;

/// Does `e` carry evidence against its sender (a bad connection, a refused recipient, a failed
/// login, a protocol error)? The node's aggregator puts the same events first.
pub fn is_decisive(e: &pb::Event) -> bool {
    match &e.kind {
        Some(Kind::Verdict(v)) => {
            v.verdict() == pb::Verdict::Bad || v.rejected_recipients > 0 || v.auth_failures > 0
        }
        Some(Kind::Rejected(_) | Kind::AuthFailure(_) | Kind::ProtocolError(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(v: pb::Verdict, rejected: u32, auth: u32) -> pb::Event {
        pb::Event {
            time_unix_ms: 1,
            client_address: "192.0.2.1".into(),
            kind: Some(Kind::Verdict(pb::ConnectionVerdict {
                verdict: v as i32,
                rejected_recipients: rejected,
                auth_failures: auth,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn evidence_against_a_sender_is_decisive_and_delivered_mail_is_not() {
        assert!(is_decisive(&verdict(pb::Verdict::Bad, 0, 0)));
        assert!(is_decisive(&verdict(pb::Verdict::Delivered, 2, 0)));
        assert!(is_decisive(&verdict(pb::Verdict::Neutral, 0, 1)));
        assert!(!is_decisive(&verdict(pb::Verdict::Delivered, 0, 0)));
        assert!(!is_decisive(&verdict(pb::Verdict::Neutral, 0, 0)));
        let connect = pb::Event {
            kind: Some(Kind::Connect(pb::Connect {})),
            ..verdict(pb::Verdict::Bad, 0, 0)
        };
        assert!(!is_decisive(&connect));
        let failure = pb::Event {
            kind: Some(Kind::AuthFailure(Default::default())),
            ..connect
        };
        assert!(is_decisive(&failure));
    }
}
