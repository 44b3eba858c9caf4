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

/// The length of a value's encoding, counted without building it.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, postcard::Error> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counted_length_is_the_encodings() {
        let value = (
            vec!["mx1".to_string(); 3],
            300u64,
            Some(-7i64),
            vec![1u32; 1000],
        );
        assert_eq!(
            super::encoded_len(&value).unwrap(),
            super::encode(&value).unwrap().len()
        );
    }
}
