//! Whether the standard `OTEL_*` variables ask for OTLP export, and the exporters when they do.
//!
//! The Rust SDK reads the endpoint, headers, timeout, compression, service name, resource
//! attributes and sampler from the environment itself; it does not read `OTEL_SDK_DISABLED` or
//! `OTEL_{TRACES,METRICS}_EXPORTER`, so those are honoured here. With no endpoint variable set
//! nothing is exported and no connection is attempted.

use opentelemetry_sdk::Resource;

/// A signal that may be exported over OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }
}

/// Does the environment `var` ask for OTLP export of `signal`?
pub fn requested(signal: Signal, var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let is =
        |name: &str, value: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    if is("OTEL_SDK_DISABLED", "true") {
        return false;
    }
    let exporter = format!("OTEL_{}_EXPORTER", signal.upper());
    if var(&exporter).is_some_and(|v| !v.split(',').any(|e| e.trim() == "otlp")) {
        return false;
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || set(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.upper()))
}

/// The process's resource: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` as given, with
/// `service` as the service name when neither names one.
pub fn resource(service: &str, var: impl Fn(&str) -> Option<String>) -> Resource {
    let named = var("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| v.contains("service.name="));
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(service.to_string()).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn nothing_is_exported_unless_an_endpoint_is_set() {
        assert!(!requested(Signal::Traces, env(&[])));
        assert!(!requested(
            Signal::Traces,
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])
        ));
        let general = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]);
        assert!(requested(Signal::Traces, &general));
        assert!(requested(Signal::Metrics, &general));
        let traces_only = env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317")]);
        assert!(requested(Signal::Traces, &traces_only));
        assert!(!requested(Signal::Metrics, &traces_only));
    }

    #[test]
    fn disabled_and_exporter_none_are_honoured() {
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")];
        let with = |extra: (&'static str, &'static str)| {
            let mut v = base.to_vec();
            v.push(extra);
            env(&v)
        };
        assert!(!requested(
            Signal::Traces,
            with(("OTEL_SDK_DISABLED", "TRUE"))
        ));
        assert!(!requested(
            Signal::Metrics,
            with(("OTEL_METRICS_EXPORTER", "none"))
        ));
        assert!(requested(
            Signal::Traces,
            with(("OTEL_METRICS_EXPORTER", "none"))
        ));
        assert!(requested(
            Signal::Traces,
            with(("OTEL_TRACES_EXPORTER", "console,otlp"))
        ));
    }
}
