//! The reputation engine's rules, by example: the spammer classes are stopped, and the senders
//! that look like them — pools, lists, busy senders, callouts — are not.

use super::super::*;
use super::net;
use proptest::prelude::*;

const T0: i64 = 1_800_000_000_000;
const HOSTS: [&str; 3] = ["mx1", "mx2", "mx3"];

fn at(ms: i64) -> u32 {
    (ms / 1000) as u32
}

/// One connection verdict of `addr` seen by MX host `host` (batch index = host) at `ms`.
fn conn(addr: &str, host: u32, ms: i64) -> Observation {
    Observation::new(addr.parse().unwrap(), host, at(ms))
}
fn bad(addr: &str, host: u32, ms: i64) -> Observation {
    let mut o = conn(addr, host, ms);
    o.bad = 1;
    o.rejects = 1;
    o
}
/// Connect and quit: bad, with no recipient rejected.
fn quit(addr: &str, host: u32, ms: i64) -> Observation {
    let mut o = conn(addr, host, ms);
    o.bad = 1;
    o
}
fn delivered(addr: &str, host: u32, ms: i64) -> Observation {
    let mut o = conn(addr, host, ms);
    o.delivered = 1;
    o.messages = 1;
    o
}
fn neutral(addr: &str, host: u32, ms: i64) -> Observation {
    let mut o = conn(addr, host, ms);
    o.neutral = 1;
    o
}

/// An Observe entry: one batch per MX host, without deduplication.
fn observe(list: Vec<Observation>) -> Command {
    Command::Observe {
        hosts: HOSTS.iter().map(|h| h.to_string()).collect(),
        batches: (0..3)
            .map(|h| BatchId {
                host: h,
                session: 0,
                seq: 0,
            })
            .collect(),
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
    fn with_policy(f: impl FnOnce(&mut Policy)) -> Self {
        let mut sim = Self::new();
        let mut p = Policy::default();
        f(&mut p);
        p.validate().unwrap();
        sim.apply(T0 - 1000, Command::SetPolicy(Box::new(p)));
        sim
    }
    fn apply(&mut self, now_ms: i64, c: Command) -> Response {
        self.index += 1;
        self.s.apply(self.index, &Request { now_ms, command: c })
    }
    fn see(&mut self, now_ms: i64, list: Vec<Observation>) -> Response {
        self.apply(now_ms, observe(list))
    }
    fn entry(&self, p: &str) -> Option<&Ban> {
        self.s.bans.get(&net(p))
    }
    fn dropped(&self, p: &str) -> bool {
        self.entry(p).is_some_and(Ban::drops)
    }
    /// Addresses covered by a dropping ban.
    fn covered(&self, addr: &str) -> bool {
        self.s
            .bans_covering(addr.parse().unwrap())
            .iter()
            .any(|b| b.drops())
    }
}

#[test]
fn bad_connections_over_the_rate_refuse_first_and_ban_if_it_goes_on() {
    let mut sim = Sim::new();
    for i in 0..3 {
        let t = T0 + i * 10_000;
        assert!(sim
            .see(t, vec![quit("192.0.2.10", i as u32, t)])
            .changes
            .is_empty());
    }
    let t = T0 + 30_000;
    let r = sim.see(t, vec![quit("192.0.2.10", 0, t)]);
    assert_eq!(r.changes.len(), 1);
    let b = sim.entry("192.0.2.10").expect("refused");
    assert_eq!(
        b.action,
        BanAction::Tempfail,
        "first answer: a temporary refusal"
    );
    assert_eq!(b.evidence[0].rule, "connection-rate");
    assert_eq!(b.evidence[0].count, 4);
    assert_eq!(b.evidence[0].mx_hosts, HOSTS);
    assert!(!sim.s.is_banned_within(&net("192.0.2.10")));
    // It goes on: four more bad connections turn it into a ban.
    for i in 0..4 {
        let t = T0 + 31_000 + i * 1000;
        sim.see(t, vec![quit("192.0.2.10", 1, t)]);
    }
    let b = sim.entry("192.0.2.10").unwrap();
    assert_eq!(b.action, BanAction::Drop);
    assert_eq!(b.expires_ms - b.created_ms, 600_000);
    assert!(
        b.reason.contains("after a temporary refusal"),
        "{}",
        b.reason
    );
}

#[test]
fn connections_spread_beyond_the_window_do_not_ban() {
    let mut sim = Sim::new();
    for i in 0..10 {
        let t = T0 + i * 25_000;
        sim.see(t, vec![quit("192.0.2.11", 0, t)]);
    }
    assert!(sim.s.bans.is_empty());
}

#[test]
fn a_busy_sender_delivering_and_greylisted_is_never_refused() {
    // ~45 messages a minute over new connections, greylisted four times a minute, 3 minutes.
    let mut sim = Sim::new();
    for i in 0..135 {
        let t = T0 + i * 1333;
        let mut list = vec![delivered("198.51.100.25", (i % 3) as u32, t)];
        if i % 11 == 0 {
            list.push(neutral("198.51.100.25", ((i + 1) % 3) as u32, t));
        }
        sim.see(t, list);
    }
    assert!(sim.s.bans.is_empty(), "{:?}", sim.s.bans);
}

#[test]
fn recipient_verification_callouts_are_neutral() {
    let mut sim = Sim::new();
    for i in 0..40 {
        let t = T0 + i * 1000;
        sim.see(t, vec![neutral("192.0.2.77", 0, t)]);
    }
    assert!(sim.s.bans.is_empty());
}

#[test]
fn rotating_spammer_gets_the_prefix_banned() {
    let mut sim = Sim::new();
    let mut t = T0;
    for a in 1..=10 {
        t += 1_000;
        sim.see(t, vec![bad(&format!("203.0.113.{a}"), (a % 3) as u32, t)]);
    }
    let b = sim.entry("203.0.113.0/24").expect("prefix banned");
    assert_eq!(b.evidence[0].rule, "changing-addresses");
    assert_eq!(
        b.evidence[0].count, 8,
        "banned as soon as the 8th address showed up"
    );
    assert_eq!(b.evidence[1].count, 0, "no delivering address");
    assert_eq!(b.expires_ms - b.created_ms, 3_600_000);
    assert_eq!(sim.s.bans.len(), 1);
}

#[test]
fn a_prefix_holding_a_dnswl_address_is_never_banned() {
    let mut sim = Sim::with_policy(|p| {
        p.dnsbl.sites = vec!["wl.example=127.0.[0..255].[2..3]*-2".into()];
    });
    let wl = dnsbl::Lookup {
        addr: "203.0.113.50".parse().unwrap(),
        answers: vec![dnsbl::Answer {
            zone: "wl.example".into(),
            codes: vec!["127.0.10.3".parse().unwrap()],
            text: String::new(),
        }],
        ttl_secs: 3600,
        verified_name: None,
    };
    sim.apply(T0, Command::Dnsbl(vec![wl]));
    let list = (1..=20)
        .map(|a| bad(&format!("203.0.113.{a}"), 0, T0))
        .collect();
    sim.see(T0, list);
    assert!(!sim.dropped("203.0.113.0/24"), "{:?}", sim.s.bans.keys());
}

#[test]
fn a_delivering_pool_with_stale_recipients_is_not_banned() {
    // A list server: 40 addresses of one /24 delivering, 10 of them also hitting a stale
    // recipient on a connection of its own (550 user unknown, nothing accepted).
    let mut sim = Sim::new();
    let mut t = T0;
    for round in 0..3 {
        for a in 1..=40 {
            t += 500;
            let addr = format!("192.0.2.{a}");
            let mut list = vec![delivered(&addr, (a % 3) as u32, t)];
            if a % 4 == round {
                list.push(bad(&addr, ((a + 1) % 3) as u32, t));
            }
            sim.see(t, list);
        }
    }
    // And new addresses of the pool that so far only hit stale recipients.
    for a in 100..112 {
        t += 500;
        sim.see(t, vec![bad(&format!("192.0.2.{a}"), 0, t)]);
    }
    assert!(!sim.covered("192.0.2.1"), "{:?}", sim.s.bans);
    let r = sim.s.report("192.0.2.100".parse().unwrap());
    let d = r
        .distances
        .iter()
        .find(|d| d.rule == "changing-addresses")
        .unwrap();
    assert!(
        d.text.contains("12 bad-only vs 40 delivering addresses"),
        "{}",
        d.text
    );
    assert!(!d.would_ban);
}

#[test]
fn ipv6_rotation_across_the_64s_of_a_48_bans_the_48() {
    // 60 addresses, each in its own /64, spread over the /56s of one /48.
    let mut sim = Sim::new();
    let mut t = T0;
    for i in 0..60u32 {
        t += 500;
        let addr = format!("2001:db8:7:{:x}00::1", i);
        sim.see(t, vec![bad(&addr, i % 3, t)]);
    }
    let b = sim.entry("2001:db8:7::/48").expect("the /48 is banned");
    assert_eq!(b.evidence[0].counter, "bad-only addresses");
    assert!(b.reason.contains("/64s of 2001:db8:7::/48"), "{}", b.reason);
}

#[test]
fn ipv6_rotation_inside_one_64_bans_the_64() {
    let mut sim = Sim::new();
    let list = (1..=10)
        .map(|i| bad(&format!("2001:db8:1::{i:x}"), i % 3, T0))
        .collect();
    sim.see(T0, list);
    assert!(sim.dropped("2001:db8:1::/64"));
}

#[test]
fn rejects_and_auth_failures_ban_and_deliveries_raise_the_limit() {
    let mut sim = Sim::new();
    let mut o = bad("192.0.2.20", 1, T0);
    o.rejects = 5;
    sim.see(T0, vec![o]);
    assert_eq!(sim.entry("192.0.2.20").unwrap().evidence[0].rule, "rejects");
    let mut o = bad("192.0.2.21", 1, T0);
    o.rejects = 0;
    o.auth_failures = 4;
    sim.see(T0, vec![o.clone()]);
    assert!(sim.entry("192.0.2.21").is_none());
    o.auth_failures = 1;
    sim.see(T0 + 1000, vec![o]);
    let b = sim.entry("192.0.2.21").unwrap();
    assert_eq!(b.evidence[0].rule, "auth-failures");
    assert_eq!(b.expires_ms - b.created_ms, 3_600_000);
    // An address with ten delivered messages gets five times the room.
    let mut d = delivered("192.0.2.22", 0, T0);
    d.messages = 10;
    let mut o = bad("192.0.2.22", 1, T0);
    o.rejects = 24;
    sim.see(T0, vec![d, o.clone()]);
    assert!(sim.entry("192.0.2.22").is_none());
    o.rejects = 1;
    sim.see(T0 + 1000, vec![o]);
    assert!(sim.dropped("192.0.2.22"));
}

#[test]
fn an_allowlisted_verified_name_is_never_banned() {
    let mut sim = Sim::with_policy(|p| p.safety.allow_client_names = vec!["outlook.com".into()]);
    let mut o = bad("192.0.2.90", 0, T0);
    o.rejects = 50;
    o.bad = 50;
    o.verified_name = Some("mail-x.outbound.protection.outlook.com".into());
    sim.see(T0, vec![o.clone()]);
    assert!(sim.s.bans.is_empty());
    // The same name unverified ("unknown") earns nothing: the next address is banned.
    o.addr = "192.0.2.91".parse().unwrap();
    o.verified_name = None;
    sim.see(T0, vec![o]);
    assert!(sim.dropped("192.0.2.91"));
}

#[test]
fn a_batch_sent_again_after_failover_is_counted_once() {
    let mut sim = Sim::new();
    let entry = |seq| Command::Observe {
        hosts: vec!["mx1".into()],
        batches: vec![BatchId {
            host: 0,
            session: 42,
            seq,
        }],
        observations: vec![bad("192.0.2.5", 0, T0), bad("192.0.2.5", 0, T0 + 1000)],
    };
    sim.apply(T0 + 1000, entry(1));
    sim.apply(T0 + 1500, entry(1)); // the same batch, resent to a new leader
    let r = sim.s.report("192.0.2.5".parse().unwrap());
    assert_eq!(r.counters[0].count, 2, "two bad connections, not four");
    assert!(
        sim.s.bans.is_empty(),
        "four would have been a false refusal"
    );
    sim.apply(T0 + 2000, entry(2));
    assert_eq!(
        sim.s.report("192.0.2.5".parse().unwrap()).counters[0].count,
        4
    );
}

#[test]
fn a_botnet_wave_of_bad_only_addresses_stays_enforced() {
    let mut sim = Sim::with_policy(|p| p.safety.max_new_bans_per_minute = 50);
    let list: Vec<Observation> = (0..2000u32)
        .map(|i| {
            let mut o = bad(&format!("198.18.{}.{}", i / 250, i % 250 + 1), 0, T0);
            o.rejects = 5;
            o
        })
        .collect();
    sim.see(T0, list);
    assert!(sim.s.observe_only.is_none(), "{:?}", sim.s.observe_only);
    assert!(
        sim.s
            .bans
            .values()
            .filter(|b| b.prefix.prefix_len() == 32)
            .count()
            >= 2000
    );
}

#[test]
fn too_many_risky_bans_switch_to_observe_only_until_cleared() {
    let mut sim = Sim::with_policy(|p| p.safety.max_new_bans_per_minute = 5);
    // Eight addresses that delivered mail earlier, now each over the reject limit (as a
    // poisoned feed or a bug would report them).
    let mut list = vec![];
    for i in 1..=8 {
        let a = format!("198.18.{i}.1");
        list.push(delivered(&a, 0, T0 - 60_000));
        let mut o = bad(&a, 0, T0);
        o.rejects = 10;
        list.push(o);
    }
    let r = sim.see(T0, list);
    assert_eq!(r.changes.len(), 5, "five enforced");
    assert!(sim.s.observe_only.is_some());
    assert_eq!(sim.s.observed.len(), 3, "the rest recorded, not enforced");
    // A bad-only address is still banned meanwhile.
    let mut o = bad("198.18.99.1", 0, T0 + 500);
    o.rejects = 5;
    assert_eq!(sim.see(T0 + 500, vec![o]).changes.len(), 1);
    sim.apply(T0 + 1000, Command::ClearObserveOnly);
    assert!(sim.s.observe_only.is_none());
    let mut o = bad("198.18.8.1", 0, T0 + 2000);
    o.rejects = 10;
    assert_eq!(sim.see(T0 + 2000, vec![o]).changes.len(), 1);
    assert!(sim.dropped("198.18.8.1"));
}

#[test]
fn observe_only_ends_by_itself_once_the_signs_clear_and_raw_volume_still_trips() {
    let mut sim = Sim::with_policy(|p| {
        p.safety.max_new_bans_per_minute = 2;
        p.safety.max_all_new_bans_per_minute = 100;
        p.safety.observe_only_recovery_secs = 300;
    });
    let risky = |sim: &mut Sim, i: u32, t: i64| {
        let a = format!("198.18.{i}.1");
        let mut o = bad(&a, 0, t);
        o.rejects = 10;
        sim.see(t, vec![delivered(&a, 1, t - 60_000), o]);
    };
    for i in 1..=3 {
        risky(&mut sim, i, T0 + i as i64 * 1000);
    }
    assert!(sim.s.observe_only.is_some());
    // Another held-back decision keeps it on…
    risky(&mut sim, 4, T0 + 200_000);
    sim.apply(T0 + 400_000, Command::Tick);
    assert!(sim.s.observe_only.is_some(), "held back 200 s ago: not yet");
    // …and five quiet minutes end it without an operator.
    sim.apply(T0 + 200_000 + 300_000, Command::Tick);
    assert!(sim.s.observe_only.is_none());
    risky(&mut sim, 5, T0 + 510_000);
    assert!(sim.dropped("198.18.5.1"));
    // A volume no attack wave reaches holds back everything.
    let t = T0 + 600_000;
    let list = (0..150u32)
        .map(|i| {
            let mut o = bad(&format!("198.19.{}.{}", i / 200, i % 200 + 1), 0, t);
            o.rejects = 5;
            o
        })
        .collect();
    let r = sim.see(t, list);
    assert_eq!(r.changes.len(), 100);
    assert!(sim.s.observe_only.as_ref().is_some_and(|o| o.all));
}

#[test]
fn repeat_offenders_get_twice_as_long_capped_at_a_week() {
    let mut sim = Sim::new();
    let mut t = T0;
    let mut lengths = vec![];
    for _ in 0..9 {
        let mut o = bad("192.0.2.40", 0, t);
        o.rejects = 5;
        sim.see(t, vec![o]);
        let b = sim.entry("192.0.2.40").unwrap().clone();
        lengths.push((b.expires_ms - b.created_ms) / 1000);
        t = b.expires_ms + 1000;
        sim.apply(t, Command::Tick);
        assert!(sim.entry("192.0.2.40").is_none());
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
    let mut o = bad("198.51.100.7", 0, T0);
    o.rejects = 50;
    o.bad = 50;
    sim.see(T0, vec![o]);
    assert!(sim.s.bans.is_empty());
    let mut o = bad("192.0.2.50", 0, T0);
    o.rejects = 5;
    sim.see(T0, vec![o]);
    assert!(sim.dropped("192.0.2.50"));
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
    let mut wide = Policy::default();
    wide.changing_addresses.ipv4_prefix_len = 16;
    assert!(wide.validate().is_err());
    let mut wider = Policy::default();
    wider.changing_addresses.ipv6_wider_prefix_lens = vec![32];
    assert!(wider.validate().is_err());
    // Should one reach the state machine anyway, the decision is still refused.
    let mut sim = Sim::new();
    sim.s.policy = wide;
    let list = (0..10)
        .map(|i| bad(&format!("198.18.{i}.1"), 0, T0))
        .collect();
    sim.see(T0, list);
    assert_eq!(
        sim.s.prefixes.len(),
        1,
        "ten addresses of one /16 counted together"
    );
    assert!(sim.s.bans.is_empty(), "{:?}", sim.s.bans);
}

#[test]
fn manual_unban_of_an_automatic_ban_holds_for_an_hour() {
    let mut sim = Sim::new();
    let mut o = bad("192.0.2.60", 0, T0);
    o.rejects = 5;
    sim.see(T0, vec![o.clone()]);
    assert!(sim.dropped("192.0.2.60"));
    sim.apply(
        T0 + 1000,
        Command::Unban {
            prefix: net("192.0.2.60"),
        },
    );
    o.at = at(T0 + 2000);
    sim.see(T0 + 2000, vec![o.clone()]);
    assert!(sim.entry("192.0.2.60").is_none(), "held off by the unban");
    let later = T0 + 3_601_000 + 1000;
    o.at = at(later);
    sim.see(later, vec![o]);
    assert!(
        sim.dropped("192.0.2.60"),
        "banned again after the grace hour"
    );
}

#[test]
fn idle_counters_are_evicted_and_good_memory_lasts_a_day() {
    let mut sim = Sim::new();
    let mut list: Vec<Observation> = (0..100)
        .map(|i| neutral(&format!("198.18.2.{i}"), 0, T0))
        .collect();
    list.push(delivered("198.18.3.1", 0, T0));
    sim.see(T0, list);
    assert_eq!(sim.s.addrs.len(), 101);
    sim.apply(T0 + 11 * 60_000, Command::Tick);
    assert_eq!(sim.s.addrs.len(), 1, "the delivering address is remembered");
    sim.apply(T0 + 25 * 3_600_000, Command::Tick);
    assert_eq!(sim.s.addrs.len(), 0);
    assert!(sim.s.prefixes.is_empty());
}

proptest! {
    /// Whatever the interleaving, a prefix whose delivering addresses outnumber its bad-only
    /// ones by the policy's ratio is never banned.
    #[test]
    fn a_prefix_that_delivers_enough_is_never_banned(
        good in 2u32..40,
        order in prop::collection::vec((any::<bool>(), 0u32..250, 0i64..600_000, 0u32..3), 1..400),
        bad_share in 0u32..100,
    ) {
        let mut sim = Sim::new();
        let ratio = sim.s.policy.changing_addresses.bad_to_good_ratio;
        // Bad-only addresses: strictly fewer than ratio × good.
        let bad_n = (good * ratio - 1) * bad_share / 100;
        // Delivering addresses 1..=good first appear somewhere in the stream; a few also fail.
        let mut t = T0;
        for a in 1..=good {
            t += 10;
            sim.see(t, vec![delivered(&format!("203.0.113.{a}"), a % 3, t)]);
        }
        for (is_good, n, dt, host) in order {
            let t = T0 + 1000 + dt;
            let o = if is_good {
                let a = 1 + n % good;
                delivered(&format!("203.0.113.{a}"), host, t)
            } else if bad_n > 0 {
                bad(&format!("203.0.113.{}", 100 + n % bad_n), host, t)
            } else {
                bad(&format!("203.0.113.{}", 1 + n % good), host, t)
            };
            sim.see(t.max(sim.s.clock_ms), vec![o]);
            prop_assert!(!sim.dropped("203.0.113.0/24"), "banned with {} good and {} bad-only", good, bad_n);
        }
    }
}
