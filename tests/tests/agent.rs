//! mxrep-agent end to end on a real kernel: an MX host (network namespace) runs a node and the
//! agent; Postfix log lines written to the followed file become events, the cluster decides, the
//! ban reaches the host's nftables set, and a real TCP connection to port 25 from a client
//! namespace is dropped. The policy service answers from the agent's view; an agent restart
//! during an active ban never takes the ban out of the kernel.

use mxrep_tests::netns::*;
use mxrep_tests::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn start_agent(mx: &str, api: &str, log: &std::path::Path, state: &std::path::Path) -> Daemon {
    let out = std::fs::File::create(state.with_extension("log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", mx])
        .arg(bin("mxrep-agent"))
        .args([
            "--cluster",
            api,
            "--node-name",
            "mx1",
            "--nft-table",
            "mxe2e",
            // postfix_time() writes UTC stamps, whatever this host's zone.
            "--log-timezone",
            "UTC",
        ])
        .arg("--postfix-log")
        .arg(log)
        .arg("--state-dir")
        .arg(state)
        .args(["--policy-listen", "127.0.0.1:10040"])
        .env("MXREP_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("start mxrep-agent");
    Daemon(child)
}

fn in_ban4(mx: &str, addr: &str) -> bool {
    let out = Command::new("ip")
        .args([
            "netns", "exec", mx, "nft", "-j", "list", "set", "inet", "mxe2e", "ban4",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!("\"{addr}\""))
}

fn append(log: &std::path::Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// "Nov 26 17:06:09" for now, in UTC, as Postfix's maillog_file writes it.
fn postfix_time() -> String {
    let out = Command::new("date")
        .args(["-u", "+%b %e %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn policy_query(mx: &str, client: &str) -> String {
    let script = format!(
        "import socket\ns=socket.create_connection(('127.0.0.1',10040),timeout=5)\ns.sendall(b'request=smtpd_access_policy\\nprotocol_state=RCPT\\nclient_address={client}\\nsender=a@b.test\\nrecipient=c@mx1.test\\n\\n')\nprint(s.recv(4096).decode().strip())\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", mx, "python3", "-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An MX host (namespace) with a port-25 listener, a one-node cluster inside it, a client
/// namespace with spammer addresses, and the paths of the agent's log and state.
struct MxBed {
    _hosts: MxAndClient,
    mx: String,
    cl: String,
    node: NodeProc,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl MxBed {
    fn start(tag: &str) -> Self {
        let hosts = MxAndClient::start(tag);
        let dir = tempfile::tempdir().unwrap();
        let node = NodeProc::single_in(dir.path(), &hosts.mx);
        let log = dir.path().join("maillog");
        std::fs::write(&log, "").unwrap();
        let state = dir.path().join("agent-state");
        Self {
            mx: hosts.mx.clone(),
            cl: hosts.cl.clone(),
            _hosts: hosts,
            node,
            _dir: dir,
            log,
            state,
        }
    }

    fn agent(&self) -> Daemon {
        start_agent(&self.mx, &self.node.api, &self.log, &self.state)
    }
}

#[test]
fn postfix_log_to_kernel_drop_and_agent_restart_keeps_the_ban() {
    if !e2e_available("postfix_log_to_kernel_drop_and_agent_restart_keeps_the_ban") {
        return;
    }
    let _g = serial();
    let bed = MxBed::start("a");
    let (mx, cl, node, log, state) = (&bed.mx, &bed.cl, &bed.node, &bed.log, &bed.state);
    let mut agent = bed.agent();
    wait_for(LIMIT, "the agent's table", || {
        Command::new("ip")
            .args(["netns", "exec", mx, "nft", "list", "table", "inet", "mxe2e"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });

    // Five rejected recipients in Postfix's own words.
    let t = postfix_time();
    let lines: Vec<String> = (0..5)
        .flat_map(|i| {
            vec![
                format!("{t} mx1 postfix/smtpd[{}]: connect from unknown[203.0.113.5]", 100 + i),
                format!("{t} mx1 postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[203.0.113.5]: 550 5.1.1 <nobody{i}@mx1.test>: Recipient address rejected: User unknown in local recipient table; from=<spam@spam.test> to=<nobody{i}@mx1.test> proto=ESMTP helo=<spam.test>", 100 + i),
                format!("{t} mx1 postfix/smtpd[{}]: disconnect from unknown[203.0.113.5] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", 100 + i),
            ]
        })
        .collect();
    // The follower reads new lines only: wait until it has opened the file.
    let agent_log = state.with_extension("log");
    wait_for(LIMIT, "the agent to start following the log", || {
        std::fs::read_to_string(&agent_log).is_ok_and(|t| t.contains("mxrep-agent running"))
    });
    let written = Instant::now();
    append(log, &lines);
    wait_for(LIMIT, "203.0.113.5 in the kernel set", || {
        in_ban4(mx, "203.0.113.5")
    });
    eprintln!("log line to kernel set: {:?}", written.elapsed());
    assert!(
        !connects(cl, "203.0.113.5", "192.0.2.1"),
        "banned client got through"
    );
    assert!(
        connects(cl, "203.0.113.6", "192.0.2.1"),
        "its neighbour must pass"
    );
    let bans = node.ban_prefixes().unwrap();
    assert_eq!(bans, vec!["203.0.113.5/32"]);

    let answer = policy_query(mx, "203.0.113.5");
    assert!(
        answer.starts_with("action=REJECT") && answer.contains("rejected recipients"),
        "{answer}"
    );
    assert_eq!(policy_query(mx, "203.0.113.6"), "action=DUNNO");

    // Agent killed and restarted: the ban never leaves the kernel.
    drop(agent);
    assert!(
        in_ban4(mx, "203.0.113.5"),
        "killing the agent must not lift the ban"
    );
    agent = bed.agent();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            in_ban4(mx, "203.0.113.5"),
            "the ban disappeared during the agent's restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The restarted agent follows the stream again: an unban reaches the kernel.
    let out = ctl_in(Some(mx), &node.api, &["unban", "203.0.113.5"]);
    assert!(out.status.success());
    wait_for(LIMIT, "the unban to reach the kernel", || {
        !in_ban4(mx, "203.0.113.5")
    });
    assert!(connects(cl, "203.0.113.5", "192.0.2.1"));
    drop(agent);
}

#[test]
fn dry_run_touches_no_firewall_but_answers_policy_from_the_ban_list() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProc::new(dir.path(), 1, None, &Tuning::default());
    node.peers = Some(format!("1={}", node.peer));
    node.start();
    wait_until(LIMIT, "the node to lead", || {
        node.status()?["leader_id"].as_u64()
    });
    let policy = format!("127.0.0.1:{}", free_port());
    let state = dir.path().join("dry-state");
    let table = format!("mxdry{}", std::process::id());
    let log = std::fs::File::create(dir.path().join("dry-agent.log")).unwrap();
    let _agent = Daemon(
        Command::new(bin("mxrep-agent"))
            .args(["--cluster", &node.api, "--node-name", "mxdry", "--dry-run"])
            .args(["--nft-table", &table, "--policy-listen", &policy])
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let out = ctl(
        &node.api,
        &["ban", "198.51.100.0/24", "--for", "1h", "--reason", "dry"],
    );
    assert!(out.status.success());
    let ask = |client: &str| mxrep_tests::policy::ask_policy(&policy, client);
    let answer = wait_until(
        LIMIT,
        "the dry-run agent to reject the banned prefix",
        || ask("198.51.100.7").filter(|a| a.starts_with("action=REJECT")),
    );
    assert!(
        answer.contains("198.51.100.0/24") && answer.contains("dry"),
        "{answer}"
    );
    assert_eq!(ask("192.0.2.1").as_deref(), Some("action=DUNNO"));
    let listed = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output();
    if let Ok(o) = listed {
        assert!(
            !o.status.success(),
            "--dry-run created nftables table {table}"
        );
    }
}

fn nft_in(mx: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", mx, "nft"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_firewall_reload_is_undone_within_a_second_with_every_live_ban() {
    if !e2e_available("a_firewall_reload_is_undone_within_a_second_with_every_live_ban") {
        return;
    }
    let _g = serial();
    let bed = MxBed::start("f");
    let (mx, cl, node, state) = (&bed.mx, &bed.cl, &bed.node, &bed.state);
    let _agent = bed.agent();
    for (p, why) in [("203.0.113.5", "spam run"), ("198.51.100.0/24", "snowshoe")] {
        let out = ctl_in(
            Some(mx),
            &node.api,
            &["ban", p, "--for", "1h", "--reason", why],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_for(LIMIT, "both bans in the kernel", || {
        in_ban4(mx, "203.0.113.5")
            && nft_in(mx, &["list", "set", "inet", "mxe2e", "ban4net"]).contains("198.51.100.0/24")
    });
    assert!(!connects(cl, "203.0.113.5", "192.0.2.1"));

    // What `systemctl restart nftables` or a ufw reload does: every table gone.
    sh(&["ip", "netns", "exec", mx, "nft", "flush", "ruleset"]);
    let flushed = Instant::now();
    wait_for(
        Duration::from_secs(2),
        "the table rebuilt with its bans",
        || {
            in_ban4(mx, "203.0.113.5")
                && nft_in(mx, &["list", "set", "inet", "mxe2e", "ban4net"])
                    .contains("198.51.100.0/24")
        },
    );
    eprintln!("flush to rebuilt: {:?}", flushed.elapsed());
    assert!(
        flushed.elapsed() < Duration::from_secs(1),
        "{:?}",
        flushed.elapsed()
    );
    assert!(
        !connects(cl, "203.0.113.5", "192.0.2.1"),
        "dropped again after the rebuild"
    );

    // Only the drop rule for single IPv4 addresses deleted.
    let chain = nft_in(mx, &["-a", "list", "chain", "inet", "mxe2e", "prerouting"]);
    let handle = chain
        .lines()
        .find(|l| l.contains("@ban4 "))
        .and_then(|l| l.rsplit("handle ").next())
        .map(|h| h.trim().to_string())
        .expect("the ban4 rule and its handle");
    sh(&[
        "ip",
        "netns",
        "exec",
        mx,
        "nft",
        "delete",
        "rule",
        "inet",
        "mxe2e",
        "prerouting",
        "handle",
        &handle,
    ]);
    wait_for(Duration::from_secs(2), "the drop rule restored", || {
        nft_in(mx, &["list", "chain", "inet", "mxe2e", "prerouting"]).contains("@ban4 ")
    });
    assert!(!connects(cl, "203.0.113.5", "192.0.2.1"));

    // One set deleted (its rules first: the kernel refuses to delete a set in use).
    let chain = nft_in(mx, &["-a", "list", "chain", "inet", "mxe2e", "prerouting"]);
    let mut script = String::new();
    for h in chain
        .lines()
        .filter(|l| l.contains("@ban4net "))
        .filter_map(|l| l.rsplit("handle ").next())
    {
        script.push_str(&format!(
            "delete rule inet mxe2e prerouting handle {}\n",
            h.trim()
        ));
    }
    script.push_str("delete set inet mxe2e ban4net\n");
    let deleted = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", mx, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(out.success(), "{script}");
    wait_for(
        Duration::from_secs(1),
        "the deleted set rebuilt with its ban",
        || nft_in(mx, &["list", "set", "inet", "mxe2e", "ban4net"]).contains("198.51.100.0/24"),
    );
    eprintln!("set deletion to rebuilt: {:?}", deleted.elapsed());

    // And new bans keep arriving after the rebuilds.
    let out = ctl_in(
        Some(mx),
        &node.api,
        &[
            "ban",
            "203.0.113.77",
            "--for",
            "1h",
            "--reason",
            "after reload",
        ],
    );
    assert!(out.status.success());
    wait_for(LIMIT, "a new ban after the rebuilds", || {
        in_ban4(mx, "203.0.113.77")
    });
    let agent_log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(
        agent_log.matches("rebuilt it with 2 live bans").count() >= 3,
        "{agent_log}"
    );
}
