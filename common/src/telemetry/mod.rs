//! Telemetry of a process: log lines through `tracing`, metrics through OpenTelemetry (served for
//! Prometheus at `--metrics-listen`, pushed over OTLP when `OTEL_*` asks), and traces over OTLP.
//!
//! One [`Telemetry::init`] per process, inside the Tokio runtime (the OTLP exporters connect
//! lazily on it). Instruments are taken from `opentelemetry::global::meter` after it, so a
//! process without `--metrics-listen` and without an OTLP endpoint records into no-ops.
//!
//! # Layout
//! - [`instruments`]: counters and second histograms declared alike in every binary;
//! - [`logs`]: the stderr layer, text or JSON lines, filtered by `MXREP_LOG`;
//! - [`otlp`]: which `OTEL_*` variables ask for export, and the process's resource;
//! - [`metrics_http`]: the `/metrics` endpoint for Prometheus;
//! - [`propagate`]: the W3C `traceparent` into and out of gRPC metadata and messages.

pub mod instruments;
pub mod logs;
pub mod metrics_http;
pub mod otlp;
pub mod propagate;

pub use logs::LogFormat;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp::Signal;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// What a binary asks of [`Telemetry::init`].
#[derive(Debug, Clone)]
pub struct Options {
    /// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names one.
    pub service: &'static str,
    /// The log filter unless `MXREP_LOG` is set.
    pub default_filter: &'static str,
    pub log_format: LogFormat,
    /// Keep a Prometheus registry (the process serves `/metrics`).
    pub prometheus: bool,
}

/// The process's telemetry; [`Telemetry::shutdown`] flushes what is still buffered.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
}

/// Crates whose spans are exported as traces (others' spans and every log line stay local).
const TRACED_CRATES: [&str; 3] = ["mxrep_node", "mxrep_agent", "mxrep_common"];

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Telemetry {
    /// Installs logging, and metrics and traces as `opts` and the environment ask. Call it once,
    /// inside the Tokio runtime; a second call leaves the first subscriber in place.
    pub fn init(opts: Options) -> anyhow::Result<Self> {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let resource = otlp::resource(opts.service, env_var);
        let tracer = if otlp::requested(Signal::Traces, env_var) {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .context("cannot set up the OTLP trace exporter")?;
            Some(
                SdkTracerProvider::builder()
                    .with_resource(resource.clone())
                    .with_batch_exporter(exporter)
                    .build(),
            )
        } else {
            None
        };
        let otlp_metrics = otlp::requested(Signal::Metrics, env_var);
        let registry = opts.prometheus.then(prometheus::Registry::new);
        let meter = if otlp_metrics || registry.is_some() {
            let mut b = SdkMeterProvider::builder().with_resource(resource);
            if let Some(r) = &registry {
                let reader = opentelemetry_prometheus::exporter()
                    .with_registry(r.clone())
                    .scope_info_enabled(false)
                    .build()
                    .context("cannot set up the Prometheus exporter")?;
                b = b.with_reader(reader);
            }
            if otlp_metrics {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .build()
                    .context("cannot set up the OTLP metric exporter")?;
                b = b.with_periodic_exporter(exporter);
            }
            let mp = b.build();
            opentelemetry::global::set_meter_provider(mp.clone());
            Some(mp)
        } else {
            None
        };
        let traces = tracer.as_ref().map(|tp| {
            let targets = TRACED_CRATES
                .iter()
                .fold(Targets::new(), |t, c| t.with_target(*c, LevelFilter::INFO));
            tracing_opentelemetry::layer()
                .with_tracer(tp.tracer(opts.service))
                .with_filter(targets)
        });
        let _ = tracing_subscriber::registry()
            .with(logs::layer(opts.log_format, opts.default_filter))
            .with(traces)
            .try_init();
        Ok(Self {
            tracer,
            meter,
            registry,
        })
    }

    /// The registry `/metrics` serves, when `Options::prometheus` asked for one.
    pub fn registry(&self) -> Option<prometheus::Registry> {
        self.registry.clone()
    }

    /// Runs `main` with telemetry set up as `opts` asks (it gets the `/metrics` registry), then
    /// flushes what is still buffered, whatever `main` returned.
    pub async fn around<T, Fut>(
        opts: Options,
        main: impl FnOnce(Option<prometheus::Registry>) -> Fut,
    ) -> anyhow::Result<T>
    where
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let telemetry = Self::init(opts)?;
        let result = main(telemetry.registry()).await;
        telemetry.shutdown();
        result
    }

    /// Exports what is still buffered and stops the exporters.
    pub fn shutdown(self) {
        if let Some(tp) = self.tracer {
            if let Err(e) = tp.shutdown() {
                tracing::warn!("trace export did not finish: {e}");
            }
        }
        if let Some(mp) = self.meter {
            if let Err(e) = mp.shutdown() {
                tracing::debug!("metric export did not finish: {e}");
            }
        }
    }
}
