//! DNS lists at the edge of the node: the resolver, the lookups of newly seen addresses (once
//! per TTL for the whole cluster, bounded, budgeted), and the RFC 5782 probes of each list. What
//! they find enters the replicated log as data (`Command::Dnsbl`, `Command::ListHealth`); the
//! pure state machine scores it.
//!
//! - [`resolver`]: one list query (A, then TXT when listed), with a timeout;
//! - [`names`]: forward-confirmed reverse DNS of a client (its verified name);
//! - [`lookups`]: addresses in, answers proposed, a daily budget per list;
//! - [`probes`]: each list's health, proposed by the leader when it changes;
//! - [`zone`]: mxrep's own ban list as a DNSBL zone: what each name holds, its records;
//! - [`zone_serve`]: the zone on UDP (a lean loop on hickory-proto) and TCP (hickory-server).

pub mod lookups;
pub mod names;
pub mod probes;
pub mod resolver;
pub mod zone;
pub mod zone_serve;
