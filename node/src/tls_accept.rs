//! The accepting side of both ports. With TLS: accepts TCP connections and completes each handshake (in its own
//! task, with a deadline, so a slow or hostile client never holds up the next), with a rustls
//! configuration that requires a client certificate from the CA. The three files are checked
//! for changes before every handshake and read again when one changed — a certificate renewed
//! by cert-manager is used by the next connection, without a restart; a renewal that cannot be
//! read keeps the last good configuration and says so in the log.
//!
//! tonic sees `tokio_rustls` streams and puts the peer's chain in each request's extensions, as
//! with its own TLS, so `api::roles` reads roles the same way.

use anyhow::Context as _;
use mxrep_common::lock::MutexExt as _;
use mxrep_common::tls::TlsFiles;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// Longest a client may take to complete the handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The files, and the configuration made from them when they last changed.
pub struct ReloadingTls {
    files: TlsFiles,
    current: Mutex<(Vec<Option<SystemTime>>, Arc<ServerConfig>)>,
}

impl ReloadingTls {
    /// Reads the files now: a node does not start on certificates it cannot use.
    pub fn new(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let config = server_config(&files)?;
        let stamps = stamps(&files);
        Ok(Arc::new(Self {
            files,
            current: Mutex::new((stamps, config)),
        }))
    }

    /// The configuration for the next handshake, read again if a file changed.
    pub fn config(&self) -> Arc<ServerConfig> {
        let now = stamps(&self.files);
        let mut cur = self.current.locked();
        if now != cur.0 {
            match server_config(&self.files) {
                Ok(config) => {
                    tracing::info!("TLS: certificate files changed; new connections use them");
                    *cur = (now, config);
                }
                Err(e) => {
                    tracing::warn!("TLS: changed certificate files unusable, keeping the last good ones: {e:#}");
                    cur.0 = now;
                }
            }
        }
        cur.1.clone()
    }

    /// Completed TLS connections from `listener`, for tonic's `serve_with_incoming`.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(self.config());
                if tx.is_closed() {
                    return;
                }
                let out = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = out.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} refused: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Plain TCP connections from `listener` (`--dev`, `--insecure-plaintext`), with TCP_NODELAY as
/// on the TLS side: without it, small acknowledgements wait on Nagle and delayed ACKs, and an
/// agent's stream of batches slows to a third (found by `e2e-bench`).
pub fn plaintext(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        let tcp = conn?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    })
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [&files.ca, &files.cert, &files.key]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A server configuration requiring a client certificate from the CA, speaking HTTP/2.
fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&files.ca)
        .with_context(|| format!("cannot read the CA certificate {}", files.ca.display()))?
    {
        roots.add(ca.context("a CA certificate that is not PEM")?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("no usable CA certificate")?;
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read the certificate {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .context("a certificate that is not PEM")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read the private key {}", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
