//! Tests of the tail scout: verdicts sent ahead are those the in-order reader reaches, once.

use super::*;
use crate::sources::log_follower::LineAt;
use crate::sources::postfix::parse_line_in;
use rand::{rngs::StdRng, Rng, SeedableRng};

const STAMP: &str = "Dec  7 21:00:00";

/// One connection's lines from smtpd `pid`, client `addr`, of class `class`.
fn connection(pid: u32, addr: &str, class: u32) -> Vec<String> {
    let p = format!("{STAMP} mx1 postfix/smtpd[{pid}]:");
    let c = format!("unknown[{addr}]");
    let reject = format!("{p} NOQUEUE: reject: RCPT from {c}: 550 5.1.1 <x@mx1.test>: Recipient address rejected: User unknown in local recipient table; from=<s@spam.test> to=<x@mx1.test> proto=ESMTP helo=<spam.test>");
    match class {
        0 => vec![
            format!("{p} connect from {c}"),
            format!("{p} 4A{pid:X}: client={c}"),
            format!("{p} disconnect from {c} ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
        ],
        1 => vec![
            format!("{p} connect from {c}"),
            reject,
            format!("{p} disconnect from {c} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"),
        ],
        2 => vec![
            format!("{p} connect from {c}"),
            format!("{p} disconnect from {c} ehlo=1 quit=1 commands=2"),
        ],
        _ => vec![
            format!("{p} connect from {c}"),
            reject.clone(),
            reject.clone(),
            reject,
            format!("{p} 4A{pid:X}: client={c}"),
            format!("{p} disconnect from {c} ehlo=1 mail=1 rcpt=1/4 data=1 quit=1 commands=5/8"),
        ],
    }
}

/// A log of `n` connections over 20 smtpd processes, their lines interleaved.
fn log(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut open: Vec<std::collections::VecDeque<String>> = vec![];
    let mut out = String::new();
    let mut started = 0;
    while started < n || !open.is_empty() {
        if started < n && (open.len() < 20 && rng.gen_bool(0.5) || open.is_empty()) {
            let pid = 100 + (started % 20) as u32;
            let addr = format!("198.51.{}.{}", started % 7, started % 250);
            // Few bad ones, as in real traffic.
            let class = if rng.gen_bool(0.9) {
                0
            } else {
                rng.gen_range(1..4)
            };
            if open.iter().all(|c| !c[0].contains(&format!("[{pid}]"))) {
                open.push(connection(pid, &addr, class).into());
            }
            started += 1;
        } else {
            let i = rng.gen_range(0..open.len());
            out.push_str(&open[i].pop_front().unwrap());
            out.push('\n');
            if open[i].is_empty() {
                open.remove(i);
            }
        }
    }
    out.into_bytes()
}

/// Verdicts, comparable.
fn key(e: &pb::Event) -> String {
    format!("{:?}", e)
}

/// The in-order reader alone.
fn in_order(bytes: &[u8]) -> Vec<String> {
    let now = Utc::now();
    let mut t = ConnectionTracker::default();
    let mut out: Vec<String> = lines(bytes, 0)
        .flat_map(|(_, raw)| {
            t.feed(parse_line_in(
                &String::from_utf8_lossy(raw),
                now,
                &LogTimezone::Utc,
            ))
        })
        .map(|e| key(&e))
        .collect();
    out.sort();
    out
}

/// What one run of the scout beside the in-order reader sent.
struct Run {
    /// Every verdict, by either, sorted.
    got: Vec<String>,
    /// Of them, sent ahead by the scout.
    ahead: usize,
    /// Of those, from a file after the first (after a rotation).
    ahead_after_rotation: usize,
}

/// The in-order reader and the scout over `files`, written one after the other under one path:
/// file `f` is inode `7 + f`, and the writer moves to the next (a rotation: rename, new file) once
/// a file is whole. The file grows by random amounts (lines cut anywhere); the reader takes 64 KiB
/// chunks of whole lines, drains a rotated file before it opens the next (a new epoch), and the
/// scout looks, at any moment, at whatever file the path names then.
fn scout_beside_reader(rng: &mut StdRng, files: &[Vec<u8>]) -> Run {
    let now = Utc::now();
    let tz = LogTimezone::Utc;
    let ledger = AheadLedger::default();
    let mut tracker = ConnectionTracker::default();
    let mut run = Run {
        got: vec![],
        ahead: 0,
        ahead_after_rotation: 0,
    };
    // The writer's file and its length; the reader's file (= its epoch) and place.
    let (mut writing, mut len) = (0usize, 0usize);
    let (mut reading, mut read_to) = (0usize, 0usize);
    while reading < files.len() {
        len += rng.gen_range(0..300_000);
        while len > files[writing].len() && writing + 1 < files.len() {
            len -= files[writing].len();
            writing += 1;
        }
        len = len.min(files[writing].len());
        // The scout looks before the reader's read, between its read and its claim, or after.
        let when = rng.gen_range(0..3);
        let look = |run: &mut Run| {
            if let Some((epoch, start)) = ledger.next_start(7 + writing as u64, len as u64) {
                assert_eq!(
                    epoch as usize, writing,
                    "the scout looks at the reader's file"
                );
                let window = &files[writing][start as usize..len];
                let sent = ledger.pass(epoch, start, window, now, &tz);
                run.ahead += sent.len();
                if writing > 0 {
                    run.ahead_after_rotation += sent.len();
                }
                run.got.extend(sent.iter().map(key));
            }
        };
        if when == 0 {
            look(&mut run);
        }
        let bytes = &files[reading];
        let available = if reading == writing { len } else { bytes.len() };
        let chunk_end = (read_to + 64 * 1024).min(available);
        let whole = match memchr::memrchr(b'\n', &bytes[read_to..chunk_end]) {
            Some(i) => read_to + i + 1,
            None => read_to,
        };
        let read: Vec<LineAt> = lines(&bytes[read_to..whole], read_to as u64)
            .map(|(offset, raw)| LineAt {
                epoch: reading as u64,
                offset,
                text: String::from_utf8_lossy(raw).into_owned(),
            })
            .collect();
        if when == 1 {
            look(&mut run);
        }
        read_to = whole;
        let sent = ledger.reader_read(reading as u64, 7 + reading as u64, read_to as u64, &read);
        for (at, sent) in read.into_iter().zip(sent) {
            let line = parse_line_in(&at.text, now, &tz);
            run.got
                .extend(tracker.feed_marked(line, sent).iter().map(key));
        }
        if when == 2 {
            look(&mut run);
        }
        if read_to == bytes.len() && writing > reading {
            // Drained, and rotated away from: the next file, from its start.
            (reading, read_to) = (reading + 1, 0);
        } else if read_to == bytes.len() && reading + 1 == files.len() {
            break;
        }
    }
    assert_eq!(
        ledger.pending(),
        0,
        "every place sent ahead was reached by the reader"
    );
    assert_eq!(run.ahead as u64, ledger.sent_total());
    run.got.sort();
    run
}

#[test]
fn verdicts_sent_ahead_are_counted_once_and_are_those_the_in_order_reader_reaches() {
    for seed in 0..12u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let bytes = log(&mut rng, 12_000);
        let run = scout_beside_reader(&mut rng, std::slice::from_ref(&bytes));
        assert_eq!(
            run.got,
            in_order(&bytes),
            "seed {seed}: every verdict exactly once"
        );
        if seed == 0 {
            assert!(
                run.ahead > 100,
                "the scout sent {} verdicts ahead",
                run.ahead
            );
        }
    }
}

#[test]
fn across_rotations_each_verdict_is_counted_once() {
    let mut ahead_after_rotation = 0;
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let files: Vec<Vec<u8>> = (0..rng.gen_range(2..5))
            .map(|_| {
                let n = rng.gen_range(3_000..15_000);
                log(&mut rng, n)
            })
            .collect();
        let run = scout_beside_reader(&mut rng, &files);
        let mut expected: Vec<String> = files.iter().flat_map(|f| in_order(f)).collect();
        expected.sort();
        assert_eq!(
            run.got, expected,
            "seed {seed}: every verdict of every file exactly once"
        );
        ahead_after_rotation += run.ahead_after_rotation;
    }
    assert!(
        ahead_after_rotation > 100,
        "the scout sent {ahead_after_rotation} verdicts ahead in rotated-to files"
    );
}

#[test]
fn delivered_mail_is_not_suspect_and_anything_else_is() {
    let d = |counts: &str| format!("disconnect from unknown[192.0.2.1] {counts}");
    assert!(!suspect_disconnect(
        d("ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5").as_bytes()
    ));
    assert!(!suspect_disconnect(
        d("ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 commands=5").as_bytes()
    ));
    assert!(suspect_disconnect(
        d("ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4").as_bytes()
    ));
    assert!(suspect_disconnect(
        d("ehlo=1 auth=0/1 commands=1/2").as_bytes()
    ));
    assert!(suspect_disconnect(d("ehlo=1 quit=1 commands=2").as_bytes()));
}

#[test]
fn a_connection_cut_by_the_bytes_looked_at_is_left_to_the_in_order_reader() {
    let now = Utc::now();
    let text = connection(9, "192.0.2.9", 1).join("\n") + "\n";
    let whole = judge(text.as_bytes(), 0, now, &LogTimezone::Utc);
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].connect_at, 0);
    let cut = text.find('\n').unwrap() + 1;
    assert!(judge(&text.as_bytes()[cut..], cut as u64, now, &LogTimezone::Utc).is_empty());
}
