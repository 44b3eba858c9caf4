//! The Helm chart in deploy/helm/mxrep: `helm lint --strict`, `helm template` for the default
//! values and for 5 replicas with cert-manager TLS and a ServiceMonitor, each rendering checked
//! by `kubernetes-validate --strict` against a current Kubernetes, and the node arguments the
//! StatefulSet renders: the same three founders whatever the replica count, `--join` through the
//! client Service for the nodes beyond them, `--cluster-size` following the replicas.
//!
//! helm comes from `MXREP_HELM` or the PATH, kubernetes-validate from
//! `MXREP_KUBERNETES_VALIDATE` or the PATH (.ci/run installs both).

use std::path::PathBuf;
use std::process::Command;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/mxrep")
}

/// The tool from `var`, else `name` on the PATH; None (said loudly) when neither is there.
fn tool(var: &str, name: &str) -> Option<String> {
    let path = std::env::var(var).unwrap_or_else(|_| name.to_string());
    let ok = Command::new(&path)
        .arg(if name == "helm" {
            "version"
        } else {
            "--version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(path);
    }
    mxrep_tests::netns::skip_loudly(&format!(
        "the chart test needs {name} (set {var}; .ci/run installs it)"
    ));
    None
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

const FIVE_TLS_MONITORED: &[&str] = &[
    "--set",
    "node.replicas=5",
    "--set",
    "tls.certManager.enabled=true",
    "--set",
    "tls.certManager.issuerRef.name=mxrep-ca",
    "--set",
    "metrics.serviceMonitor.enabled=true",
];

fn render(helm: &str, set: &[&str]) -> String {
    run(Command::new(helm)
        .args([
            "template",
            "mail",
            chart().to_str().unwrap(),
            "--namespace",
            "mx",
        ])
        .args(set))
}

/// The node container's arguments (`- --name=value` items of the StatefulSet's rendering).
fn node_args(helm: &str, set: &[&str]) -> Vec<String> {
    let mut only = vec!["--show-only", "templates/node-statefulset.yaml"];
    only.extend_from_slice(set);
    render(helm, &only)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|a| format!("--{a}"))
        .collect()
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
}

#[test]
fn chart_lints_renders_valid_manifests_and_the_node_arguments_follow_the_replicas() {
    let Some(helm) = tool("MXREP_HELM", "helm") else {
        return;
    };
    let Some(validate) = tool("MXREP_KUBERNETES_VALIDATE", "kubernetes-validate") else {
        return;
    };
    run(Command::new(&helm).args(["lint", "--strict", chart().to_str().unwrap()]));
    run(Command::new(&helm)
        .args(["lint", "--strict", chart().to_str().unwrap()])
        .args(FIVE_TLS_MONITORED));

    let dir = tempfile::tempdir().unwrap();
    for (name, set) in [("default", &[][..]), ("five", FIVE_TLS_MONITORED)] {
        let rendered = render(&helm, set);
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let out = run(Command::new(&validate).arg("--strict").arg(&file));
        for kind in ["statefulset", "daemonset", "service", "poddisruptionbudget"] {
            assert!(
                out.contains(&format!("passed for resource {kind}/")),
                "{name}: no {kind} validated:\n{out}"
            );
        }
        assert!(!out.contains("ERROR"), "{name}:\n{out}");
    }

    let founders = "1=mail-mxrep-0.mail-mxrep-peer.mx.svc.cluster.local:7401,\
                    2=mail-mxrep-1.mail-mxrep-peer.mx.svc.cluster.local:7401,\
                    3=mail-mxrep-2.mail-mxrep-peer.mx.svc.cluster.local:7401";
    for (replicas, set) in [(3, &[][..]), (5, FIVE_TLS_MONITORED)] {
        let args = node_args(&helm, set);
        assert_eq!(
            arg(&args, "--peers"),
            Some(founders),
            "{replicas}: {args:?}"
        );
        assert_eq!(
            arg(&args, "--join"),
            Some("mail-mxrep.mx.svc.cluster.local:7400"),
            "{replicas}"
        );
        assert_eq!(
            arg(&args, "--cluster-size"),
            Some(replicas.to_string().as_str())
        );
        assert!(args.iter().any(|a| a == "--id-from-hostname"));
        assert_eq!(
            arg(&args, "--advertise-peer"),
            Some("$(POD_NAME).mail-mxrep-peer.mx.svc.cluster.local:7401")
        );
        assert_eq!(arg(&args, "--tls-ca"), Some("/etc/mxrep/tls/ca.crt"));
    }
    // Without TLS the node must be told plainly that it serves plaintext.
    let plain = node_args(&helm, &["--set", "tls.enabled=false"]);
    assert!(plain.iter().any(|a| a == "--insecure-plaintext"));
    assert_eq!(arg(&plain, "--tls-ca"), None);
    // A single trial node founds alone.
    let one = node_args(&helm, &["--set", "node.replicas=1"]);
    assert_eq!(
        arg(&one, "--peers"),
        Some("1=mail-mxrep-0.mail-mxrep-peer.mx.svc.cluster.local:7401")
    );

    // The schema refuses what the chart cannot run.
    for bad in [
        "node.replicas=4",
        "agent.nftTable=bad-name!",
        "image.pullPolicy=Sometimes",
    ] {
        let out = Command::new(&helm)
            .args(["template", "mail", chart().to_str().unwrap(), "--set", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("values don't meet the specifications of the schema"),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
