//! The bytes of nfnetlink: attributes (type, length, payload, padded to 4), messages (netlink
//! header, nfgenmsg, attributes), batches (begin, messages, end: one transaction), and reading
//! attributes back. Pure: nothing here talks to the kernel.

/// netlink message types and flags used here.
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
pub const NFPROTO_INET: u8 = 1;

/// nf_tables message kinds (`enum nf_tables_msg_types`).
pub mod msg {
    pub const NEWTABLE: u16 = 0;
    pub const GETTABLE: u16 = 1;
    pub const DELTABLE: u16 = 2;
    pub const NEWCHAIN: u16 = 3;
    pub const DELCHAIN: u16 = 5;
    pub const NEWRULE: u16 = 6;
    pub const GETRULE: u16 = 7;
    pub const DELRULE: u16 = 8;
    pub const NEWSET: u16 = 9;
    pub const GETSET: u16 = 10;
    pub const DELSET: u16 = 11;
    pub const NEWSETELEM: u16 = 12;
    pub const GETSETELEM: u16 = 13;
    pub const DELSETELEM: u16 = 14;
}

/// The netlink message type of nf_tables message `kind`.
pub fn nft_type(kind: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Attributes being built: each appended whole, so nesting is building an inner [`Attrs`].
#[derive(Debug, Default, Clone)]
pub struct Attrs(pub Vec<u8>);

impl Attrs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(mut self, kind: u16, payload: &[u8]) -> Self {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(align(self.0.len()), 0);
        self
    }

    /// A NUL-terminated string.
    pub fn str(self, kind: u16, s: &str) -> Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.bytes(kind, &v)
    }

    /// A 32-bit number in network byte order, as nf_tables wants its numbers.
    pub fn u32(self, kind: u16, n: u32) -> Self {
        self.bytes(kind, &n.to_be_bytes())
    }

    pub fn u64(self, kind: u16, n: u64) -> Self {
        self.bytes(kind, &n.to_be_bytes())
    }

    pub fn nested(self, kind: u16, inner: Attrs) -> Self {
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }
}

/// Appends one message: netlink header, nfgenmsg (`family`, version 0, `res_id`), attributes.
fn message(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, a: &[u8]) {
    let len = 16 + 4 + a.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.push(family);
    buf.push(0);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(a);
    buf.resize(align(buf.len()), 0);
}

/// A single request outside a batch (a get or a dump).
pub fn request(kind: u16, flags: u16, seq: u32, attrs: &Attrs) -> Vec<u8> {
    let mut buf = Vec::new();
    message(
        &mut buf,
        nft_type(kind),
        NLM_F_REQUEST | flags,
        seq,
        NFPROTO_INET,
        0,
        &attrs.0,
    );
    buf
}

/// One transaction: every message asks for an acknowledgement, so the kernel's answer to each
/// can be awaited; the kernel applies all or none.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    next_seq: u32,
    acked: Vec<u32>,
}

impl Batch {
    /// A batch whose messages are numbered from `seq` on (wrapping).
    pub fn new(seq: u32) -> Self {
        let mut buf = Vec::new();
        message(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        Self {
            buf,
            next_seq: seq.wrapping_add(1),
            acked: vec![],
        }
    }

    /// Adds nf_tables message `kind` with `flags` (REQUEST and ACK are added).
    pub fn push(&mut self, kind: u16, flags: u16, attrs: Attrs) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let flags = flags | NLM_F_REQUEST | NLM_F_ACK;
        message(
            &mut self.buf,
            nft_type(kind),
            flags,
            seq,
            NFPROTO_INET,
            0,
            &attrs.0,
        );
        self.acked.push(seq);
    }

    pub fn is_empty(&self) -> bool {
        self.acked.is_empty()
    }

    /// The bytes to send, the sequence numbers to be acknowledged, and the next free number.
    pub fn finish(mut self) -> (Vec<u8>, Vec<u32>, u32) {
        let end = self.next_seq;
        message(
            &mut self.buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        (self.buf, self.acked, end.wrapping_add(1))
    }
}

/// One received netlink message.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub kind: u16,
    pub seq: u32,
    /// What follows the netlink header (for nf_tables: nfgenmsg, then attributes).
    pub body: &'a [u8],
}

/// The messages in one datagram; a truncated tail is ignored.
pub fn messages(buf: &[u8]) -> Vec<Received<'_>> {
    let mut out = vec![];
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        out.push(Received {
            kind: u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes")),
            seq: u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes")),
            body: &buf[off + 16..off + len],
        });
        off += align(len);
    }
    out
}

/// The error code of an `NLMSG_ERROR` body (0: an acknowledgement).
pub fn error_code(body: &[u8]) -> i32 {
    body.get(..4).map_or(-libc::EPROTO, |b| {
        i32::from_ne_bytes(b.try_into().expect("4 bytes"))
    })
}

/// The attributes of `buf`: (type without flag bits, payload). Malformed tails are ignored.
pub fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = vec![];
    let mut off = 0;
    while off + 4 <= buf.len() {
        let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & 0x3fff;
        if len < 4 || off + len > buf.len() {
            break;
        }
        out.push((kind, &buf[off + 4..off + len]));
        off += align(len);
    }
    out
}

/// The first attribute of type `kind` in `buf`.
pub fn find(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// A NUL-terminated string attribute.
pub fn as_str(v: &[u8]) -> &str {
    std::str::from_utf8(v.split(|b| *b == 0).next().unwrap_or(&[])).unwrap_or("")
}

pub fn as_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

pub fn as_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding_and_nesting() {
        let inner = Attrs::new().u32(1, 7).str(2, "ban4");
        let a = Attrs::new()
            .nested(3, inner)
            .u64(4, 60_000)
            .bytes(5, &[1, 2, 3]);
        let got = attrs(&a.0);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, 3, "the nested flag is masked off");
        assert_eq!(as_u32(find(got[0].1, 1).unwrap()), Some(7));
        assert_eq!(as_str(find(got[0].1, 2).unwrap()), "ban4");
        assert_eq!(as_u64(got[1].1), Some(60_000));
        assert_eq!(got[2].1, &[1, 2, 3]);
        assert_eq!(a.0.len() % 4, 0);
    }

    #[test]
    fn a_batch_numbers_its_messages_and_wraps() {
        let mut b = Batch::new(u32::MAX - 1);
        b.push(msg::NEWTABLE, NLM_F_CREATE, Attrs::new().str(1, "t"));
        b.push(msg::NEWSET, NLM_F_CREATE, Attrs::new().str(1, "t"));
        let (buf, acked, next) = b.finish();
        assert_eq!(acked, vec![u32::MAX, 0]);
        assert_eq!(next, 2);
        let m = messages(&buf);
        assert_eq!(m.len(), 4, "begin, two messages, end");
        assert_eq!(m[1].kind, nft_type(msg::NEWTABLE));
        assert_eq!(m[3].seq, 1);
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = messages(&junk);
            let _ = attrs(&junk);
        }
    }
}
