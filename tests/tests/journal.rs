//! The systemd journal as the agent's source, on real journal files: entries are written in the
//! journal export format and turned into journal files by `systemd-journal-remote` (as a host's
//! journald would write them), and the agent follows the directory with `journalctl`. From its
//! first start on (also when that run stopped before any entry); after a restart, from its saved
//! cursor — nothing lost, nothing counted twice — and on into a new journal file.

use mxrep_tests::netns::tool_available;
use mxrep_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Writes one delivering connection of `addr` into the journal file `file`, `ago_s` seconds old.
fn journal_connection(dir: &Path, file: &str, addr: &str, pid: u32, ago_s: i64) {
    let now = chrono::Utc::now().timestamp_micros() - ago_s * 1_000_000;
    let msgs = [
        format!("connect from mail.example[{addr}]"),
        format!("4N{pid:X}: client=mail.example[{addr}]"),
        format!(
            "disconnect from mail.example[{addr}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
        ),
    ];
    let export: String = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mx-journal\nSYSLOG_IDENTIFIER=postfix/smtpd\nSYSLOG_PID={pid}\nMESSAGE={m}\n\n",
                now + i as i64,
                now + i as i64
            )
        })
        .collect();
    let input = dir.join(format!("entries-{pid}.export"));
    std::fs::write(&input, export).unwrap();
    run_ok(
        Command::new(JOURNAL_REMOTE)
            .arg(format!("--output={}", dir.join(file).display()))
            .arg(&input),
    );
}

/// The agent following `journal`; its state dir is DIR/mx-journal-state, whichever run it is.
fn agent(dir: &Path, api: &str, journal: &Path) -> AgentProc {
    let journal = journal.display().to_string();
    AgentProc::start(
        dir,
        api,
        "mx-journal",
        &["--dry-run", "--journal-dir", &journal],
        &[],
    )
}

#[test]
fn follows_the_journal_from_now_then_from_its_cursor_across_files() {
    if !tool_available("journal test", "journalctl", "systemd") {
        return;
    }
    if !Path::new(JOURNAL_REMOTE).exists() {
        assert_ne!(
            std::env::var("MXREP_REQUIRE_E2E").as_deref(),
            Ok("1"),
            "MXREP_REQUIRE_E2E=1 but {JOURNAL_REMOTE} is missing (apt-get install systemd-journal-remote)"
        );
        eprintln!("\n!!!!! SKIPPED: the journal test needs systemd-journal-remote !!!!!\n");
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::single_leading(dir.path(), "");
    let journal = dir.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let state = dir.path().join("mx-journal-state");
    let addr = "198.51.100.90";
    // History from before the agent's first start is not counted.
    journal_connection(&journal, "a.journal", addr, 100, 60);

    // A first run stopped before any entry came: the next run still reads from this run's
    // start, so a connection logged while no agent ran is counted.
    let zeroth = agent(dir.path(), &node.api, &journal);
    zeroth.wait_for_log("following the journal");
    let text = zeroth.stopped();
    assert!(
        text.contains("journal: stopped") && text.contains("every verdict read was acknowledged"),
        "the journal source did not stop before the drain:\n{text}"
    );
    let logged_at = chrono::Utc::now().timestamp();
    journal_connection(&journal, "a.journal", addr, 150, 0);
    // The next run starts in a later second than that entry (a start moment is whole seconds).
    wait_until(LIMIT, "the next second", || {
        (chrono::Utc::now().timestamp() > logged_at).then_some(())
    });

    let first = agent(dir.path(), &node.api, &journal);
    wait_until(LIMIT, "the message logged while no agent ran", || {
        (accepted_messages(&node.api, addr)? == 1).then_some(())
    });
    wait_until(LIMIT, "the agent to follow the journal", || {
        first
            .log_text()
            .contains("following the journal")
            .then_some(())
    });
    journal_connection(&journal, "a.journal", addr, 201, 0);
    journal_connection(&journal, "a.journal", addr, 202, 0);
    wait_until(LIMIT, "two more messages from the journal", || {
        (accepted_messages(&node.api, addr)? == 3).then_some(())
    });
    wait_until(LIMIT, "the cursor saved", || {
        state.join("journal-cursor.json").exists().then_some(())
    });
    drop(first);

    // Written while the agent is down, one in a new journal file (journald rotated).
    journal_connection(&journal, "a.journal", addr, 301, 0);
    journal_connection(&journal, "b.journal", addr, 302, 0);
    let second = agent(dir.path(), &node.api, &journal);
    wait_until(LIMIT, "the two written meanwhile", || {
        (accepted_messages(&node.api, addr)? == 5).then_some(())
    });
    assert!(second.log_text().contains("from the saved cursor"));
    journal_connection(&journal, "b.journal", addr, 401, 0);
    wait_until(LIMIT, "one more, in the new file", || {
        (accepted_messages(&node.api, addr)? == 6).then_some(())
    });
    // Exactly once: a later marker from another sender is counted after anything read twice
    // would have been, and the count has not moved.
    journal_connection(&journal, "b.journal", "198.51.100.91", 501, 0);
    wait_until(LIMIT, "the marker counted", || {
        (accepted_messages(&node.api, "198.51.100.91")? == 1).then_some(())
    });
    assert_eq!(accepted_messages(&node.api, addr), Some(6));
    // How the journal rows of tests/fixtures/source-forms.tsv were captured: the entries as
    // journalctl reads them back from systemd-journal-remote's files.
    if let Ok(to) = std::env::var("MXREP_CAPTURE_DIR") {
        let out = run_ok(
            Command::new("journalctl")
                .arg("--directory")
                .arg(&journal)
                .args(["--output=json", "--no-pager"]),
        );
        std::fs::write(Path::new(&to).join("journal-252.jsonl"), out.stdout).unwrap();
    }
}
