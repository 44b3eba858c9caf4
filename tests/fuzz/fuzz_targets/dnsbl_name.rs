//! The query names the DNSBL zone answers: reversed IPv4 octets or IPv6 nibbles in front of the
//! zone. Any labels give an address or none; nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxrep_node::dns::zone::address_of;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = address_of(&text);
});
