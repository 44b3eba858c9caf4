//! Mutual TLS with roles, end to end: a node started with certificates from `mxrepctl certs
//! init`, and clients holding each kind of certificate. No certificate, an untrusted CA or an
//! expired certificate never get past the handshake; a reader queries but cannot ban
//! (`PERMISSION_DENIED` naming the role needed); an agent follows the ban list but calls no
//! admin method; an admin does everything. A node asked to serve plaintext on a non-loopback
//! address refuses to start without `--insecure-plaintext`.

use mxrep_proto::v1 as pb;
use mxrep_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const LIMIT: Duration = Duration::from_secs(30);

use mxrep_tests::ctl::ctl_as;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// A channel to `api` with `tls`, or the connection error's text.
fn connect(
    rt: &tokio::runtime::Runtime,
    api: &str,
    tls: ClientTlsConfig,
) -> Result<pb::admin_client::AdminClient<tonic::transport::Channel>, String> {
    rt.block_on(async {
        let ch = Endpoint::from_shared(format!("https://{api}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let mut c = pb::admin_client::AdminClient::new(ch);
        // The handshake completes on the first call.
        c.status(pb::StatusRequest {})
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(c)
    })
}

#[test]
fn roles_from_certificates_and_refusals_at_the_handshake() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = mxrep_tests::ctl::certs_init(dir.path(), &[]);
    let node = NodeProc::single_tls(dir.path(), &pki);
    let api = node.api.clone();

    // Admin: everything.
    let out = ctl_as(
        &api,
        &pki,
        "admin",
        &["ban", "192.0.2.7", "--for", "1h", "--reason", "test"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reader: queries, no writes.
    let out = ctl_as(&api, &pki, "reader", &["bans", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("192.0.2.7"));
    let out = ctl_as(&api, &pki, "reader", &["unban", "192.0.2.7"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("needs the role mxrep:admin") && err.contains("mxrep:reader"),
        "{err}"
    );
    // Agent: no admin call.
    let out = ctl_as(&api, &pki, "agent", &["status"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("needs the role"),
        "{err}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = Certificate::from_pem(read(&pki, "ca.pem"));
    let id = |kind: &str| {
        Identity::from_pem(
            read(&pki, &format!("{kind}.pem")),
            read(&pki, &format!("{kind}-key.pem")),
        )
    };
    let tls = || {
        ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("127.0.0.1")
    };
    // The agent follows the ban list over mTLS.
    rt.block_on(async {
        let ch = Endpoint::from_shared(format!("https://{api}"))
            .unwrap()
            .tls_config(tls().identity(id("agent")))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut stream = pb::agent_client::AgentClient::new(ch)
            .watch_bans(pb::WatchBansRequest { from_version: 0, mx_host: "mx1".into() })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert!(matches!(first.update, Some(pb::ban_update::Update::Snapshot(ref s)) if s.bans.len() == 1), "{first:?}");
    });
    // Health checking is open to any authenticated client, an agent included.
    rt.block_on(async {
        let ch = Endpoint::from_shared(format!("https://{api}"))
            .unwrap()
            .tls_config(tls().identity(id("agent")))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let health = tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, 1, "SERVING");
    });
    // No certificate: refused at the handshake.
    let e = connect(&rt, &api, tls()).unwrap_err();
    assert!(
        !e.contains("PermissionDenied"),
        "refused before any method: {e}"
    );
    // A certificate from another CA: refused.
    let other = dir.path().join("other");
    assert!(
        ctl("127.0.0.1:1", &["certs", "init", other.to_str().unwrap()])
            .status
            .success()
    );
    let foreign = Identity::from_pem(read(&other, "admin.pem"), read(&other, "admin-key.pem"));
    assert!(connect(&rt, &api, tls().identity(foreign)).is_err());
    // An expired certificate from the right CA: refused.
    let ca_key = rcgen::KeyPair::from_pem(&read(&pki, "ca-key.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read(&pki, "ca.pem"), ca_key).unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "mxrep:admin");
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let key = rcgen::KeyPair::generate().unwrap();
    let expired = p.signed_by(&key, &issuer).unwrap().pem();
    assert!(connect(
        &rt,
        &api,
        tls().identity(Identity::from_pem(expired, key.serialize_pem()))
    )
    .is_err());
    // The admin, for contrast, gets through the same way.
    assert!(connect(&rt, &api, tls().identity(id("admin"))).is_ok());
    // mxrepctl without certificates cannot talk to it either.
    assert!(!ctl(&api, &["status"]).status.success());
}

#[test]
fn plaintext_on_a_non_loopback_address_needs_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = Command::new(bin("mxrep-node"))
        .args(["--id", "1", "--api-listen", &format!("0.0.0.0:{port}")])
        .args(["--peer-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve plaintext on 0.0.0.0")
            && err.contains("--insecure-plaintext"),
        "{err}"
    );
}

#[test]
fn a_three_node_cluster_runs_raft_over_mtls() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = mxrep_tests::ctl::certs_init(dir.path(), &[]);
    let tls = mxrep_tests::node_proc::tls_config(&pki);
    let c = TestCluster::start_with(3, Tuning::default(), |_| tls.clone());
    let leader_of = |id: u64| {
        let out = ctl_as(&c.node(id).api, &pki, "reader", &["--json", "status"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["leader_id"].as_u64()
    };
    wait_until(LIMIT, "one leader named by all three", || {
        let l = leader_of(1)?;
        (leader_of(2) == Some(l) && leader_of(3) == Some(l)).then_some(l)
    });
    // A write on any node reaches the leader over the peer port, and every node applies it.
    for id in 1..=3 {
        let p = format!("198.51.100.{id}");
        let out = ctl_as(
            &c.node(id).api,
            &pki,
            "admin",
            &["ban", &p, "--for", "1h", "--reason", "t"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(LIMIT, "every ban on node 3", || {
        let out = ctl_as(&c.node(3).api, &pki, "reader", &["bans", "list"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (1..=3)
            .all(|i| text.contains(&format!("198.51.100.{i}/32")))
            .then_some(())
    });
    // The audit trail says who did it, on every node; a reader may read it.
    let out = ctl_as(&c.node(1).api, &pki, "admin", &["unban", "198.51.100.2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in 1..=3 {
        let trail = wait_until(LIMIT, "the unban in the audit trail", || {
            let out = ctl_as(&c.node(id).api, &pki, "reader", &["--json", "audit"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let entries = v["entries"].as_array()?.clone();
            (entries.len() == 4).then_some(entries)
        });
        for (i, e) in trail.iter().take(3).enumerate() {
            let want = format!("ban 198.51.100.{}/32 for 3600 s: t", i + 1);
            assert_eq!(e["action"], want.as_str(), "{e}");
            assert!(e["actor"].as_str().unwrap().contains("mxrep:admin"), "{e}");
        }
        assert_eq!(trail[3]["action"], "unban 198.51.100.2/32");
        assert!(
            trail[3]["replaced"]
                .as_str()
                .unwrap()
                .contains("ban 198.51.100.2/32"),
            "what the unban replaced: {}",
            trail[3]
        );
    }
    let out = ctl_as(&c.node(2).api, &pki, "reader", &["audit", "--since", "1h"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("unban 198.51.100.2/32") && text.contains("mxrep:admin"),
        "{text}"
    );
    // Every node's log has each entry as one JSON line.
    let log = c.node(3).log_text();
    assert!(
        log.lines().any(|l| l.contains("mxrep_audit") && l.contains(r#""action":"unban 198.51.100.2/32""#)),
        "{log}"
    );
}

#[test]
fn a_renewed_certificate_is_used_by_new_connections_without_a_restart() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pki = mxrep_tests::ctl::certs_init(dir.path(), &[]);
    let node = NodeProc::single_tls(dir.path(), &pki);
    let api = node.api.clone();
    let pid = node.pid();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = Identity::from_pem(read(&pki, "admin.pem"), read(&pki, "admin-key.pem"));
    // A client that knows the node by a name its first certificate does not hold: refused.
    let by_new_name = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&pki, "ca.pem")))
            .identity(admin.clone())
            .domain_name("renewed.mxrep.test")
    };
    assert!(connect(&rt, &api, by_new_name()).is_err());
    // The renewal, as cert-manager writes it: a new certificate (with the new name) and key from
    // the same CA, over the old files.
    let ca_key = rcgen::KeyPair::from_pem(&read(&pki, "ca-key.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read(&pki, "ca.pem"), ca_key).unwrap();
    let names = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "renewed.mxrep.test".into(),
    ];
    let mut p = rcgen::CertificateParams::new(names).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "mxrep:node");
    p.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap().pem();
    for (name, text) in [("node.pem", cert), ("node-key.pem", key.serialize_pem())] {
        let tmp = pki.join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, pki.join(name)).unwrap();
    }
    wait_until(
        LIMIT,
        "a new connection to meet the renewed certificate",
        || connect(&rt, &api, by_new_name()).ok(),
    );
    assert_eq!(node.pid(), pid, "no restart");
    assert!(node.is_running());
    assert!(node.log_text().contains("certificate files changed"));
}
