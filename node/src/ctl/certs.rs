//! `mxrepctl certs init DIR [--san NAME]…`: a certificate authority and the four kinds of
//! certificate a first cluster needs (and tests use), each naming its role in the Subject
//! Organization: `node` (mxrep:node; server and client, with the SANs given plus localhost and
//! 127.0.0.1), `admin`, `reader` and `agent` (clients). Files are PEM: `ca.pem`, and
//! `KIND.pem` + `KIND-key.pem` (keys readable by the owner only). Existing files are never
//! overwritten. Keep `ca-key.pem` offline once the certificates are made.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a CA and node, admin, reader and agent certificates in DIR.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder for the files (created if missing).
    pub dir: PathBuf,
    /// A name or address the nodes are reached at (repeat for each; localhost and 127.0.0.1
    /// are always included).
    #[arg(long = "san")]
    pub sans: Vec<String>,
}

/// The certificates made, by file name and role.
const KINDS: [(&str, &str); 4] = [
    ("node", "mxrep:node"),
    ("admin", "mxrep:admin"),
    ("reader", "mxrep:reader"),
    ("agent", "mxrep:agent"),
];

pub fn run(out: &super::Output, cmd: CertsCommand) -> anyhow::Result<()> {
    let CertsCommand::Init(a) = cmd;
    let written = init(&a.dir, &a.sans)?;
    if out.json {
        out.json(serde_json::json!({ "dir": a.dir, "files": written }));
    } else {
        println!("in {}: {}", a.dir.display(), written.join(", "));
        println!("node:   --tls-ca ca.pem --tls-cert node.pem --tls-key node-key.pem");
        println!("agent:  --tls-ca ca.pem --tls-cert agent.pem --tls-key agent-key.pem");
        println!("mxrepctl (admin or reader): --tls-ca ca.pem --tls-cert admin.pem --tls-key admin-key.pem");
    }
    Ok(())
}

/// Writes the CA and the four certificates into `dir`; returns the files written.
pub fn init(dir: &Path, sans: &[String]) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = vec!["ca.pem".to_string(), "ca-key.pem".to_string()];
    for (kind, _) in KINDS {
        names.push(format!("{kind}.pem"));
        names.push(format!("{kind}-key.pem"));
    }
    if let Some(existing) = names.iter().find(|n| dir.join(n).exists()) {
        anyhow::bail!(
            "{} already exists: certs init never overwrites (remove the old files first)",
            dir.join(existing).display()
        );
    }
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mxrep certificate authority");
    ca.distinguished_name
        .push(DnType::OrganizationName, "mxrep");
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    write(dir, "ca-key.pem", &ca_key.serialize_pem(), true)?;
    write(dir, "ca.pem", &ca_pem, false)?;
    let issuer = Issuer::new(ca, ca_key);
    for (kind, role) in KINDS {
        let names: Vec<String> = if kind == "node" {
            let mut v = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            v.extend(sans.iter().cloned());
            v
        } else {
            vec![]
        };
        let mut p = CertificateParams::new(names)
            .with_context(|| format!("a SAN of the {kind} certificate is not a name or address"))?;
        p.distinguished_name.push(DnType::CommonName, kind);
        p.distinguished_name.push(DnType::OrganizationName, role);
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        if kind == "node" {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        let key = KeyPair::generate()?;
        let pem = p.signed_by(&key, &issuer)?.pem();
        write(dir, &format!("{kind}-key.pem"), &key.serialize_pem(), true)?;
        write(dir, &format!("{kind}.pem"), &pem, false)?;
    }
    Ok(names)
}

fn write(dir: &Path, name: &str, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::roles::{role_of, Role};

    #[test]
    fn makes_every_role_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), &["10.0.0.11".into(), "node1.mxrep".into()]).unwrap();
        assert_eq!(files.len(), 10);
        for (kind, role) in [
            ("node", Role::Node),
            ("admin", Role::Admin),
            ("reader", Role::Reader),
            ("agent", Role::Agent),
        ] {
            let pem = std::fs::read_to_string(dir.path().join(format!("{kind}.pem"))).unwrap();
            let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .unwrap()
                .1
                .contents;
            assert_eq!(role_of(&[der]).unwrap().0, role, "{kind}");
        }
        let err = init(dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("never overwrites"), "{err}");
    }
}
