//! The `/metrics` endpoint: the process's OpenTelemetry instruments in Prometheus's text format,
//! on its own plain-HTTP port (`--metrics-listen`), apart from the mTLS gRPC ports.

use crate::shutdown::Shutdown;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::Encoder as _;
use tokio::net::TcpListener;

/// Renders everything `registry` holds in the text exposition format.
pub fn render(registry: &prometheus::Registry) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Serves `GET /metrics` from `registry` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    registry: prometheus::Registry,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    match render(&registry) {
                        Ok(body) => (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                            body,
                        )
                            .into_response(),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                    }
                }
            }),
        )
        .route("/", get(|| async { "mxrep metrics: GET /metrics\n" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

/// Binds `addr` and serves `/metrics` in the background; the error names the address.
pub async fn spawn(
    addr: std::net::SocketAddr,
    registry: prometheus::Registry,
    shutdown: Shutdown,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, registry, shutdown).await {
            tracing::warn!("the metrics endpoint stopped: {e}");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn serves_the_registry_in_text_format() {
        let registry = prometheus::Registry::new();
        let c = prometheus::IntCounter::new("mxrep_test_things_total", "Things.").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let (stop, stopping) = crate::shutdown::channel();
        let addr = spawn("127.0.0.1:0".parse().unwrap(), registry, stopping)
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("text/plain; version=0.0.4"), "{out}");
        assert!(out.contains("mxrep_test_things_total 3"), "{out}");
        stop.fire();
    }
}
