//! Helpers to declare instruments alike in every binary: counters, duration histograms in
//! seconds with one set of buckets, and attributes.

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

/// Bucket bounds (seconds) for durations from half a millisecond to ten seconds.
pub const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A monotonic counter; Prometheus shows it as `name_total`.
pub fn counter(m: &Meter, name: &'static str, help: &'static str) -> Counter<u64> {
    m.u64_counter(name).with_description(help).build()
}

/// A duration histogram in seconds; Prometheus shows it as `name_seconds`.
pub fn seconds(m: &Meter, name: &'static str, help: &'static str) -> Histogram<f64> {
    m.f64_histogram(name)
        .with_unit("s")
        .with_description(help)
        .with_boundaries(SECONDS_BUCKETS.to_vec())
        .build()
}

/// One attribute.
pub fn kv(key: &'static str, value: impl Into<opentelemetry::Value>) -> KeyValue {
    KeyValue::new(key, value)
}
