//! Tests of the pure state machine: rules by example, and determinism by property.

use super::*;
use proptest::prelude::*;

fn net(s: &str) -> IpNet {
    parse_prefix(s).unwrap()
}

fn req(now_ms: i64, command: Command) -> Request {
    Request { now_ms, command }
}

fn ban(prefix: &str, secs: u64) -> Command {
    Command::Ban {
        prefix: net(prefix),
        duration_ms: secs * 1000,
        reason: "test".into(),
        source: BanSource::Manual,
    }
}

#[test]
fn ban_expires_on_the_entry_clock_not_the_wall_clock() {
    let mut s = ReputationState::default();
    let r = s.apply(1, &req(1_000, ban("203.0.113.7", 60)));
    assert_eq!(r.changes[0].kind, BanChangeKind::Added);
    assert_eq!(s.bans[&net("203.0.113.7")].expires_ms, 61_000);
    s.apply(2, &req(60_999, Command::Tick));
    assert_eq!(s.bans.len(), 1, "not yet expired at 60.999 s");
    let r = s.apply(3, &req(61_000, Command::Tick));
    assert_eq!(r.changes[0].kind, BanChangeKind::Expired);
    assert!(s.bans.is_empty());
    assert_eq!(s.version, 3);
}

#[test]
fn bans_expire_in_order_whenever_they_were_made_and_after_a_restore() {
    let mut s = ReputationState::default();
    s.apply(1, &req(1_000, ban("203.0.113.1", 100)));
    s.apply(2, &req(2_000, Command::Tick)); // the expiry hint is set: 101 s
    s.apply(3, &req(3_000, ban("203.0.113.2", 10))); // expires first: 13 s
    let expired_at = |s: &mut ReputationState, index, now_ms| {
        s.apply(index, &req(now_ms, Command::Tick))
            .changes
            .iter()
            .filter(|c| c.kind == BanChangeKind::Expired)
            .map(|c| c.ban.prefix.to_string())
            .collect::<Vec<_>>()
    };
    assert!(expired_at(&mut s, 4, 12_999).is_empty());
    assert_eq!(expired_at(&mut s, 5, 13_000), ["203.0.113.2/32"]);
    // A state restored from a snapshot (no hint) expires the same bans at the same time.
    let mut restored: ReputationState =
        postcard::from_bytes(&postcard::to_allocvec(&s).unwrap()).unwrap();
    assert!(expired_at(&mut s, 6, 100_999).is_empty());
    assert!(expired_at(&mut restored, 6, 100_999).is_empty());
    assert_eq!(expired_at(&mut s, 7, 101_000), ["203.0.113.1/32"]);
    assert_eq!(expired_at(&mut restored, 7, 101_000), ["203.0.113.1/32"]);
}

#[test]
fn time_never_goes_backwards() {
    let mut s = ReputationState::default();
    s.apply(1, &req(10_000, Command::Tick));
    s.apply(2, &req(5_000, ban("198.51.100.0/24", 1)));
    assert_eq!(s.clock_ms, 10_000);
    assert_eq!(s.bans[&net("198.51.100.0/24")].created_ms, 10_000);
}

#[test]
fn extend_unban_and_covering() {
    let mut s = ReputationState::default();
    s.apply(1, &req(0, ban("2001:db8:1::/64", 60)));
    let r = s.apply(2, &req(0, ban("2001:db8:1::/64", 120)));
    assert_eq!(r.changes[0].kind, BanChangeKind::Extended);
    assert_eq!(s.bans[&net("2001:db8:1::/64")].expires_ms, 120_000);
    // A shorter ban never shortens an existing one.
    let r = s.apply(3, &req(0, ban("2001:db8:1::/64", 10)));
    assert!(r.changes.is_empty());
    assert_eq!(s.version, 2);
    s.apply(4, &req(0, ban("2001:db8:1::5", 60)));
    let cover = s.bans_covering("2001:db8:1::5".parse().unwrap());
    assert_eq!(cover.len(), 2);
    assert_eq!(cover[0].prefix, net("2001:db8:1::5/128"), "narrowest first");
    let r = s.apply(
        5,
        &req(
            0,
            Command::Unban {
                prefix: net("2001:db8:1::/64"),
            },
        ),
    );
    assert_eq!(r.changes[0].kind, BanChangeKind::Removed);
    let r = s.apply(
        6,
        &req(
            0,
            Command::Unban {
                prefix: net("2001:db8:1::/64"),
            },
        ),
    );
    assert!(r.changes.is_empty());
    assert_eq!(s.version, 5);
}

#[test]
fn a_drop_report_sent_again_is_counted_once() {
    let mut s = ReputationState::default();
    let report = |dropped| activity::DropReport {
        mx_host: "mx1".into(),
        dropped,
        by_ban: vec![(net("192.0.2.7/32"), dropped)],
    };
    let once = |seq, dropped| Command::RecordDropsOnce {
        session: 9,
        seq,
        report: report(dropped),
    };
    // The first report, sent again (its acknowledgement lost), then the next one.
    for (i, c) in [once(1, 5), once(1, 5), once(2, 3)].into_iter().enumerate() {
        s.apply(i as u64 + 1, &req(1_000, c));
    }
    let sum = s.activity.since(0);
    assert_eq!(sum.dropped["mx1"], 8);
    assert_eq!(sum.dropped_by_ban[&net("192.0.2.7/32")], 8);
    // An older agent's unnamed report counts every time.
    s.apply(4, &req(1_000, Command::RecordDrops(report(1))));
    s.apply(5, &req(1_000, Command::RecordDrops(report(1))));
    assert_eq!(s.activity.since(0).dropped["mx1"], 10);
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u8..4, 0u8..255, prop_oneof![Just(24u8), Just(32u8)]).prop_map(|(c, d, len)| {
            IpNet::new(IpAddr::from([203, 0, 113 + c, d]), len)
                .unwrap()
                .trunc()
        }),
        (0u16..4, 0u16..50, prop_oneof![Just(64u8), Just(128u8)]).prop_map(|(a, b, len)| {
            IpNet::new(IpAddr::from([0x2001, 0xdb8, a, 0, 0, 0, 0, b]), len)
                .unwrap()
                .trunc()
        }),
    ]
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Tick),
        (arb_prefix(), 1u64..600_000, "[a-z]{0,8}").prop_map(|(prefix, duration_ms, reason)| {
            Command::Ban {
                prefix,
                duration_ms,
                reason,
                source: BanSource::Manual,
            }
        }),
        arb_prefix().prop_map(|prefix| Command::Unban { prefix }),
        (arb_prefix(), any::<bool>()).prop_map(|(prefix, add)| Command::Allow { prefix, add }),
        Just(Command::ClearObserveOnly),
        (
            prop::collection::vec(arb_observation(), 1..40),
            0u64..3,
            0u64..6
        )
            .prop_map(|(observations, session, seq)| Command::Observe {
                hosts: vec!["mx1".into(), "mx2".into(), "mx3".into()],
                batches: (0..3)
                    .map(|h| BatchId {
                        host: h,
                        session,
                        seq: seq + h as u64
                    })
                    .collect(),
                observations,
            }),
    ]
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    (
        arb_prefix(),
        0u32..3,
        0u32..1000,
        prop::array::uniform6(0u32..4),
    )
        .prop_map(|(p, batch, at, n)| Observation {
            addr: p.addr(),
            batch,
            at,
            delivered: n[0],
            neutral: n[1],
            bad: n[2],
            messages: n[3],
            rejects: n[4],
            auth_failures: n[5],
            verified_name: (n[0] == 3).then(|| "mail.example.org".to_string()),
        })
}

fn arb_log() -> impl Strategy<Value = Vec<Request>> {
    prop::collection::vec(
        (0i64..1_000_000, arb_command()).prop_map(|(now_ms, command)| Request { now_ms, command }),
        0..200,
    )
}

proptest! {
    #[test]
    fn same_log_same_state_on_three_machines(log in arb_log()) {
        let mut nodes = [ReputationState::default(), ReputationState::default(), ReputationState::default()];
        let mut outcomes: [Vec<Response>; 3] = Default::default();
        for (i, node) in nodes.iter_mut().enumerate() {
            for (idx, r) in log.iter().enumerate() {
                outcomes[i].push(node.apply(idx as u64 + 1, r));
            }
        }
        prop_assert_eq!(&nodes[0], &nodes[1]);
        prop_assert_eq!(&nodes[1], &nodes[2]);
        prop_assert_eq!(&outcomes[0], &outcomes[2]);
        // Every surviving ban is in the future of the cluster clock.
        for b in nodes[0].bans.values() {
            prop_assert!(b.expires_ms > nodes[0].clock_ms);
        }
    }

    #[test]
    fn snapshot_round_trip_then_same_future(log in arb_log(), split in 0usize..200) {
        let split = split.min(log.len());
        let mut a = ReputationState::default();
        for (idx, r) in log[..split].iter().enumerate() {
            a.apply(idx as u64 + 1, r);
        }
        // Snapshots are encoded as the Raft layer does (postcard).
        let bytes = postcard::to_allocvec(&a).unwrap();
        let mut b: ReputationState = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&a, &b);
        for (idx, r) in log[split..].iter().enumerate() {
            let i = (split + idx) as u64 + 1;
            prop_assert_eq!(a.apply(i, r), b.apply(i, r));
        }
        prop_assert_eq!(a, b);
    }
}

mod rules;
