//! The triplet key: client network + sender + recipient, with the sender normalised as postgrey
//! does, so a list server's ever-changing envelope is one sender: lowercase; BATV (`prvs=…=user`)
//! and SRS (`srs0=…=domain=user@forwarder`) unwrapped to the original sender; `+tag` extensions
//! dropped; every run of digits in the local part (VERP ids, numbered bounces) made `#`. The key
//! is a fixed-size 64-bit hash (xxh3, stable across builds and machines), so millions of
//! triplets stay small and every node computes the same key.

use ipnet::IpNet;

/// The sender as greylisting compares it.
pub fn normalise_sender(sender: &str) -> String {
    let s = sender.trim().trim_matches(['<', '>']).to_ascii_lowercase();
    let Some((user, domain)) = s.rsplit_once('@') else {
        return s;
    };
    let (mut user, mut domain) = (user.to_string(), domain.to_string());
    // SRS0=hash=tt=orig-domain=orig-user@forwarder (SRS1 nests one more hop before it).
    if user.starts_with("srs0=") || user.starts_with("srs1=") {
        let parts: Vec<&str> = user.split('=').collect();
        if parts.len() >= 5 {
            let (d, u) = (parts[parts.len() - 2], parts[parts.len() - 1]);
            if !d.is_empty() && !u.is_empty() {
                (user, domain) = (u.to_string(), d.to_string());
            }
        }
    }
    // BATV: prvs=tag=user (also msprvs1= and btv1=).
    for tag in ["prvs=", "msprvs1=", "btv1="] {
        if user.starts_with(tag) {
            if let Some((_, orig)) = user.rsplit_once('=') {
                if !orig.is_empty() {
                    user = orig.to_string();
                }
            }
        }
    }
    if let Some((base, _)) = user.split_once('+') {
        user = base.to_string();
    }
    let mut out = String::with_capacity(user.len());
    let mut in_digits = false;
    for c in user.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    format!("{out}@{domain}")
}

/// The 64-bit key of (client network, sender, recipient).
pub fn triplet_key(network: &IpNet, sender: &str, recipient: &str) -> u64 {
    let text = format!(
        "{network}\0{}\0{}",
        normalise_sender(sender),
        recipient
            .trim()
            .trim_matches(['<', '>'])
            .to_ascii_lowercase()
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms_collapse_to_one_sender() {
        for (raw, want) in [
            ("Alice@Example.ORG", "alice@example.org"),
            ("alice+newsletter@example.org", "alice@example.org"),
            (
                "bounce-12345-678@lists.example.org",
                "bounce-#-#@lists.example.org",
            ),
            ("prvs=1234abcdef=alice@example.org", "alice@example.org"),
            (
                "SRS0=HHH=TT=example.org=alice@forwarder.test",
                "alice@example.org",
            ),
            (
                "srs1=x=fwd.test==hhh=tt=example.org=alice@other.test",
                "alice@example.org",
            ),
            (
                "owner-list+bob=mx.test@lists.example.org",
                "owner-list@lists.example.org",
            ),
            ("<>", ""),
            ("", ""),
        ] {
            assert_eq!(normalise_sender(raw), want, "{raw}");
        }
    }

    #[test]
    fn keys_group_what_should_be_one_triplet() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let a = triplet_key(&net, "bounce-1@l.test", "User@MX.test");
        assert_eq!(a, triplet_key(&net, "bounce-2@l.test", "user@mx.test"));
        assert_ne!(
            a,
            triplet_key(
                &"192.0.3.0/24".parse().unwrap(),
                "bounce-1@l.test",
                "user@mx.test"
            )
        );
        assert_ne!(a, triplet_key(&net, "bounce-1@l.test", "other@mx.test"));
        // Stable across builds and machines: a fixed value.
        assert_eq!(
            triplet_key(&net, "a@b.test", "c@d.test"),
            xxhash_rust::xxh3::xxh3_64(b"192.0.2.0/24\0a@b.test\0c@d.test")
        );
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_never_panics(s in "\\\\PC{0,60}") {
            let once = normalise_sender(&s);
            prop_assert_eq!(normalise_sender(&once), once);
        }

        #[test]
        fn tags_and_numbers_never_split_a_sender(user in "[a-z]{1,8}", tag in "[a-z0-9]{0,8}", n in 0u32..100000) {
            let base = normalise_sender(&format!("{user}-{n}@list.test"));
            prop_assert_eq!(normalise_sender(&format!("{user}-{n}+{tag}@LIST.test")), base.clone());
            prop_assert_eq!(normalise_sender(&format!("{user}-{}@list.test", n + 1)), base);
        }
    }
}
