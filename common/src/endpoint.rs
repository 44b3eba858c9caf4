//! A gRPC endpoint to a node (API or peer port): short connect timeout, no Nagle, and HTTP/2
//! keepalives, because a node cut off the network never closes a stream by itself.

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The endpoint for `addr` (HOST:PORT), not yet connected; mTLS with the process's client
/// identity when one is set ([`crate::tls::use_for_clients`]).
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let tls = crate::tls::client_files();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut e = Endpoint::from_shared(format!("{scheme}://{addr}"))?;
    if let Some(files) = tls {
        let host = crate::addr::host_of(addr);
        // A file that cannot be read now fails the connection, with the reason in the log.
        match files.client_config(host) {
            Ok(cfg) => e = e.tls_config(cfg)?,
            Err(err) => tracing::warn!("TLS client setup for {addr}: {err:#}"),
        }
    }
    Ok(e.connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true))
}

/// Connects to `addr` (HOST:PORT).
pub async fn connect(addr: &str) -> Result<Channel, tonic::transport::Error> {
    endpoint(addr)?.connect().await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn refused_connection_is_an_error_not_a_hang() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        assert!(super::connect(&addr).await.is_err());
        assert!(super::endpoint("not a uri at all").is_err());
    }
}
