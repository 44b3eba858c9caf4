//! The one binary encoding of everything Raft stores and sends: log entries and votes in sled,
//! snapshots, and the payloads of the peer service. postcard (compact, varint integers) keeps a
//! flush of thousands of per-address deltas small on disk and on the wire; JSON made them several
//! times larger and dominated the cost of ingest.

use serde::{de::DeserializeOwned, Serialize};

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
}

/// Decodes a value; malformed bytes are an error, never a panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}
