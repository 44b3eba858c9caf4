//! An OTLP collector in the test process: the `TraceService` and `MetricsService` of the
//! OpenTelemetry protocol over gRPC, keeping every span and metric name it receives.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// `service.name` of the process that sent it.
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// What the collector has received so far.
#[derive(Debug, Default)]
pub struct Received {
    pub spans: Vec<SpanRecord>,
    /// (service, metric name) of every metric data set received.
    pub metrics: Vec<(String, String)>,
}

/// The collector; clones share what was received.
#[derive(Clone, Default)]
pub struct OtlpSink {
    pub received: Arc<Mutex<Received>>,
}

fn service_of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .into_iter()
        .flat_map(|r| r.attributes.iter())
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                Some(s.clone())
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for OtlpSink {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut got = self.received.lock().unwrap_or_else(|p| p.into_inner());
        for rs in req.into_inner().resource_spans {
            let service = service_of(rs.resource.as_ref());
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.spans.push(SpanRecord {
                        service: service.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpSink {
    async fn export(
        &self,
        req: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut got = self.received.lock().unwrap_or_else(|p| p.into_inner());
        for rm in req.into_inner().resource_metrics {
            let service = service_of(rm.resource.as_ref());
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    got.metrics.push((service.clone(), m.name));
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl OtlpSink {
    /// Serves the collector on `listener` until the process ends.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .add_service(MetricsServiceServer::new(self))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    }

    /// Spans and metric data sets received so far.
    pub fn counts(&self) -> (usize, usize) {
        let got = self.received.lock().unwrap_or_else(|p| p.into_inner());
        (got.spans.len(), got.metrics.len())
    }

    /// Serves the collector on a free loopback port on `rt`; returns it and its endpoint URL.
    pub fn start(rt: &tokio::runtime::Runtime) -> (Self, String) {
        let sink = Self::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the OTLP collector");
        let addr = listener.local_addr().expect("collector address");
        rt.spawn(sink.clone().serve(listener));
        (sink, format!("http://{addr}"))
    }

    /// A copy of the spans received so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spans
            .clone()
    }

    /// Has `service` pushed a metric named `name`?
    pub fn has_metric(&self, service: &str, name: &str) -> bool {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .metrics
            .iter()
            .any(|(s, n)| s == service && n == name)
    }
}
