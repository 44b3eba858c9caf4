//! The W3C trace context between processes: a span's `traceparent` into gRPC metadata (one per
//! call) or into a message field (one per streamed item, such as an event batch or a ban change,
//! since gRPC metadata exists only once per stream), and back out as a span's parent.
//!
//! Without an OTLP trace exporter spans have no OpenTelemetry context: nothing is written, and a
//! received `traceparent` is ignored.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use std::collections::HashMap;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: &str = "traceparent";

/// `span`'s context as a `traceparent` value; empty when the span is not traced.
pub fn traceparent(span: &tracing::Span) -> String {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return String::new();
    }
    let mut fields: HashMap<String, String> = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut fields));
    fields.remove(TRACEPARENT).unwrap_or_default()
}

/// Makes the context in `traceparent` the parent of `span` (call before entering it); an empty
/// or malformed value leaves the span a root.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let fields = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&fields));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Writes `span`'s context into the metadata of an outgoing call.
pub fn inject(span: &tracing::Span, metadata: &mut MetadataMap) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut MetadataInjector(metadata))
        });
    }
}

/// Makes the context in an incoming call's metadata the parent of `span`.
pub fn parent_from(span: &tracing::Span, metadata: &MetadataMap) {
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetadataExtractor(metadata)));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    fn traced() -> impl tracing::Subscriber + Send + Sync {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let tp = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tp.tracer("test")))
    }

    #[test]
    fn a_child_in_another_process_keeps_the_trace_id() {
        tracing::subscriber::with_default(traced(), || {
            let parent = tracing::info_span!("parent");
            let tp = traceparent(&parent);
            assert_eq!(tp.len(), 55, "{tp}");
            assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
            let mut md = MetadataMap::new();
            inject(&parent, &mut md);
            assert_eq!(md.get("traceparent").unwrap().to_str().unwrap(), tp);

            let child = tracing::info_span!("child");
            parent_from(&child, &md);
            let c = traceparent(&child);
            assert_eq!(c[3..35], tp[3..35], "same trace id");
            assert_ne!(c[36..52], tp[36..52], "its own span id");

            let other = tracing::info_span!("other");
            set_parent(&other, &tp);
            assert_eq!(traceparent(&other)[3..35], tp[3..35]);
        });
    }

    #[test]
    fn garbage_and_untraced_spans_give_nothing() {
        let plain = tracing::info_span!("untraced");
        assert_eq!(traceparent(&plain), "");
        tracing::subscriber::with_default(traced(), || {
            let s = tracing::info_span!("root");
            let before = traceparent(&s);
            set_parent(&s, "00-zz-not-a-context");
            set_parent(&s, "");
            assert_eq!(traceparent(&s)[3..35], before[3..35]);
        });
    }
}
