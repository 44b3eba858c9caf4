//! One syslog message as received: its sending host (the MX host its events belong to) and the
//! line the Postfix parser reads. RFC 5424 (`<PRI>1 TIME HOST APP PROCID MSGID SD MSG`) is read
//! by the parser as it is; RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`) and rsyslog's
//! forwarding format (`<PRI>2026-11-26T17:06:09+01:00 HOST TAG[PID]: MSG`) lose their `<PRI>`.
//! A 3164 message without a host name (a local `logger`) is from the peer's address.

/// The MX host a message names, and the line to parse; None when it is no syslog message or
/// its host name is unusable.
pub fn split(msg: &str, peer: &str) -> Option<(String, String)> {
    let msg = msg.trim_end_matches(['\r', '\n']);
    let rest = msg.strip_prefix('<')?;
    let close = rest.find('>').filter(|i| (1..=3).contains(i))?;
    rest[..close].parse::<u8>().ok()?;
    let after = &rest[close + 1..];
    if let Some(v5424) = after.strip_prefix("1 ") {
        let host = v5424.split(' ').nth(1)?;
        return Some((checked_host(host)?, msg.to_string()));
    }
    // rsyslog's forwarding formats with an RFC 3339 stamp: "2026-11-26T17:06:09+01:00 HOST TAG".
    if after.starts_with(|c: char| c.is_ascii_digit()) {
        let host = after.split(' ').nth(1)?;
        return Some((checked_host(host)?, after.to_string()));
    }
    // RFC 3164: "Mmm dd hh:mm:ss" is 15 characters (the day padded with a space).
    let stamp = after.get(..15)?;
    let tail = after.get(15..)?.strip_prefix(' ')?;
    let first = tail.split(' ').next()?;
    if first.ends_with(':') || first.contains('[') {
        // No host name: TAG[PID]: comes right after the stamp.
        let host = checked_host(peer)?;
        return Some((host.clone(), format!("{stamp} {host} {tail}")));
    }
    Some((checked_host(first)?, after.to_string()))
}

/// A host name as an event may carry it: letters, digits, `.`, `-`, `_`, `:` (an address),
/// at most 253 characters.
fn checked_host(h: &str) -> Option<String> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h != "-"
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    ok.then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_name_their_host() {
        let (h, l) = split(
            "<22>Nov  6 07:01:02 mx7 postfix/smtpd[41]: connect from unknown[192.0.2.9]",
            "10.0.0.1",
        )
        .unwrap();
        assert_eq!(h, "mx7");
        assert_eq!(
            l,
            "Nov  6 07:01:02 mx7 postfix/smtpd[41]: connect from unknown[192.0.2.9]"
        );
        let fwd = "<22>2026-11-26T17:06:09.123+01:00 mx9 postfix/smtpd[42]: connect";
        assert_eq!(
            split(fwd, "p").unwrap(),
            ("mx9".into(), fwd[4..].to_string())
        );
        let m = "<22>1 2026-11-26T17:06:09.123+01:00 mx8.example postfix/smtpd 42 - - connect";
        assert_eq!(
            split(m, "10.0.0.1").unwrap(),
            ("mx8.example".into(), m.into())
        );
        // No host in the message: the peer's address names it.
        let (h, l) = split("<22>Nov 26 17:06:09 postfix/smtpd[41]: quit", "10.0.0.1").unwrap();
        assert_eq!(
            (h.as_str(), l.as_str()),
            (
                "10.0.0.1",
                "Nov 26 17:06:09 10.0.0.1 postfix/smtpd[41]: quit"
            )
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "no priority",
            "<999>Nov 26 17:06:09 mx postfix/smtpd[1]: x",
            "<22>",
            "<22>1 2026-11-26T17:06:09Z - app - - - x",
            "<22>Nov 26 17:06:09 m/x postfix/smtpd[1]: x",
            "<22>short",
        ] {
            assert_eq!(split(bad, "peer?"), None, "{bad:?}");
        }
    }
}
