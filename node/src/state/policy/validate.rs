//! Checks of a policy document before it is proposed: windows in range, prefix lengths within
//! the safety breadth, DNS list sites in postscreen's syntax, greylisting delays that can pass.

use super::Policy;

impl Policy {
    /// Refuses settings that make no sense or break the safety limits.
    pub fn validate(&self) -> Result<(), String> {
        let windows = [
            (
                "connection_rate.window_secs",
                self.connection_rate.window_secs,
            ),
            (
                "changing_addresses.window_secs",
                self.changing_addresses.window_secs,
            ),
            ("rejects.window_secs", self.rejects.window_secs),
            ("message_rate.window_secs", self.message_rate.window_secs),
        ];
        for (k, v) in windows {
            if !(1..=86400).contains(&v) {
                return Err(format!("{k} must be between 1 and 86400, got {v}"));
            }
        }
        let s = &self.safety;
        if s.max_breadth_ipv4 > 32 || s.max_breadth_ipv6 > 128 {
            return Err("safety.max_breadth_* is a prefix length (IPv4 ≤ 32, IPv6 ≤ 128)".into());
        }
        let c = &self.changing_addresses;
        if c.ipv4_prefix_len > 32 || c.ipv4_prefix_len < s.max_breadth_ipv4 {
            return Err(format!(
                "changing_addresses.ipv4_prefix_len /{} is broader than safety.max_breadth_ipv4 /{}",
                c.ipv4_prefix_len, s.max_breadth_ipv4
            ));
        }
        if c.ipv6_prefix_len > 128 || c.ipv6_prefix_len < s.max_breadth_ipv6 {
            return Err(format!(
                "changing_addresses.ipv6_prefix_len /{} is broader than safety.max_breadth_ipv6 /{}",
                c.ipv6_prefix_len, s.max_breadth_ipv6
            ));
        }
        for (wider, first, broadest, fam) in [
            (
                &c.ipv4_wider_prefix_lens,
                c.ipv4_prefix_len,
                s.max_breadth_ipv4,
                "ipv4",
            ),
            (
                &c.ipv6_wider_prefix_lens,
                c.ipv6_prefix_len,
                s.max_breadth_ipv6,
                "ipv6",
            ),
        ] {
            for w in wider.iter() {
                if *w >= first || *w < broadest {
                    return Err(format!(
                        "changing_addresses.{fam}_wider_prefix_lens: /{w} must be broader than /{first} and not broader than safety.max_breadth_{fam} /{broadest}"
                    ));
                }
            }
        }
        if c.bad_to_good_ratio == 0 {
            return Err("changing_addresses.bad_to_good_ratio must be at least 1".into());
        }
        if !(60..=30 * 86400).contains(&c.good_memory_secs) {
            return Err(
                "changing_addresses.good_memory_secs must be between 60 and 2592000".into(),
            );
        }
        if self.connection_rate.good_history_factor == 0 {
            return Err("connection_rate.good_history_factor must be at least 1".into());
        }
        if s.allow_client_names
            .iter()
            .any(|n| n.trim().trim_start_matches('.').is_empty())
        {
            return Err("safety.allow_client_names has an empty name".into());
        }
        if c.distinct_addresses < 2 {
            return Err("changing_addresses.distinct_addresses must be at least 2".into());
        }
        for site in &self.dnsbl.sites {
            crate::state::dnsbl::site::Site::parse(site)
                .map_err(|e| format!("dnsbl.sites: {e}"))?;
        }
        let g = &self.greylist;
        if g.ipv4_prefix_len > 32 || g.ipv6_prefix_len > 128 {
            return Err(
                "greylist.ipv4_prefix_len is at most 32, greylist.ipv6_prefix_len at most 128"
                    .into(),
            );
        }
        if g.delay_secs >= g.retry_window_secs {
            return Err(format!(
                "greylist.delay_secs ({}) must be shorter than greylist.retry_window_secs ({})",
                g.delay_secs, g.retry_window_secs
            ));
        }
        if g.auto_allowlist_passes == 0 {
            return Err("greylist.auto_allowlist_passes must be at least 1".into());
        }
        if self.repeat_offenders.factor == 0 {
            return Err("repeat_offenders.factor must be at least 1".into());
        }
        Ok(())
    }
}
