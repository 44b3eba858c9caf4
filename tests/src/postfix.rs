//! One real Postfix instance in a network namespace, configured for the test bed: its own
//! config, queue and data directories, its log in a file, mail for `mx.test` to /dev/null, and
//! the agent's policy service at RCPT.

use crate::netns::sh;
use crate::testbed::POLICY_PORT;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One real Postfix instance in a namespace (own config, queue and data dirs; log to a file).
pub struct Postfix {
    pub ns: String,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Postfix {
    /// Configures and starts Postfix for `name` (e.g. "mx1") listening on `addr`.
    pub fn start(ns: &str, top: &Path, name: &str, addr: &str) -> Self {
        let d = top.join(name);
        for sub in ["etc", "spool", "data"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let ds = d.display().to_string();
        sh(&[
            "chown",
            "root:root",
            &ds,
            &format!("{ds}/etc"),
            &format!("{ds}/spool"),
        ]);
        sh(&["chown", "postfix:postfix", &format!("{ds}/data")]);
        sh(&["chmod", "700", &format!("{ds}/data")]);
        sh(&["chmod", "755", &ds, &top.display().to_string()]);
        std::fs::copy("/usr/share/postfix/main.cf.debian", d.join("etc/main.cf"))
            .expect("Postfix is not installed (apt-get install postfix)");
        std::fs::copy("/etc/postfix/master.cf", d.join("etc/master.cf"))
            .expect("/etc/postfix/master.cf");
        std::fs::write(
            d.join("etc/aliases"),
            "devnull: /dev/null\npostmaster: devnull\nroot: devnull\nuser: devnull\n",
        )
        .unwrap();
        let log = d.join("maillog");
        let etc = format!("{ds}/etc");
        let settings = [
            format!("queue_directory = {ds}/spool"),
            format!("data_directory = {ds}/data"),
            format!("maillog_file_prefixes = /var, /dev/stdout, {}", top.display()),
            format!("maillog_file = {}", log.display()),
            format!("syslog_name = postfix-{name}"),
            format!("myhostname = {name}.test"),
            // mx.test: the domain all three MX hosts serve, as a real domain's MX records do.
            "mydestination = $myhostname, localhost, mx.test".into(),
            format!("inet_interfaces = {addr}"),
            "inet_protocols = ipv4".into(),
            "mynetworks = 127.0.0.0/8".into(),
            format!("alias_maps = hash:{etc}/aliases"),
            format!("alias_database = hash:{etc}/aliases"),
            "smtpd_peername_lookup = no".into(),
            format!("smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, check_policy_service inet:127.0.0.1:{POLICY_PORT}"),
            "smtpd_policy_service_default_action = DUNNO".into(),
        ];
        let mut args = vec!["ip", "netns", "exec", ns, "postconf", "-c", &etc, "-e"];
        let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
        args.extend(refs);
        sh(&args);
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "postalias",
            "-c",
            &etc,
            &format!("hash:{etc}/aliases"),
        ]);
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "env",
                &format!("MAIL_CONFIG={etc}"),
                "/usr/lib/postfix/configure-instance.sh",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "configure-instance.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "postfix", "-c", &etc, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Postfix did not start in {ns}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            ns: ns.into(),
            dir: d,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Changes `settings` (`name = value`) and reloads.
    pub fn reconfigure(&self, settings: &[&str]) {
        let etc = format!("{}/etc", self.dir.display());
        let mut args = vec![
            "ip", "netns", "exec", &self.ns, "postconf", "-c", &etc, "-e",
        ];
        args.extend(settings);
        sh(&args);
        sh(&[
            "ip", "netns", "exec", &self.ns, "postfix", "-c", &etc, "reload",
        ]);
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let etc = format!("{}/etc", self.dir.display());
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "postfix", "-c", &etc, "stop"])
            .output();
    }
}
