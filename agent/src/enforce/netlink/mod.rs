//! nftables over netlink, with no `nft` binary and no libnftnl: the agent speaks nf_tables'
//! own messages to the kernel. Why: with nft 1.0.6 any element update in a table that also
//! holds an interval set makes `nft` read that set's elements back first (29.5 ms with 10,000
//! prefixes, 0.84 s with 100,000); netlink has no userspace cache, so a change costs the same
//! whatever the sets hold, and the agent's image is one binary.
//!
//! Layout: [`wire`] the bytes (attributes, messages, batches, parsing); [`exprs`] rule
//! expressions; [`objects`] the table, sets, chains and rules; [`elements`] set elements and
//! reading them back; [`socket`] the socket (transactions, dumps, change notifications).

pub mod elements;
pub mod exprs;
pub mod objects;
pub mod socket;
pub mod wire;

pub use elements::Elem;
pub use socket::{NftNetlink, Notifications};
