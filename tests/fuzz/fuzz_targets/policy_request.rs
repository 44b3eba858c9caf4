//! The Postfix policy protocol as a client may send it: any bytes, cut into lines as the
//! service reads them. A request is answered, refused, or waits for more; nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxrep_agent::sources::policy_request::RequestReader;

fuzz_target!(|data: &[u8]| {
    let mut reader = RequestReader::default();
    for line in data.split_inclusive(|b| *b == b'\n') {
        if reader.push_line(line).is_err() {
            reader = RequestReader::default();
        }
    }
});
