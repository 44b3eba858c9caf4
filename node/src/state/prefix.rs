//! Parsing of addresses and prefixes as operators type them: `203.0.113.7`, `203.0.113.0/24`,
//! `2001:db8::/64`. A bare address is a /32 or /128; host bits are cleared (`203.0.113.7/24` is
//! the /24); anything else is refused with a message that names the problem.

use ipnet::IpNet;
use std::net::IpAddr;

/// Why a prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("'{0}' is not an IP address or CIDR prefix (expected e.g. 203.0.113.7, 203.0.113.0/24, 2001:db8::/64)")]
    Malformed(String),
    #[error("'{input}' has host bits set: did you mean {network} (the network) or {address} (the address)?")]
    HostBits {
        input: String,
        network: String,
        address: String,
    },
    #[error("'{input}' has prefix length /{len}, but an {family} prefix is at most /{max}")]
    LengthTooLong {
        input: String,
        len: String,
        family: &'static str,
        max: u8,
    },
}

/// Parses an address or CIDR prefix into its canonical network form.
pub fn parse_prefix(input: &str) -> Result<IpNet, PrefixError> {
    let text = input.trim();
    let malformed = || PrefixError::Malformed(input.to_string());
    match text.split_once('/') {
        None => parse_address(text)
            .map(IpNet::from)
            .map_err(|_| malformed()),
        Some((addr, len)) => {
            let addr = parse_address(addr).map_err(|_| malformed())?;
            let (family, max) = match addr {
                IpAddr::V4(_) => ("IPv4", 32u8),
                IpAddr::V6(_) => ("IPv6", 128u8),
            };
            let n: u8 = match len.parse() {
                Ok(n) if n <= max => n,
                Ok(_) => {
                    return Err(PrefixError::LengthTooLong {
                        input: input.to_string(),
                        len: len.to_string(),
                        family,
                        max,
                    })
                }
                Err(_) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(PrefixError::LengthTooLong {
                        input: input.to_string(),
                        len: len.to_string(),
                        family,
                        max,
                    })
                }
                Err(_) => return Err(malformed()),
            };
            IpNet::new(addr, n)
                .map(|p| p.trunc())
                .map_err(|_| malformed())
        }
    }
}

/// Like [`parse_prefix`], but a prefix with host bits set (`10.0.0.1/24`) is refused with the
/// two prefixes the operator may have meant, as Python's `ipaddress` does in strict mode: for a
/// ban, guessing wrong covers the wrong hosts.
pub fn parse_prefix_strict(input: &str) -> Result<IpNet, PrefixError> {
    let net = parse_prefix(input)?;
    if let Some((addr, _)) = input.trim().split_once('/') {
        let addr = parse_address(addr)?;
        if addr != net.addr() {
            return Err(PrefixError::HostBits {
                input: input.trim().to_string(),
                network: net.to_string(),
                address: IpNet::from(addr).to_string(),
            });
        }
    }
    Ok(net)
}

/// Parses a single IPv4 or IPv6 address.
pub fn parse_address(input: &str) -> Result<IpAddr, PrefixError> {
    input
        .trim()
        .parse()
        .map_err(|_| PrefixError::Malformed(input.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            parse_prefix("203.0.113.7").unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(
            parse_prefix("203.0.113.7/24").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            parse_prefix("2001:db8:1::5/64").unwrap().to_string(),
            "2001:db8:1::/64"
        );
        assert_eq!(
            parse_prefix("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn strict_refuses_host_bits_with_both_meanings() {
        let e = parse_prefix_strict("10.0.0.1/24").unwrap_err().to_string();
        assert!(
            e.contains("10.0.0.0/24") && e.contains("10.0.0.1/32"),
            "{e}"
        );
        assert_eq!(
            parse_prefix_strict("10.0.0.0/24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            parse_prefix_strict("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!(parse_prefix_strict("2001:db8::1/64").is_err());
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = parse_prefix("10.0.0.0/33").unwrap_err().to_string();
        assert!(e.contains("/33") && e.contains("at most /32"), "{e}");
        let e = parse_prefix("2001:db8::/129").unwrap_err().to_string();
        assert!(e.contains("at most /128"), "{e}");
        for bad in [
            "",
            "example.com",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/x",
            "1.2.3.4/24/8",
        ] {
            assert!(
                matches!(parse_prefix(bad), Err(PrefixError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
