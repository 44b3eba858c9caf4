//! Mutual TLS for every mxrep process: the three files (`--tls-ca`, `--tls-cert`, `--tls-key`)
//! — a node's servers read them in `mxrep_node::tls_accept` — and the one client identity a
//! process uses for every connection it opens ([`use_for_clients`], read by
//! [`crate::endpoint`]). The files are read again for every new connection, so renewed
//! certificates (cert-manager) are picked up without a restart by what connects next.

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::RwLock;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The CA that signs every mxrep certificate, and this process's certificate and key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// All three or none: one or two of them is a configuration error.
    pub fn from_parts(
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> anyhow::Result<Option<Self>> {
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(Self { ca, cert, key })),
            (None, None, None) => Ok(None),
            _ => anyhow::bail!("--tls-ca, --tls-cert and --tls-key go together: give all three"),
        }
    }

    fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the {what} {}", path.display()))?;
        anyhow::ensure!(
            String::from_utf8_lossy(&bytes).contains("-----BEGIN"),
            "the {what} {} is not PEM",
            path.display()
        );
        Ok(bytes)
    }

    /// Checks that the files exist and are PEM (a clear error at start, not at first use).
    pub fn check(&self) -> anyhow::Result<()> {
        Self::read(&self.ca, "CA certificate")?;
        Self::read(&self.cert, "certificate")?;
        Self::read(&self.key, "private key")?;
        Ok(())
    }

    fn identity(&self) -> anyhow::Result<Identity> {
        Ok(Identity::from_pem(
            Self::read(&self.cert, "certificate")?,
            Self::read(&self.key, "private key")?,
        ))
    }

    fn ca_cert(&self) -> anyhow::Result<Certificate> {
        Ok(Certificate::from_pem(Self::read(
            &self.ca,
            "CA certificate",
        )?))
    }

    /// A client presenting this identity to a server named `host` (checked against its SANs).
    pub fn client_config(&self, host: &str) -> anyhow::Result<ClientTlsConfig> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(self.ca_cert()?)
            .identity(self.identity()?)
            .domain_name(host.to_string()))
    }
}

/// The three flags every mxrep binary takes (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// The CA certificate that signs every mxrep certificate (PEM); with --tls-cert and
    /// --tls-key, connections are mutual TLS.
    #[arg(long, global = true)]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM; its Subject O names its role, e.g. mxrep:agent).
    #[arg(long, global = true)]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, global = true)]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The files, checked (all three or none, readable PEM), with `fallback` (a config file's
    /// keys) for each flag not given.
    pub fn files_or(self, fallback: TlsArgs) -> anyhow::Result<Option<TlsFiles>> {
        let files = TlsFiles::from_parts(
            self.tls_ca.or(fallback.tls_ca),
            self.tls_cert.or(fallback.tls_cert),
            self.tls_key.or(fallback.tls_key),
        )?;
        if let Some(f) = &files {
            f.check()?;
        }
        Ok(files)
    }
}

static CLIENT: RwLock<Option<TlsFiles>> = RwLock::new(None);

/// Makes every connection this process opens (through [`crate::endpoint`]) use mTLS with `files`.
pub fn use_for_clients(files: Option<TlsFiles>) {
    *CLIENT.write().unwrap_or_else(|p| p.into_inner()) = files;
}

/// The client identity set for this process, if any.
pub fn client_files() -> Option<TlsFiles> {
    CLIENT.read().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_or_none() {
        assert_eq!(TlsFiles::from_parts(None, None, None).unwrap(), None);
        let p = |s: &str| Some(PathBuf::from(s));
        let err = TlsFiles::from_parts(p("ca"), None, p("key")).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        let files = TlsFiles::from_parts(p("/nonexistent/ca"), p("c"), p("k"))
            .unwrap()
            .unwrap();
        let err = files.check().unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca"), "{err:#}");
    }
}
