//! How the agent reaches a cluster node: one gRPC channel per stream (events up, ban list down),
//! with HTTP/2 keepalives, because a node cut off the network never closes a stream by itself.

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Connects to the node API at `addr` (HOST:PORT).
pub async fn connect(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .connect()
        .await
}
