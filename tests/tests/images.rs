//! The container images deploy/images/build makes with buildah, run as they are: each reports
//! its version; the node image (with `--dev`) serves
//! and answers gRPC health; the agent image's one binary runs `check-log` on the repo's
//! fixture; neither holds a shell; the OCI labels and users are the ones the chart relies on.
//! Run with `buildah run --isolation chroot` (no daemon, no cgroups needed), the way CI can.

use mxrep_tests::*;
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn image(name: &str) -> String {
    format!("localhost/{name}:{VERSION}")
}

/// True when both images are there; otherwise says how to build them (fails under
/// `MXREP_REQUIRE_E2E=1`).
fn images_built() -> bool {
    let there = ["mxrep-node", "mxrep-agent"].iter().all(|n| {
        Command::new("buildah")
            .args(["inspect", "--type", "image", &image(n)])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if there {
        return true;
    }
    mxrep_tests::netns::skip_loudly(
        "the image test needs the images (deploy/images/build, as root with buildah)",
    );
    false
}

/// A working container of `image`, removed on drop.
struct Container(String);

impl Container {
    fn of(image: &str) -> Self {
        let out = run_ok(Command::new("buildah").args(["from", image]));
        Self(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn run(&self, extra: &[&str], argv: &[&str]) -> Command {
        let mut c = Command::new("buildah");
        c.args(["run", "--isolation", "chroot"])
            .args(extra)
            .arg(&self.0)
            .arg("--")
            .args(argv);
        c
    }

    fn config(&self, image: &str, format: &str) -> String {
        let out = run_ok(
            Command::new("buildah").args(["inspect", "--type", "image", "--format", format, image]),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("buildah").args(["rm", &self.0]).output();
    }
}

fn health(addr: &str, service: &str) -> Option<i32> {
    let rt = tokio::runtime::Runtime::new().ok()?;
    rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        let r = HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()?;
        Some(r.into_inner().status)
    })
}

#[test]
fn both_images_run_report_their_version_and_do_their_job() {
    let _g = serial();
    if !images_built() {
        return;
    }
    let node = Container::of(&image("mxrep-node"));
    for bin in ["/mxrep-node", "/mxrepctl"] {
        let out = run_ok(&mut node.run(&[], &[bin, "--version"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains(VERSION));
    }
    let agent = Container::of(&image("mxrep-agent"));
    let out = run_ok(&mut agent.run(&[], &["/mxrep-agent", "--version"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mxrep-agent {VERSION}")
    );

    // One static binary each: no shell to run.
    for c in [&node, &agent] {
        let sh = c.run(&[], &["/bin/sh", "-c", "true"]).output().unwrap();
        assert!(!sh.status.success(), "a shell ran in {}", c.0);
    }
    // What the chart relies on: the node's user and data folder, the OCI version label.
    assert_eq!(
        node.config(&image("mxrep-node"), "{{.OCIv1.Config.User}}"),
        "65532:65532"
    );
    assert_eq!(
        node.config(&image("mxrep-node"), "{{.OCIv1.Config.WorkingDir}}"),
        "/data"
    );
    for n in ["mxrep-node", "mxrep-agent"] {
        let v = node.config(
            &image(n),
            "{{index .OCIv1.Config.Labels \"org.opencontainers.image.version\"}}",
        );
        assert_eq!(v, VERSION, "{n}");
    }

    // The agent image reads the repo's Postfix fixture.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mount = format!("{}:/in:ro", fixtures.display());
    let out = run_ok(&mut agent.run(
        &["-v", &mount],
        &["/mxrep-agent", "check-log", "/in/postfix-3.7-maillog.log"],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lines about a client understood: 100.0 %"),
        "{text}"
    );

    // The node image with --dev serves and answers health (host network under chroot isolation).
    let (api, peer, probe) = (free_port(), free_port(), free_port());
    let mut child = node
        .run(
            &[],
            &[
                "/mxrep-node",
                "--dev",
                "--api-listen",
                &format!("127.0.0.1:{api}"),
                "--peer-listen",
                &format!("127.0.0.1:{peer}"),
                "--health-listen",
                &format!("127.0.0.1:{probe}"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api_addr = format!("127.0.0.1:{api}");
    let ready = std::panic::catch_unwind(|| {
        wait_until(Duration::from_secs(30), "the node image to serve", || {
            (health(&api_addr, "mxrep.v1.Admin")? == ServingStatus::Serving as i32).then_some(())
        });
        wait_until(
            Duration::from_secs(30),
            "the node image to be ready",
            || {
                (health(&format!("127.0.0.1:{probe}"), "readiness")?
                    == ServingStatus::Serving as i32)
                    .then_some(())
            },
        );
    });
    // The node inside runs under buildah; stop the whole group.
    let _ = Command::new("pkill")
        .args(["-TERM", "-f", &format!("api-listen 127.0.0.1:{api}")])
        .status();
    let _ = child.wait();
    if let Err(e) = ready {
        std::panic::resume_unwind(e);
    }
}
