//! nf_tables rule expressions, as the kernel's virtual machine runs them: load a field into a
//! register, compare or look it up, count, decide. Each function returns one `NFTA_LIST_ELEM`.

use super::wire::Attrs;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// The first 16-byte data register (room for an IPv6 address).
const REG_1: u32 = 1;
const REG_VERDICT: u32 = 0;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const IPPROTO_TCP: u8 = 6;

/// One expression: its name and data.
fn expr(name: &str, data: Attrs) -> Attrs {
    Attrs::new().nested(
        NFTA_LIST_ELEM,
        Attrs::new()
            .str(NFTA_EXPR_NAME, name)
            .nested(NFTA_EXPR_DATA, data),
    )
}

fn value(bytes: &[u8]) -> Attrs {
    Attrs::new().bytes(NFTA_DATA_VALUE, bytes)
}

fn meta(key: u32) -> Attrs {
    expr("meta", Attrs::new().u32(2, key).u32(1, REG_1))
}

fn cmp(op: u32, bytes: &[u8]) -> Attrs {
    expr(
        "cmp",
        Attrs::new()
            .u32(1, REG_1)
            .u32(2, op)
            .nested(3, value(bytes)),
    )
}

fn payload(base: u32, offset: u32, len: u32) -> Attrs {
    expr(
        "payload",
        Attrs::new()
            .u32(1, REG_1)
            .u32(2, base)
            .u32(3, offset)
            .u32(4, len),
    )
}

/// Source-address family of a rule: which protocol and where its source address lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// `tcp dport PORT` for `family`'s packets: the match every mxrep rule starts with.
pub fn smtp_port(family: Family, port: u16) -> Vec<Attrs> {
    let proto = match family {
        Family::V4 => NFPROTO_IPV4,
        Family::V6 => NFPROTO_IPV6,
    };
    vec![
        meta(META_NFPROTO),
        cmp(NFT_CMP_EQ, &[proto]),
        meta(META_L4PROTO),
        cmp(NFT_CMP_EQ, &[IPPROTO_TCP]),
        payload(PAYLOAD_TRANSPORT, 2, 2),
        cmp(NFT_CMP_EQ, &port.to_be_bytes()),
    ]
}

/// Loads the source address (`ip saddr` / `ip6 saddr`).
pub fn saddr(family: Family) -> Attrs {
    match family {
        Family::V4 => payload(PAYLOAD_NETWORK, 12, 4),
        Family::V6 => payload(PAYLOAD_NETWORK, 8, 16),
    }
}

/// `@set`: the loaded value must be in the named set.
pub fn lookup(set: &str) -> Attrs {
    expr("lookup", Attrs::new().str(1, set).u32(2, REG_1))
}

pub fn counter() -> Attrs {
    expr("counter", Attrs::new().u64(1, 0).u64(2, 0))
}

/// `accept` or `drop`.
pub fn verdict(code: u32) -> Attrs {
    let v = Attrs::new().nested(NFTA_DATA_VERDICT, Attrs::new().u32(NFTA_VERDICT_CODE, code));
    expr("immediate", Attrs::new().u32(1, REG_VERDICT).nested(2, v))
}

/// `ct state new`: conntrack state loaded, masked to the NEW bit, not zero.
pub fn ct_state_new() -> Vec<Attrs> {
    const CT_STATE: u32 = 0;
    const NEW_BIT: u32 = 1 << 3;
    let len = 4u32;
    vec![
        expr("ct", Attrs::new().u32(1, REG_1).u32(2, CT_STATE)),
        expr(
            "bitwise",
            Attrs::new()
                .u32(1, REG_1)
                .u32(2, REG_1)
                .u32(3, len)
                .nested(4, value(&NEW_BIT.to_ne_bytes()))
                .nested(5, value(&0u32.to_ne_bytes())),
        ),
        cmp(NFT_CMP_NEQ, &0u32.to_ne_bytes()),
    ]
}

/// `update @set { <loaded key> limit rate over RATE/minute burst BURST packets }`: true once the
/// key's own meter runs over.
pub fn meter_over(set: &str, per_minute: u64, burst: u32) -> Attrs {
    const OP_UPDATE: u32 = 1;
    const LIMIT_PKTS: u32 = 0;
    const LIMIT_INVERTED: u32 = 1;
    let limit = Attrs::new().str(NFTA_EXPR_NAME, "limit").nested(
        NFTA_EXPR_DATA,
        Attrs::new()
            .u64(1, per_minute)
            .u64(2, 60)
            .u32(3, burst)
            .u32(4, LIMIT_PKTS)
            .u32(5, LIMIT_INVERTED),
    );
    expr(
        "dynset",
        Attrs::new()
            .str(1, set)
            .u32(3, OP_UPDATE)
            .u32(4, REG_1)
            .nested(7, limit),
    )
}

/// The `NFTA_RULE_EXPRESSIONS` payload of a list of expressions.
pub fn list(exprs: Vec<Attrs>) -> Attrs {
    let mut out = Attrs::new();
    for e in exprs {
        out.0.extend_from_slice(&e.0);
    }
    out
}

/// The sets a rule's expressions look up (`NFTA_RULE_EXPRESSIONS` payload read back).
pub fn looked_up_sets(exprs: &[u8]) -> Vec<String> {
    use super::wire::{as_str, attrs, find};
    attrs(exprs)
        .into_iter()
        .filter_map(|(_, e)| {
            let name = as_str(find(e, NFTA_EXPR_NAME)?);
            let data = find(e, NFTA_EXPR_DATA)?;
            match name {
                "lookup" => Some(as_str(find(data, 1)?).to_string()),
                _ => None,
            }
        })
        .collect()
}

/// The packets of the counter among a rule's expressions (None: the rule counts nothing).
pub fn counted_packets(exprs: &[u8]) -> Option<u64> {
    use super::wire::{as_str, as_u64, attrs, find};
    attrs(exprs).into_iter().find_map(|(_, e)| {
        let data = find(e, NFTA_EXPR_DATA)?;
        match as_str(find(e, NFTA_EXPR_NAME)?) {
            "counter" => find(data, 2).and_then(as_u64),
            _ => None,
        }
    })
}
