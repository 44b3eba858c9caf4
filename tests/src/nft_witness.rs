//! The test suite's independent witness of kernel state: `nft` itself, which the agent no longer
//! uses (it speaks netlink). Reading a set back: `nft -j list set` JSON into its elements and their seconds left. A plain
//! element is `{"elem":{"val":"…","expires":…}}` (or a bare string without a timeout), a prefix
//! `{"elem":{"val":{"prefix":{"addr":"…","len":N}},…}}`.

use anyhow::Context;
use ipnet::IpNet;
use std::collections::BTreeMap;

/// Elements of set `set` of table `inet <table>` in network namespace `ns`, as `nft` reads them.
pub fn nft_set(ns: &str, table: &str, set: &str) -> BTreeMap<IpNet, Option<u64>> {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "set", "inet", table, set,
        ])
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft list set {set}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_set_json(&String::from_utf8_lossy(&out.stdout)).expect("nft's JSON")
}

/// Elements of the set in `text` (nft's JSON), with seconds left (None: no timeout).
pub fn parse_set_json(text: &str) -> anyhow::Result<BTreeMap<IpNet, Option<u64>>> {
    let v: serde_json::Value = serde_json::from_str(text).context("nft -j output is not JSON")?;
    let mut out = BTreeMap::new();
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    for item in items {
        let Some(elems) = item["set"]["elem"].as_array() else {
            continue;
        };
        for e in elems {
            let (val, expires) = match e.get("elem") {
                Some(inner) => (&inner["val"], inner["expires"].as_u64()),
                None => (e, None),
            };
            let net = if let Some(s) = val.as_str() {
                s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
            } else if let Some(p) = val.get("prefix") {
                let addr = p["addr"]
                    .as_str()
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok());
                addr.zip(p["len"].as_u64())
                    .and_then(|(a, l)| IpNet::new(a, l as u8).ok())
            } else {
                None
            };
            if let Some(n) = net {
                out.insert(n, expires);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_and_prefixes_with_and_without_timeouts() {
        let text = r#"{"nftables":[{"metainfo":{}},{"set":{"name":"ban4net","elem":[
            {"elem":{"val":{"prefix":{"addr":"203.0.113.0","len":24}},"timeout":3600,"expires":3599}},
            {"elem":{"val":"192.0.2.7","timeout":60,"expires":42}},
            "2001:db8::1",
            {"elem":{"val":{"weird":1}}}]}}]}"#;
        let m = super::parse_set_json(text).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&"203.0.113.0/24".parse().unwrap()], Some(3599));
        assert_eq!(m[&"192.0.2.7/32".parse().unwrap()], Some(42));
        assert_eq!(m[&"2001:db8::1/128".parse().unwrap()], None);
        assert!(super::parse_set_json("not json").is_err());
    }
}
