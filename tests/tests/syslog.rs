//! The agent as a syslog receiver: a real rsyslog forwards Postfix's lines over TCP
//! (octet-counted, its forwarding format), and a host sends RFC 3164 datagrams over UDP; each message's host
//! name becomes the MX host of its events, and the cluster bans from them as from a log file.
//! The agent runs with `--dry-run`: this is about reading, not enforcing. A stopping agent sends
//! and has acknowledged every verdict it received before it exits.

use mxrep_tests::netns::{tool_available, Daemon};
use mxrep_tests::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Five connections of `addr` with only unknown recipients, as smtpd logs them (no header).
fn spam_session(addr: &str) -> Vec<(u32, String)> {
    (0..5)
        .flat_map(|i| {
            let pid = 7100 + i;
            [
                (pid, format!("connect from unknown[{addr}]")),
                (pid, format!("NOQUEUE: reject: RCPT from unknown[{addr}]: 550 5.1.1 <n{i}@mx.test>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.test> to=<n{i}@mx.test> proto=ESMTP helo=<spam.test>")),
                (pid, format!("disconnect from unknown[{addr}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")),
            ]
        })
        .collect()
}

#[test]
fn rsyslog_over_tcp_and_datagrams_over_udp_become_bans_per_sending_host() {
    if !tool_available("syslog receiver test", "rsyslogd", "rsyslog")
        || !tool_available("syslog receiver test", "logger", "bsdutils")
    {
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_leading(dir.path(), "");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let agent = AgentProc::start(
        dir.path(),
        &node.api,
        "receiver",
        &[
            "--dry-run",
            "--syslog-listen",
            &listen,
            "--log-timezone",
            "UTC",
        ],
        &[],
    );
    wait_until(LIMIT, "the agent to receive syslog", || {
        agent.log_text().contains("receiving syslog").then_some(())
    });

    // rsyslog: a local socket in, octet-counted over TCP out in its forwarding format (the tag
    // `postfix/smtpd[PID]` kept whole), as a site's relay does.
    let sock = dir.path().join("log.sock");
    let conf = dir.path().join("rsyslog.conf");
    // What rsyslog forwards, also written to a file: the syslog rows of the forms corpus.
    let forwarded = dir.path().join("forwarded.log");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{s}\" CreatePath=\"on\")\n\
             action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" \
             TCP_Framing=\"octet-counted\" template=\"RSYSLOG_ForwardFormat\")\n\
             action(type=\"omfile\" file=\"{f}\" template=\"RSYSLOG_ForwardFormat\")\n",
            d = dir.path().display(),
            s = sock.display(),
            f = forwarded.display()
        ),
    )
    .unwrap();
    let _rsyslog = Daemon(
        Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("rsyslogd.log")).unwrap())
            .spawn()
            .expect("start rsyslogd"),
    );
    wait_until(LIMIT, "rsyslog's socket", || sock.exists().then_some(()));
    for (pid, msg) in spam_session("203.0.113.61") {
        let ok = Command::new("logger")
            .arg("-u")
            .arg(&sock)
            .args([
                "-t",
                "postfix/smtpd",
                &format!("--id={pid}"),
                "-p",
                "mail.info",
                &msg,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "logger");
    }
    let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let hosts = wait_until(LIMIT, "the ban of the address rsyslog forwarded", || {
        ban_evidence_hosts(&node.api, "203.0.113.61/32")
    });
    assert_eq!(
        hosts,
        vec![this_host.clone()],
        "the sending host is the MX host"
    );
    if let Ok(to) = std::env::var("MXREP_CAPTURE_DIR") {
        std::fs::copy(&forwarded, Path::new(&to).join("rsyslog-8.2302.log")).unwrap();
    }

    // RFC 3164 datagrams from another MX host, with a one-space day when the day has one digit.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S").to_string();
    for (pid, msg) in spam_session("203.0.113.62") {
        let line = format!("<22>{stamp} mx-udp postfix/smtpd[{pid}]: {msg}");
        udp.send_to(line.as_bytes(), &listen).unwrap();
    }
    let hosts = wait_until(LIMIT, "the ban of the address sent over UDP", || {
        ban_evidence_hosts(&node.api, "203.0.113.62/32")
    });
    assert_eq!(hosts, vec!["mx-udp".to_string()]);
    // Garbage is refused and counted, and the receiver keeps going.
    udp.send_to(b"not syslog at all", &listen).unwrap();
    wait_until(LIMIT, "the refusal to be logged", || {
        agent.log_text().contains("messages refused").then_some(())
    });
    let log = agent.log_text();
    assert!(log.contains(&format!("as MX host {this_host}")), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // A stop loses nothing received: the first line of a new host (a delivering connection's
    // disconnect, its verdict made at once), then SIGTERM as soon as the agent took the host up.
    let line = format!("<22>{stamp} mx-stop postfix/smtpd[7300]: disconnect from unknown[198.51.100.77] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5");
    udp.send_to(line.as_bytes(), &listen).unwrap();
    agent.wait_for_log("as MX host mx-stop");
    let text = agent.stopped();
    assert!(
        text.contains("syslog: every verdict received was acknowledged"),
        "{text}"
    );
    wait_until(
        LIMIT,
        "the message received before the stop counted",
        || (accepted_messages(&node.api, "198.51.100.77")? == 1).then_some(()),
    );
}
