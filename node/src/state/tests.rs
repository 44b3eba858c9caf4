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
        prop::collection::vec(arb_observation(), 1..40).prop_map(|observations| Command::Observe {
            hosts: vec!["mx1".into(), "mx2".into(), "mx3".into()],
            observations,
        }),
    ]
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    (
        arb_prefix(),
        0u16..3,
        0u32..1000,
        prop::array::uniform6(0u32..4),
    )
        .prop_map(|(p, host, at, n)| Observation {
            addr: p.addr(),
            host,
            at,
            connects: n[0],
            no_mail: n[1],
            rejects: n[2],
            greylisted: 0,
            auth_failures: n[3],
            accepted: n[4],
            protocol_errors: n[5],
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

// ---- The reputation engine's rules, by example ----

const T0: i64 = 1_800_000_000_000;

fn obs(addr: &str, host: u16, at_ms: i64) -> Observation {
    Observation::new(addr.parse().unwrap(), host, (at_ms / 1000) as u32)
}

fn observe(list: Vec<Observation>) -> Command {
    Command::Observe {
        hosts: vec!["mx1".into(), "mx2".into(), "mx3".into()],
        observations: list,
    }
}

struct Sim {
    s: ReputationState,
    index: u64,
}

impl Sim {
    fn new() -> Self {
        Self {
            s: ReputationState::default(),
            index: 0,
        }
    }
    fn apply(&mut self, now_ms: i64, c: Command) -> Response {
        self.index += 1;
        self.s.apply(self.index, &req(now_ms, c))
    }
    fn banned(&self, p: &str) -> Option<&Ban> {
        self.s.bans.get(&net(p))
    }
}

#[test]
fn fourth_connection_in_a_minute_across_hosts_bans_the_address() {
    let mut sim = Sim::new();
    for i in 0..3 {
        let t = T0 + i * 10_000;
        let mut o = obs("192.0.2.10", i as u16, t);
        o.connects = 1;
        assert!(sim.apply(t, observe(vec![o])).changes.is_empty());
    }
    let t = T0 + 30_000;
    let mut o = obs("192.0.2.10", 0, t);
    o.connects = 1;
    let r = sim.apply(t, observe(vec![o]));
    assert_eq!(r.changes.len(), 1);
    let b = sim.banned("192.0.2.10").expect("banned");
    assert_eq!(b.source, BanSource::Automatic);
    assert_eq!(b.expires_ms - b.created_ms, 600_000);
    assert_eq!(b.evidence[0].rule, "connection-rate");
    assert_eq!(b.evidence[0].count, 4);
    assert_eq!(b.evidence[0].mx_hosts, vec!["mx1", "mx2", "mx3"]);
}

#[test]
fn connections_spread_beyond_the_window_do_not_ban() {
    let mut sim = Sim::new();
    for i in 0..10 {
        let t = T0 + i * 25_000;
        let mut o = obs("192.0.2.11", 0, t);
        o.connects = 1;
        sim.apply(t, observe(vec![o]));
    }
    assert!(sim.s.bans.is_empty());
}

#[test]
fn a_sender_whose_connections_deliver_mail_is_not_banned_for_volume() {
    let mut sim = Sim::new();
    // 30 connections a minute for three minutes, each delivering a message.
    for i in 0..90 {
        let t = T0 + i * 2_000;
        let mut o = obs("198.51.100.25", (i % 3) as u16, t);
        o.connects = 1;
        sim.apply(t, observe(vec![o.clone()]));
        let mut d = obs("198.51.100.25", (i % 3) as u16, t + 500);
        d.accepted = 1;
        sim.apply(t + 500, observe(vec![d]));
    }
    assert!(sim.s.bans.is_empty(), "{:?}", sim.s.bans);
}

#[test]
fn rotating_spammer_gets_the_prefix_banned() {
    let mut sim = Sim::new();
    let mut t = T0;
    for a in 1..=10 {
        for host in 0..3u16 {
            t += 1_000;
            let mut o = obs(&format!("203.0.113.{a}"), host, t);
            o.connects = 1;
            o.rejects = 1;
            o.no_mail = 1;
            sim.apply(t, observe(vec![o]));
        }
        // No single address reaches any per-address limit.
        assert!(sim.s.bans.values().all(|b| b.prefix.prefix_len() == 24));
    }
    let b = sim.banned("203.0.113.0/24").expect("prefix banned");
    assert_eq!(b.evidence[0].rule, "changing-addresses");
    assert_eq!(
        b.evidence[0].count, 8,
        "banned as soon as the 8th address showed up"
    );
    assert_eq!(b.expires_ms - b.created_ms, 3_600_000);
    assert_eq!(sim.s.bans.len(), 1);
}

#[test]
fn rejects_and_auth_failures_ban_for_an_hour() {
    let mut sim = Sim::new();
    let mut o = obs("192.0.2.20", 1, T0);
    o.rejects = 5;
    sim.apply(T0, observe(vec![o]));
    assert_eq!(
        sim.banned("192.0.2.20").unwrap().evidence[0].rule,
        "rejects"
    );
    let mut o = obs("192.0.2.21", 1, T0);
    o.auth_failures = 4;
    sim.apply(T0, observe(vec![o.clone()]));
    assert!(sim.banned("192.0.2.21").is_none());
    o.auth_failures = 1;
    sim.apply(T0 + 1000, observe(vec![o]));
    let b = sim.banned("192.0.2.21").unwrap();
    assert_eq!(b.evidence[0].rule, "auth-failures");
    assert_eq!(b.expires_ms - b.created_ms, 3_600_000);
}

#[test]
fn greylisting_alone_never_bans() {
    let mut sim = Sim::new();
    let mut o = obs("192.0.2.22", 0, T0);
    o.greylisted = 50;
    sim.apply(T0, observe(vec![o]));
    assert!(sim.s.bans.is_empty());
}

#[test]
fn message_rate_bans_above_500_in_ten_minutes() {
    let mut sim = Sim::new();
    let mut o = obs("192.0.2.30", 0, T0);
    o.accepted = 500;
    sim.apply(T0, observe(vec![o.clone()]));
    assert!(sim.s.bans.is_empty());
    o.accepted = 1;
    sim.apply(T0 + 1000, observe(vec![o]));
    let b = sim.banned("192.0.2.30").unwrap();
    assert_eq!(b.evidence[0].rule, "message-rate");
    assert_eq!(b.expires_ms - b.created_ms, 600_000);
}

#[test]
fn repeat_offenders_get_twice_as_long_capped_at_a_week() {
    let mut sim = Sim::new();
    let mut t = T0;
    let mut lengths = vec![];
    for _ in 0..9 {
        let mut o = obs("192.0.2.40", 0, t);
        o.rejects = 5;
        sim.apply(t, observe(vec![o]));
        let b = sim.banned("192.0.2.40").unwrap().clone();
        lengths.push((b.expires_ms - b.created_ms) / 1000);
        // Let the ban expire, then offend again.
        t = b.expires_ms + 1000;
        sim.apply(t, Command::Tick);
        assert!(sim.banned("192.0.2.40").is_none());
    }
    assert_eq!(&lengths[..4], &[3600, 7200, 14400, 28800]);
    assert_eq!(*lengths.last().unwrap(), 7 * 86400);
}

#[test]
fn allowlisted_prefixes_are_never_banned_and_allowing_lifts_auto_bans() {
    let mut sim = Sim::new();
    sim.apply(
        T0,
        Command::Allow {
            prefix: net("198.51.100.0/24"),
            add: true,
        },
    );
    let mut o = obs("198.51.100.7", 0, T0);
    o.rejects = 50;
    o.connects = 50;
    sim.apply(T0, observe(vec![o]));
    assert!(sim.s.bans.is_empty());

    let mut o = obs("192.0.2.50", 0, T0);
    o.rejects = 5;
    sim.apply(T0, observe(vec![o]));
    assert!(sim.banned("192.0.2.50").is_some());
    let r = sim.apply(
        T0 + 1,
        Command::Allow {
            prefix: net("192.0.2.0/24"),
            add: true,
        },
    );
    assert_eq!(r.changes[0].kind, BanChangeKind::Removed);
    assert!(sim.s.bans.is_empty());
}

#[test]
fn automatic_bans_never_broader_than_the_safety_limit() {
    // A policy broader than the limit is refused before it is ever proposed…
    let mut bad = Policy::default();
    bad.changing_addresses.ipv4_prefix_len = 16;
    assert!(bad.validate().is_err());
    // …and should one reach the state machine anyway, the decision is still refused.
    let mut sim = Sim::new();
    sim.s.policy = bad;
    let list: Vec<Observation> = (0..10)
        .map(|i| {
            let mut o = obs(&format!("198.18.{i}.1"), 0, T0);
            o.rejects = 1;
            o
        })
        .collect();
    sim.apply(T0, observe(list));
    assert_eq!(
        sim.s.prefixes.len(),
        1,
        "ten addresses of one /16 counted together"
    );
    assert!(sim.s.bans.is_empty(), "{:?}", sim.s.bans);
}

#[test]
fn too_many_new_bans_switch_to_observe_only_until_cleared() {
    let mut sim = Sim::new();
    let mut p = Policy::default();
    p.safety.max_new_bans_per_minute = 5;
    sim.apply(T0, Command::SetPolicy(Box::new(p)));
    let list: Vec<Observation> = (1..=8)
        .map(|i| {
            let mut o = obs(&format!("198.18.{i}.1"), 0, T0);
            o.rejects = 5;
            o
        })
        .collect();
    let r = sim.apply(T0, observe(list));
    assert_eq!(r.changes.len(), 5, "five enforced");
    assert!(sim.s.observe_only.is_some());
    assert_eq!(sim.s.observed.len(), 3, "the rest recorded, not enforced");
    sim.apply(T0 + 1000, Command::ClearObserveOnly);
    assert!(sim.s.observe_only.is_none());
    // A key that was only observed is enforced once it offends again after the clear.
    let mut o = obs("198.18.8.1", 0, T0 + 2000);
    o.rejects = 5;
    let r = sim.apply(T0 + 2000, observe(vec![o]));
    assert_eq!(r.changes.len(), 1);
    assert!(sim.banned("198.18.8.1").is_some());
}

#[test]
fn manual_unban_of_an_automatic_ban_holds_for_an_hour() {
    let mut sim = Sim::new();
    let mut o = obs("192.0.2.60", 0, T0);
    o.rejects = 5;
    sim.apply(T0, observe(vec![o.clone()]));
    assert!(sim.banned("192.0.2.60").is_some());
    sim.apply(
        T0 + 1000,
        Command::Unban {
            prefix: net("192.0.2.60"),
        },
    );
    o.at = ((T0 + 2000) / 1000) as u32;
    sim.apply(T0 + 2000, observe(vec![o.clone()]));
    assert!(sim.banned("192.0.2.60").is_none(), "held off by the unban");
    let later = T0 + 3_601_000 + 1000;
    o.at = (later / 1000) as u32;
    sim.apply(later, observe(vec![o]));
    assert!(
        sim.banned("192.0.2.60").is_some(),
        "banned again after the grace hour"
    );
}

#[test]
fn idle_counters_are_evicted() {
    let mut sim = Sim::new();
    let list: Vec<Observation> = (0..100)
        .map(|i| {
            let mut o = obs(&format!("198.18.2.{i}"), 0, T0);
            o.connects = 1;
            o.no_mail = 1;
            o
        })
        .collect();
    sim.apply(T0, observe(list));
    assert_eq!(sim.s.addrs.len(), 100);
    assert_eq!(sim.s.prefixes.len(), 1);
    sim.apply(T0 + 11 * 60_000, Command::Tick);
    assert_eq!(sim.s.addrs.len(), 0);
    assert!(sim.s.prefixes.is_empty());
}

#[test]
fn ipv6_rotation_bans_the_64() {
    let mut sim = Sim::new();
    let list: Vec<Observation> = (1..=10)
        .map(|i| {
            let mut o = obs(&format!("2001:db8:1::{i:x}"), (i % 3) as u16, T0);
            o.connects = 1;
            o.rejects = 1;
            o
        })
        .collect();
    sim.apply(T0, observe(list));
    assert!(sim.banned("2001:db8:1::/64").is_some());
}
