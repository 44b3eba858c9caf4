//! `HOST:PORT` as operators type it: checked up front, so a typo fails at start with a message
//! that names it instead of as a connection error later.

/// Checks that `input` is `HOST:PORT` (IPv6 hosts in brackets) and returns it trimmed.
pub fn host_port(input: &str) -> Result<String, String> {
    let s = input.trim();
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("'{input}' has no port (expected HOST:PORT)"));
    };
    if host.is_empty() {
        return Err(format!("'{input}' has no host (expected HOST:PORT)"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "'{input}': an IPv6 host goes in brackets, e.g. [2001:db8::1]:7400"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!(
            "'{input}' has an invalid port '{port}' (expected 1-65535)"
        )),
    }
}

/// The host of `HOST:PORT`, without IPv6 brackets (the name a TLS certificate must hold).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("10.0.0.1:7400"), "10.0.0.1");
        assert_eq!(host_of("[2001:db8::1]:7400"), "2001:db8::1");
        assert_eq!(host_of("node-1.mxrep:7400"), "node-1.mxrep");
    }

    #[test]
    fn accepts_and_refuses() {
        assert_eq!(host_port(" 10.0.0.1:7400 ").unwrap(), "10.0.0.1:7400");
        assert!(host_port("[2001:db8::1]:7400").is_ok());
        assert!(host_port("node-1.mxrep:7400").is_ok());
        assert!(host_port("10.0.0.1").unwrap_err().contains("no port"));
        assert!(host_port(":7400").unwrap_err().contains("no host"));
        assert!(host_port("10.0.0.1:0")
            .unwrap_err()
            .contains("invalid port"));
        assert!(host_port("10.0.0.1:x")
            .unwrap_err()
            .contains("invalid port"));
        assert!(host_port("2001:db8::1:7400")
            .unwrap_err()
            .contains("brackets"));
    }
}
