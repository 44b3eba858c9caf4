//! An agent's event batch off the wire: protobuf decoding, then the node's validation, which
//! accepts, refuses per event, or refuses the batch. Nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxrep_node::ingest::validate::{validate_batch, Limits};
use mxrep_proto::v1::EventBatch;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = EventBatch::decode(data) {
        let _ = validate_batch(&batch, 1_795_000_000_000, &Limits::default());
    }
});
