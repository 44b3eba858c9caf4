//! postscreen on every MX host of the 3-MX test bed: real Postfix 3.7 with postscreen in front of
//! smtpd and `smtpd_client_port_logging = yes` on all three, a bot that talks before its turn
//! (PREGREET) to each in turn. No single host sees enough to act; the cluster adds the three
//! hosts' postscreen verdicts up and the bot is dropped in the kernel of every MX host, with
//! evidence from all three. A sender that waits its turn still delivers through postscreen.

use mxrep_tests::netns::{e2e_available, tool_available};
use mxrep_tests::postfix::raw_client;
use mxrep_tests::testbed::{Testbed, LIMIT};
use mxrep_tests::*;

#[test]
fn postscreen_verdicts_from_three_mx_hosts_ban_a_bot_on_all_of_them() {
    if !e2e_available("postscreen_verdicts_from_three_mx_hosts_ban_a_bot_on_all_of_them")
        || !tool_available("postscreen fleet test", "postfix", "postfix")
        || !tool_available("postscreen fleet test", "swaks", "swaks")
    {
        return;
    }
    let _g = serial();
    let bed = Testbed::start(true);
    bed.wait_for_leader();
    for m in &bed.mx {
        m.postfix.as_ref().expect("Postfix").enable_postscreen("");
    }
    // A sender that waits its turn passes postscreen and delivers, on every host.
    for i in 0..3 {
        wait_until(LIMIT, "a delivery through postscreen", || {
            bed.swaks(&bed.legit, "192.0.2.41", i, "user").then_some(())
        });
    }
    let bot = "203.0.113.66";
    let banned_everywhere = || {
        bed.mx
            .iter()
            .all(|m| m.kernel_bans().iter().any(|b| b == &format!("{bot}/32")))
    };
    // One PREGREET per host per round: no host alone sees more than a few.
    let mut rounds = 0;
    while !banned_everywhere() {
        assert!(
            rounds < 10,
            "not banned after {rounds} rounds of 3 pregreets"
        );
        for m in &bed.mx {
            // A host that already drops the bot refuses the connection: that is the point.
            raw_client(&bed.spam, bot, &m.addr, Some("EHLO early.test"));
        }
        rounds += 1;
        wait_until(LIMIT, "postscreen's verdicts counted", || {
            let v = bed.ctl_json(&["ip", "show", bot]).ok()?;
            let bad = v["counters"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "bad connections (not mail)")?["count"]
                .as_u64()?;
            (bad >= 3 * rounds as u64 || banned_everywhere()).then_some(())
        });
    }
    let hosts = wait_until(LIMIT, "the ban's evidence", || {
        let v = bed.ctl_json(&["bans", "list"]).ok()?;
        mxrep_tests::ctl::evidence_hosts_in(&v, &format!("{bot}/32"))
    });
    assert_eq!(hosts, vec!["mx1", "mx2", "mx3"], "evidence from every host");
    for m in &bed.mx {
        let log = m.postfix.as_ref().unwrap().log_text();
        assert!(
            log.contains("PREGREET") && log.contains(&format!("[{bot}]:")),
            "{}",
            m.name
        );
    }
}
