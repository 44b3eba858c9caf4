//! A realistic three-MX traffic mix as Postfix logs it: spammer classes that must be stopped and
//! legitimate senders that look like them and must never be banned. Deterministic: the sessions
//! of second `s` are a pure function of `s`.
//!
//! Spammers: rotating over an IPv4 /24, an IPv6 /64, and the /64s of an IPv6 /48 (one
//! connection per address, a rejected recipient, no mail); a single-address burst of
//! connect-and-quit; a connect-and-quit flood from many addresses of a /24.
//! Legitimate: a list server delivering from 40 addresses of a /24 with stale recipients; an
//! ESP's IPv6 pool delivering and retrying greylisted mail from other addresses; a busy sender
//! with one connection per message (~45 a minute) greylisted now and then; another MTA doing
//! recipient-verification callouts; a slow small sender.

/// What one SMTP session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One recipient rejected 550 (user unknown), nothing accepted.
    Rejected,
    /// Connect, EHLO, QUIT.
    ConnectQuit,
    /// One message delivered.
    Delivers,
    /// One message delivered, and a stale recipient rejected beside it.
    DeliversWithStale,
    /// Greylisted (450), nothing accepted.
    Greylisted,
    /// MAIL, RCPT accepted, QUIT: a recipient-verification callout.
    Callout,
}

/// One session from `addr` to MX host `mx` (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub class: &'static str,
    pub addr: String,
    pub mx: usize,
    pub shape: Shape,
}

/// A traffic class: its name, whether it is spam, and the key mxrep must ban (spam only).
pub struct Class {
    pub name: &'static str,
    pub spam: bool,
    pub key: &'static str,
}

pub const CLASSES: &[Class] = &[
    Class {
        name: "snowshoe-ipv4-24",
        spam: true,
        key: "203.0.113.0/24",
    },
    Class {
        name: "snowshoe-ipv6-64",
        spam: true,
        key: "2001:db8:bad:1::/64",
    },
    Class {
        name: "snowshoe-ipv6-48",
        spam: true,
        key: "2001:db8:bad2::/48",
    },
    Class {
        name: "single-address-burst",
        spam: true,
        key: "198.51.100.66/32",
    },
    Class {
        name: "connect-and-quit-flood",
        spam: true,
        key: "198.18.7.0/24",
    },
    Class {
        name: "list-server-pool",
        spam: false,
        key: "192.0.2.0/24",
    },
    Class {
        name: "esp-ipv6-pool",
        spam: false,
        key: "2001:db8:e5e::/64",
    },
    Class {
        name: "busy-sender",
        spam: false,
        key: "198.51.100.25/32",
    },
    Class {
        name: "callout-mta",
        spam: false,
        key: "198.51.100.30/32",
    },
    Class {
        name: "slow-sender",
        spam: false,
        key: "198.51.100.40/32",
    },
];

/// A small deterministic hash for choices.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0x6A09_E667);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// The sessions of second `s` of the mix.
pub fn sessions(s: u64) -> Vec<Session> {
    let mut out = vec![];
    let mut push = |class, addr: String, mx: usize, shape| {
        out.push(Session {
            class,
            addr,
            mx,
            shape,
        })
    };
    let mx = |k: u64| (mix(s, k) % 3) as usize;
    // Spam, from second 5 on.
    if s >= 5 && s % 2 == 1 && s < 80 {
        let i = s / 2;
        push(
            "snowshoe-ipv4-24",
            format!("203.0.113.{}", 10 + i),
            mx(1),
            Shape::Rejected,
        );
        push(
            "snowshoe-ipv6-64",
            format!("2001:db8:bad:1::{:x}", 0x100 + i),
            mx(2),
            Shape::Rejected,
        );
        push(
            "snowshoe-ipv6-48",
            format!("2001:db8:bad2:{:x}00::1", i),
            mx(3),
            Shape::Rejected,
        );
    }
    if (10..40).contains(&s) {
        push(
            "single-address-burst",
            "198.51.100.66".into(),
            mx(4),
            Shape::ConnectQuit,
        );
    }
    if (20..70).contains(&s) {
        push(
            "connect-and-quit-flood",
            format!("198.18.7.{}", s),
            mx(5),
            Shape::ConnectQuit,
        );
    }
    // Legitimate, all along.
    for k in 0..2 {
        let a = mix(s, 10 + k) % 40 + 1;
        let stale = mix(s, 20 + k).is_multiple_of(8);
        let shape = if stale && mix(s, 30 + k).is_multiple_of(2) {
            Shape::Rejected
        } else if stale {
            Shape::DeliversWithStale
        } else {
            Shape::Delivers
        };
        push(
            "list-server-pool",
            format!("192.0.2.{a}"),
            mx(40 + k),
            shape,
        );
    }
    let p = mix(s, 50) % 20 + 1;
    let shape = if mix(s, 51).is_multiple_of(6) {
        Shape::Greylisted
    } else {
        Shape::Delivers
    };
    push(
        "esp-ipv6-pool",
        format!("2001:db8:e5e::{p:x}"),
        mx(52),
        shape,
    );
    if s % 4 != 3 {
        let shape = if s % 15 == 7 {
            Shape::Greylisted
        } else {
            Shape::Delivers
        };
        push("busy-sender", "198.51.100.25".into(), mx(60), shape);
    }
    if s.is_multiple_of(3) {
        push(
            "callout-mta",
            "198.51.100.30".into(),
            mx(70),
            Shape::Callout,
        );
    }
    if s.is_multiple_of(30) {
        push(
            "slow-sender",
            "198.51.100.40".into(),
            mx(80),
            Shape::Delivers,
        );
    }
    out
}

/// The Postfix log lines of one session, stamped `stamp`, from smtpd process `pid` of `host`.
pub fn lines(s: &Session, stamp: &str, host: &str, pid: u32) -> Vec<String> {
    let p = format!("{stamp} {host} postfix/smtpd[{pid}]:");
    let who = format!("unknown[{}]", s.addr);
    let rej = |code: &str, ext: &str, text: &str, to: &str| {
        format!("{p} NOQUEUE: reject: RCPT from {who}: {code} {ext} <{to}>: Recipient address rejected: {text}; from=<news@sender.test> to=<{to}> proto=ESMTP helo=<sender.test>")
    };
    let qid = format!("{:X}", 0x1000_0000u64 + pid as u64);
    let mut l = vec![format!("{p} connect from {who}")];
    let counts = match s.shape {
        Shape::Rejected => {
            l.push(rej(
                "550",
                "5.1.1",
                "User unknown in local recipient table",
                "gone@mx.test",
            ));
            "ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
        }
        Shape::ConnectQuit => "ehlo=1 quit=1 commands=2",
        Shape::Delivers => {
            l.push(format!("{p} {qid}: client={who}"));
            "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
        }
        Shape::DeliversWithStale => {
            l.push(rej(
                "550",
                "5.1.1",
                "User unknown in local recipient table",
                "gone@mx.test",
            ));
            l.push(format!("{p} {qid}: client={who}"));
            "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6"
        }
        Shape::Greylisted => {
            l.push(rej(
                "450",
                "4.2.0",
                "Greylisted, see http://postgrey.schweikert.ch/help/mx.test.html",
                "user@mx.test",
            ));
            "ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
        }
        Shape::Callout => "ehlo=1 mail=1 rcpt=1 quit=1 commands=4",
    };
    l.push(format!("{p} disconnect from {who} {counts}"));
    l
}

/// Is `addr` inside the prefix `key`?
pub fn covers(key: &str, addr: &str) -> bool {
    match (
        key.parse::<ipnet::IpNet>(),
        addr.parse::<std::net::IpAddr>(),
    ) {
        (Ok(n), Ok(a)) => n.contains(&a),
        _ => false,
    }
}

/// Five connections from `addr` on `host`, each refused a recipient (550, unknown user) and
/// delivering nothing, as Postfix logs them with `stamp`: enough for a ban. The last
/// `disconnect` line is the decisive one (it closes the fifth bad connection).
pub fn refused_connections(addr: &str, host: &str, stamp: &str) -> String {
    (0..5)
        .map(|i| {
            let p = format!("{stamp} {host} postfix/smtpd[{}]:", 1000 + i);
            format!(
                "{p} connect from unknown[{addr}]\n\
                 {p} NOQUEUE: reject: RCPT from unknown[{addr}]: 550 5.1.1 <nobody{i}@{host}.test>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.test> to=<nobody{i}@{host}.test> proto=ESMTP helo=<spam.test>\n\
                 {p} disconnect from unknown[{addr}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4\n"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_every_class_present() {
        assert_eq!(sessions(33), sessions(33));
        let all: Vec<Session> = (0..90).flat_map(sessions).collect();
        for c in CLASSES {
            assert!(all.iter().any(|s| s.class == c.name), "{}", c.name);
            for s in all.iter().filter(|s| s.class == c.name) {
                assert!(covers(c.key, &s.addr), "{} from {}", c.name, s.addr);
            }
        }
        // The busy sender: about 45 connections a minute.
        let busy = all
            .iter()
            .filter(|s| s.class == "busy-sender" && s.addr == "198.51.100.25")
            .count();
        assert!((60..=70).contains(&busy), "{busy}");
    }
}
