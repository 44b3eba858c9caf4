//! `--local-rate`: on this host alone, before the cluster decides, a per-address nftables meter
//! that drops the 4th new connection within 60 s (`iptables -m recent --hitcount 4 --seconds
//! 60`). The script that adds it, or removes it when the option is off.

/// The local meter (after conntrack, so only new connections count), or its removal.
pub fn local_rate_script(t: &str, ports: &str, on: bool) -> String {
    let mut s = format!(
        "add chain inet {t} localrate {{ type filter hook prerouting priority -150; policy accept; }}\n\
         flush chain inet {t} localrate\n\
         add set inet {t} rate4 {{ type ipv4_addr; flags dynamic, timeout; timeout 60s; }}\n\
         add set inet {t} rate6 {{ type ipv6_addr; flags dynamic, timeout; timeout 60s; }}\n"
    );
    if on {
        // Three new connections a minute pass; the fourth within the minute is dropped, as
        // `iptables -m recent --hitcount 4 --seconds 60` would.
        s.push_str(&format!(
            "add rule inet {t} localrate tcp dport {ports} ip saddr @allow4 accept\n\
             add rule inet {t} localrate tcp dport {ports} ip6 saddr @allow6 accept\n\
             add rule inet {t} localrate tcp dport {ports} ct state new update @rate4 {{ ip saddr limit rate over 3/minute burst 3 packets }} counter drop\n\
             add rule inet {t} localrate tcp dport {ports} ct state new update @rate6 {{ ip6 saddr limit rate over 3/minute burst 3 packets }} counter drop\n"
        ));
    } else {
        s.push_str(&format!(
            "delete chain inet {t} localrate\ndelete set inet {t} rate4\ndelete set inet {t} rate6\n"
        ));
    }
    s
}
