//! The policy document an operator sets (`mxrepctl policy set`): parsed and validated, or
//! refused with a message. Nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxrep_node::state::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::from_toml(text);
    }
});
