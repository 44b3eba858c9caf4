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

    /// Puts postscreen in front of smtpd on port 25, with `smtpd_client_port_logging = yes`,
    /// a 1 s greeting wait, and PREGREET and deny-list verdicts enforced; `denylist` (CIDR
    /// lines for `postscreen_access_list`, e.g. "203.0.113.53/32 reject") may be empty.
    pub fn enable_postscreen(&self, denylist: &str) {
        let etc = format!("{}/etc", self.dir.display());
        std::fs::write(format!("{etc}/psal.cidr"), denylist).unwrap();
        for service in [
            "smtp/inet=smtp inet n - y - 1 postscreen",
            "smtpd/pass=smtpd pass - - y - - smtpd",
            "dnsblog/unix=dnsblog unix - - y - 0 dnsblog",
            "tlsproxy/unix=tlsproxy unix - - y - 0 tlsproxy",
        ] {
            sh(&[
                "ip", "netns", "exec", &self.ns, "postconf", "-c", &etc, "-M", service,
            ]);
        }
        let access = format!("postscreen_access_list = permit_mynetworks, cidr:{etc}/psal.cidr");
        self.reconfigure(&[
            "smtpd_client_port_logging = yes",
            "postscreen_greet_wait = 1s",
            "postscreen_greet_action = enforce",
            "postscreen_denylist_action = enforce",
            &access,
        ]);
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

/// From `src` in `ns`: connect to port 25 of `server`, optionally say `early` before the
/// banner (a PREGREET to postscreen), then read what comes for a moment and close. False when
/// no connection was made (dropped by a ban, say).
pub fn raw_client(ns: &str, src: &str, server: &str, early: Option<&str>) -> bool {
    let send = early
        .map(|e| format!("s.sendall(b'{e}\\r\\n')"))
        .unwrap_or_default();
    let script = format!(
        "import socket\ns=socket.socket()\ns.bind(('{src}',0))\ns.settimeout(3)\ns.connect(('{server}',25))\n{send}\ntry:\n  s.recv(4096)\nexcept Exception:\n  pass\ns.close()\n"
    );
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
