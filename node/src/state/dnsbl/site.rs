//! One DNS list in postscreen's syntax, as operators already write it in
//! `postscreen_dnsbl_sites`: `domain[=filter][*weight]`. The filter matches the returned
//! address octet by octet: a number, `[a..b]` (a range) or `[a;b;c]` (a list); no filter matches
//! any listing. The weight is 1 unless given; a negative weight makes an allowlist (DNSWL).
//!
//! Whatever the filter, an answer in 127.255.255.0/24 (Spamhaus's "query refused / typing error
//! / too many queries") or outside 127.0.0.0/8 is a list error, never a listing.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// One octet's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Octet {
    Range(u8, u8),
    List(Vec<u8>),
}

impl Octet {
    fn matches(&self, v: u8) -> bool {
        match self {
            Octet::Range(a, b) => (*a..=*b).contains(&v),
            Octet::List(l) => l.contains(&v),
        }
    }
}

/// A parsed `domain=filter*weight`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The list's zone, lowercase, without a trailing dot.
    pub zone: String,
    filter: Option<[Octet; 4]>,
    pub weight: i32,
}

/// What one returned address means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A listing this site's filter accepts.
    Listed,
    /// A listing the filter does not select (another list of a combined zone).
    Other,
    /// 127.255.255.0/24 or outside 127/8: the list failed, not the client.
    ListError,
}

fn octet(s: &str) -> Result<Octet, String> {
    let bad = || format!("'{s}' is not an octet pattern (a number, [a..b] or [a;b;c])");
    let num = |t: &str| t.trim().parse::<u8>().map_err(|_| bad());
    match s.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        None => num(s).map(|n| Octet::Range(n, n)),
        Some(inner) => match inner.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad());
                }
                Ok(Octet::Range(a, b))
            }
            None => inner
                .split(';')
                .map(num)
                .collect::<Result<Vec<_>, _>>()
                .map(Octet::List),
        },
    }
}

/// Splits a filter at the dots between octets, not those of a `[a..b]` range.
fn octets(f: &str) -> Vec<&str> {
    let mut out = vec![];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in f.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&f[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&f[start..]);
    out
}

impl Site {
    /// Parses `domain[=filter][*weight]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (rest, weight) = match t.rsplit_once('*') {
            Some((r, w)) => (
                r,
                w.trim()
                    .parse::<i32>()
                    .map_err(|_| format!("'{t}': weight '{w}' is not an integer"))?,
            ),
            None => (t, 1),
        };
        let (zone, filter) = match rest.split_once('=') {
            Some((z, f)) => {
                let parts = octets(f);
                if parts.len() != 4 {
                    return Err(format!("'{t}': the filter '{f}' needs four octets"));
                }
                let o = parts
                    .iter()
                    .map(|p| octet(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("'{t}': {e}"))?;
                (
                    z,
                    Some([o[0].clone(), o[1].clone(), o[2].clone(), o[3].clone()]),
                )
            }
            None => (rest, None),
        };
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !zone.is_empty()
            && zone.contains('.')
            && zone.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(format!("'{t}': '{zone}' is not a DNS zone"));
        }
        if weight == 0 {
            return Err(format!("'{t}': a weight of 0 would never count"));
        }
        Ok(Self {
            zone,
            filter,
            weight,
        })
    }

    /// What `addr`, returned by this list, means.
    pub fn classify(&self, addr: Ipv4Addr) -> Code {
        let o = addr.octets();
        if o[0] != 127 || (o[1] == 255 && o[2] == 255) {
            return Code::ListError;
        }
        match &self.filter {
            None => Code::Listed,
            Some(f) if f.iter().zip(o).all(|(p, v)| p.matches(v)) => Code::Listed,
            Some(_) => Code::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn postscreen_syntax() {
        let zen = Site::parse("zen.example=127.0.0.[2..11]*3").unwrap();
        assert_eq!((zen.zone.as_str(), zen.weight), ("zen.example", 3));
        assert_eq!(zen.classify(ip("127.0.0.2")), Code::Listed);
        assert_eq!(zen.classify(ip("127.0.0.11")), Code::Listed);
        assert_eq!(zen.classify(ip("127.0.0.12")), Code::Other);
        let bl = Site::parse("BL.example.*2").unwrap();
        assert_eq!((bl.zone.as_str(), bl.weight), ("bl.example", 2));
        assert_eq!(bl.classify(ip("127.0.0.99")), Code::Listed);
        let wl = Site::parse("wl.example=127.0.[0..255].[2;3]*-2").unwrap();
        assert_eq!(wl.weight, -2);
        assert_eq!(wl.classify(ip("127.0.15.3")), Code::Listed);
        assert_eq!(wl.classify(ip("127.0.15.1")), Code::Other);
        assert_eq!(Site::parse("plain.example").unwrap().weight, 1);
    }

    #[test]
    fn list_errors_are_never_listings() {
        let any = Site::parse("bl.example").unwrap();
        for e in [
            "127.255.255.254",
            "127.255.255.252",
            "10.0.0.1",
            "192.0.2.1",
        ] {
            assert_eq!(any.classify(ip(e)), Code::ListError, "{e}");
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        for (bad, needle) in [
            ("zen.example=127.0.0*3", "four octets"),
            ("zen.example=127.0.0.[9..2]", "octet pattern"),
            ("zen.example*x", "weight"),
            ("nodots", "not a DNS zone"),
            ("zen.example*0", "never count"),
            ("bad zone.example", "not a DNS zone"),
        ] {
            let e = Site::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
