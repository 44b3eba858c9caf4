//! The agent's table as nf_tables objects: table `inet <name>`, the six sets of the design, the
//! `prerouting` chain at raw priority with one allow and one drop rule per set and SMTP port,
//! and `--local-rate`'s meter chain. [`setup`] adds what is missing and rewrites the rules, in
//! one transaction, never touching a set's elements.

use super::exprs::{self, Family, NF_ACCEPT, NF_DROP};
use super::wire::{msg, Attrs, Batch, NLM_F_APPEND, NLM_F_CREATE};

const SET_INTERVAL: u32 = 0x4;
const SET_TIMEOUT: u32 = 0x10;
const SET_EVAL: u32 = 0x20;
const TYPE_IPV4: u32 = 7;
const TYPE_IPV6: u32 = 8;
const HOOK_PREROUTING: u32 = 0;
const PRIORITY_RAW: i32 = -300;
const PRIORITY_LOCAL_RATE: i32 = -150;

/// A set the agent owns: name, family, flags.
pub struct SetSpec {
    pub name: &'static str,
    pub family: Family,
    pub flags: u32,
}

/// The ban and allow sets, in the order the rules use them.
pub const SETS: [SetSpec; 6] = [
    SetSpec {
        name: "allow4",
        family: Family::V4,
        flags: SET_INTERVAL,
    },
    SetSpec {
        name: "allow6",
        family: Family::V6,
        flags: SET_INTERVAL,
    },
    SetSpec {
        name: "ban4",
        family: Family::V4,
        flags: SET_TIMEOUT,
    },
    SetSpec {
        name: "ban4net",
        family: Family::V4,
        flags: SET_INTERVAL | SET_TIMEOUT,
    },
    SetSpec {
        name: "ban6",
        family: Family::V6,
        flags: SET_TIMEOUT,
    },
    SetSpec {
        name: "ban6net",
        family: Family::V6,
        flags: SET_INTERVAL | SET_TIMEOUT,
    },
];

/// The chain holding the allow and drop rules.
pub const CHAIN: &str = "prerouting";
const LOCAL_RATE_CHAIN: &str = "localrate";

/// A counter on every element of a set (`counter` in nft's set syntax): per-ban drop counts.
fn element_counter() -> Attrs {
    Attrs::new()
        .str(1, "counter")
        .nested(2, Attrs::new().u64(1, 0).u64(2, 0))
}

fn set_attrs(table: &str, name: &str, family: Family, flags: u32, id: u32) -> Attrs {
    let (kind, len) = match family {
        Family::V4 => (TYPE_IPV4, 4),
        Family::V6 => (TYPE_IPV6, 16),
    };
    Attrs::new()
        .str(1, table)
        .str(2, name)
        .u32(3, flags)
        .u32(4, kind)
        .u32(5, len)
        .u32(10, id)
}

fn chain(b: &mut Batch, table: &str, name: &str, priority: i32) {
    let hook = Attrs::new().u32(1, HOOK_PREROUTING).u32(2, priority as u32);
    b.push(
        msg::NEWCHAIN,
        NLM_F_CREATE,
        Attrs::new()
            .str(1, table)
            .str(3, name)
            .nested(4, hook)
            .u32(5, NF_ACCEPT)
            .str(7, "filter"),
    );
    // Flush it: the rules are written anew below.
    b.push(msg::DELRULE, 0, Attrs::new().str(1, table).str(2, name));
}

fn rule(b: &mut Batch, table: &str, chain: &str, exprs: Vec<Attrs>) {
    b.push(
        msg::NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        Attrs::new()
            .str(1, table)
            .str(2, chain)
            .nested(4, exprs::list(exprs)),
    );
}

/// One rule: `tcp dport PORT <saddr> @set [counter] accept|drop`.
fn set_rule(b: &mut Batch, table: &str, chain: &str, set: &SetSpec, port: u16, code: u32) {
    let mut e = exprs::smtp_port(set.family, port);
    e.push(exprs::saddr(set.family));
    e.push(exprs::lookup(set.name));
    if code == NF_DROP {
        e.push(exprs::counter());
    }
    e.push(exprs::verdict(code));
    rule(b, table, chain, e);
}

/// Adds the whole table to `b`: missing objects created, rules rewritten, elements kept. With
/// `counters`, the ban sets count packets per element (a set made without them keeps none: the
/// kernel refuses to change an existing set's expressions).
pub fn setup(b: &mut Batch, table: &str, ports: &[u16], local_rate: bool, counters: bool) {
    b.push(msg::NEWTABLE, NLM_F_CREATE, Attrs::new().str(1, table));
    for (i, s) in SETS.iter().enumerate() {
        let mut a = set_attrs(table, s.name, s.family, s.flags, i as u32 + 1);
        if counters && s.name.starts_with("ban") {
            a = a.nested(17, element_counter());
        }
        b.push(msg::NEWSET, NLM_F_CREATE, a);
    }
    chain(b, table, CHAIN, PRIORITY_RAW);
    for s in &SETS {
        let code = if s.name.starts_with("allow") {
            NF_ACCEPT
        } else {
            NF_DROP
        };
        for &p in ports {
            set_rule(b, table, CHAIN, s, p, code);
        }
    }
    local_rate_meter(b, table, ports, local_rate);
}

/// `--local-rate`: per-address meters that drop the 4th new connection within 60 s, on this
/// host alone; when off, the chain and its sets are removed (created first, so removal never
/// fails on their absence).
fn local_rate_meter(b: &mut Batch, table: &str, ports: &[u16], on: bool) {
    chain(b, table, LOCAL_RATE_CHAIN, PRIORITY_LOCAL_RATE);
    let meters = [("rate4", Family::V4, 11u32), ("rate6", Family::V6, 12)];
    for (name, family, id) in meters {
        let a = set_attrs(table, name, family, SET_TIMEOUT | SET_EVAL, id).u64(11, 60_000);
        b.push(msg::NEWSET, NLM_F_CREATE, a);
    }
    if !on {
        b.push(
            msg::DELCHAIN,
            0,
            Attrs::new().str(1, table).str(3, LOCAL_RATE_CHAIN),
        );
        for (name, _, _) in meters {
            b.push(msg::DELSET, 0, Attrs::new().str(1, table).str(2, name));
        }
        return;
    }
    for &p in ports {
        for s in SETS.iter().filter(|s| s.name.starts_with("allow")) {
            set_rule(b, table, LOCAL_RATE_CHAIN, s, p, NF_ACCEPT);
        }
        for (name, family, _) in meters {
            let mut e = exprs::smtp_port(family, p);
            e.extend(exprs::ct_state_new());
            e.push(exprs::saddr(family));
            e.push(exprs::meter_over(name, 3, 3));
            e.push(exprs::counter());
            e.push(exprs::verdict(NF_DROP));
            rule(b, table, LOCAL_RATE_CHAIN, e);
        }
    }
}
