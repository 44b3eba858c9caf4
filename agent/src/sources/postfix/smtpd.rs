//! smtpd's lines: connect, disconnect with command counts, `reject:` with code and reason class,
//! SASL failures, accepted messages (`QUEUEID: client=`), and the protocol errors logged with
//! `after COMMAND from CLIENT`.

use super::{addr, event, patterns, protocol_error, reject_class, unknown_shape, Parsed};
use mxrep_proto::v1 as pb;
use pb::event::Kind;

/// The event of one smtpd message stamped `t`.
pub(super) fn message(t: i64, msg: &str) -> Parsed {
    let p = patterns();
    if let Some(rest) = msg.strip_prefix("connect from ") {
        let a = p
            .client
            .captures(&format!("from {rest}"))
            .and_then(|c| addr(c.get(2)?.as_str()));
        return a.map_or(Parsed::Ignored, |a| {
            event(t, a, Kind::Connect(pb::Connect {}))
        });
    }
    if msg.starts_with("disconnect from ") {
        let Some(c) = p.client.captures(msg) else {
            return Parsed::Ignored;
        };
        let Some(a) = addr(&c[2]) else {
            return Parsed::Ignored;
        };
        let tail = &msg[c.get(0).map_or(0, |m| m.end())..];
        let commands = p
            .counts
            .captures_iter(tail)
            .map(|c| {
                let ok: u32 = c[2].parse().unwrap_or(0);
                pb::CommandCount {
                    command: c[1].to_string(),
                    ok,
                    total: c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(ok),
                }
            })
            .collect();
        return event(t, a, Kind::Disconnect(pb::Disconnect { commands }));
    }
    if let Some(i) = msg.find("reject: ") {
        return reject(t, &msg[i..]);
    }
    if let Some(c) = p.sasl.captures(msg) {
        let Some(a) = addr(&c[1]) else {
            return Parsed::Ignored;
        };
        return event(
            t,
            a,
            Kind::AuthFailure(pb::AuthFailure {
                mechanism: c[2].to_string(),
            }),
        );
    }
    if let Some(c) = p.accepted.captures(msg) {
        let Some(a) = addr(&c[2]) else {
            return Parsed::Ignored;
        };
        return event(
            t,
            a,
            Kind::Accepted(pb::MessageAccepted {
                queue_id: c[1].to_string(),
            }),
        );
    }
    if let Some(c) = p.after.captures(msg) {
        let Some(a) = addr(&c[3]) else {
            return Parsed::Ignored;
        };
        let kind = match &c[1] {
            "lost connection" => pb::ProtocolErrorKind::LostConnection,
            "too many errors" => pb::ProtocolErrorKind::TooManyErrors,
            "timeout" => pb::ProtocolErrorKind::Timeout,
            _ => pb::ProtocolErrorKind::Pipelining,
        };
        return protocol_error(t, a, kind, format!("{} after {}", &c[1], &c[2]));
    }
    unknown_shape(msg, &INFORMATIONAL)
}

/// Lines about a client that say nothing about its behaviour.
const INFORMATIONAL: [&str; 13] = [
    "warning: ",
    "Anonymous TLS ",
    "Trusted TLS ",
    "Untrusted TLS ",
    "Verified TLS ",
    "NOQUEUE: filter: ",
    "NOQUEUE: discard: ",
    "NOQUEUE: hold: ",
    "NOQUEUE: redirect: ",
    "NOQUEUE: warn: ",
    "SSL_accept error ",
    "proxy-accept: ",
    "proxy-reject: ",
];

/// The rejected-recipient event of `msg`, which starts at `reject: ` (smtpd's lines, and
/// postscreen's `reject: RCPT from [ADDR]:PORT: …`).
pub(super) fn reject(t: i64, msg: &str) -> Parsed {
    let p = patterns();
    let Some(c) = p.client.captures(msg) else {
        return Parsed::Ignored;
    };
    let Some(a) = addr(&c[2]) else {
        return Parsed::Ignored;
    };
    let Some(r) = p.reject.captures(msg) else {
        return Parsed::Ignored;
    };
    let code: u32 = r[2].parse().unwrap_or(0);
    let enhanced = r.get(3).map_or("", |m| m.as_str()).to_string();
    // 4.3.x is our own side failing (e.g. a policy service down), not the client.
    if enhanced.starts_with("4.3.") {
        return Parsed::Ignored;
    }
    let text = r.get(4).map_or("", |m| m.as_str());
    event(
        t,
        a,
        Kind::Rejected(pb::RecipientRejected {
            code,
            enhanced_code: enhanced,
            class: reject_class(text) as i32,
            sender: r.get(5).map_or("", |m| m.as_str()).to_string(),
            recipient: r.get(6).map_or("", |m| m.as_str()).to_string(),
            helo: r.get(7).map_or("", |m| m.as_str()).to_string(),
        }),
    )
}
