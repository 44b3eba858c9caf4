//! The ban-list stream's updates, translated into what the agent does with them: pure, no I/O,
//! no clock but the `now` given. A snapshot becomes the exact set the kernel must hold; a change
//! becomes a kernel operation and a change of the agent's view. Temporary refusals (the
//! connection-rate rule's first answer) go to the view only — the policy service answers them
//! with a 450 — and never into nftables.

use super::view::{Known, Refusal};
use super::BanOp;
use ipnet::IpNet;
use mxrep_proto::v1 as pb;
use pb::ban_update::Update;
use std::collections::BTreeMap;

/// Seconds left of a ban, rounded up; None once expired.
pub fn remaining(expires_ms: i64, now: i64) -> Option<u64> {
    (expires_ms > now).then(|| ((expires_ms - now + 999) / 1000) as u64)
}

/// A full ban set from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    /// What the firewall must hold: dropping entries, seconds left.
    pub desired: Vec<(IpNet, u64)>,
    /// Everything the view holds, temporary refusals included.
    pub known: BTreeMap<IpNet, Known>,
}

/// One change of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewChange {
    Insert(IpNet, Known),
    Remove(IpNet),
}

/// What a run of updates amounts to, in order: a snapshot (if one came, the latest), then the
/// kernel operations and view changes that followed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    pub snapshot: Option<Snapshot>,
    pub ops: Vec<BanOp>,
    pub view: Vec<ViewChange>,
    /// The highest version seen (0 if none).
    pub version: u64,
}

fn known(b: &pb::Ban) -> Known {
    Known {
        expires_ms: b.expires_unix_ms,
        reason: b.reason.clone(),
        refusal: match b.action() {
            pb::BanAction::Drop => Refusal::Drop,
            pb::BanAction::Tempfail => Refusal::Tempfail,
            pb::BanAction::Reject => Refusal::Reject,
        },
    }
}

/// Translates `updates` at wall time `now` (unix ms). Unparseable prefixes and expired bans are
/// skipped.
pub fn translate(updates: Vec<pb::BanUpdate>, now: i64) -> Translation {
    let mut t = Translation::default();
    for u in updates {
        match u.update {
            Some(Update::Snapshot(s)) => {
                t.ops.clear();
                t.view.clear();
                let mut snap = Snapshot {
                    version: s.version,
                    desired: vec![],
                    known: BTreeMap::new(),
                };
                for b in s.bans {
                    let Ok(p) = b.prefix.parse::<IpNet>() else {
                        continue;
                    };
                    let Some(left) = remaining(b.expires_unix_ms, now) else {
                        continue;
                    };
                    let k = known(&b);
                    if k.drops() {
                        snap.desired.push((p, left));
                    }
                    snap.known.insert(p, k);
                }
                t.version = t.version.max(s.version);
                t.snapshot = Some(snap);
            }
            Some(Update::Change(c)) => {
                let kind = c.kind();
                t.version = t.version.max(c.version);
                let Some(b) = c.ban else { continue };
                let Ok(p) = b.prefix.parse::<IpNet>() else {
                    continue;
                };
                let live = matches!(kind, pb::BanChangeKind::Added | pb::BanChangeKind::Extended);
                match remaining(b.expires_unix_ms, now).filter(|_| live) {
                    Some(left) => {
                        let k = known(&b);
                        if !k.drops() {
                            // Not (or no longer) dropped here: make sure the kernel agrees.
                            if kind == pb::BanChangeKind::Extended {
                                t.ops.push(BanOp::Remove { prefix: p });
                            }
                        } else if kind == pb::BanChangeKind::Added {
                            t.ops.push(BanOp::Add {
                                prefix: p,
                                timeout_secs: left,
                            });
                        } else {
                            t.ops.push(BanOp::Refresh {
                                prefix: p,
                                timeout_secs: left,
                            });
                        }
                        t.view.push(ViewChange::Insert(p, k));
                    }
                    None => {
                        t.ops.push(BanOp::Remove { prefix: p });
                        t.view.push(ViewChange::Remove(p));
                    }
                }
            }
            None => {}
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn ban(prefix: &str, left_s: i64, action: pb::BanAction) -> pb::Ban {
        pb::Ban {
            prefix: prefix.into(),
            reason: "r".into(),
            expires_unix_ms: NOW + left_s * 1000,
            action: action as i32,
            ..Default::default()
        }
    }
    fn change(v: u64, kind: pb::BanChangeKind, b: pb::Ban) -> pb::BanUpdate {
        pb::BanUpdate {
            group: 0,
            update: Some(Update::Change(pb::BanChange {
                version: v,
                kind: kind as i32,
                ban: Some(b),
                traceparent: String::new(),
            })),
        }
    }
    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn snapshot_then_changes() {
        use pb::BanAction::{Drop, Tempfail};
        use pb::BanChangeKind::*;
        let snap = pb::BanUpdate {
            group: 0,
            update: Some(Update::Snapshot(pb::BanSnapshot {
                version: 7,
                bans: vec![
                    ban("192.0.2.1/32", 60, Drop),
                    ban("192.0.2.2/32", 60, Tempfail),
                    ban("192.0.2.3/32", -5, Drop),
                    ban("not a prefix", 60, Drop),
                ],
            })),
        };
        let t = translate(
            vec![
                snap,
                change(8, Added, ban("203.0.113.0/24", 3600, Drop)),
                change(9, Added, ban("192.0.2.9/32", 600, Tempfail)),
                change(10, Extended, ban("192.0.2.9/32", 600, Drop)),
                change(11, Expired, ban("192.0.2.1/32", 0, Drop)),
            ],
            NOW,
        );
        let s = t.snapshot.unwrap();
        assert_eq!(
            s.desired,
            vec![(net("192.0.2.1/32"), 60)],
            "tempfail and expired stay out"
        );
        assert_eq!(s.known.len(), 2);
        assert_eq!(s.known[&net("192.0.2.2/32")].refusal, Refusal::Tempfail);
        assert_eq!(
            t.ops,
            vec![
                BanOp::Add {
                    prefix: net("203.0.113.0/24"),
                    timeout_secs: 3600
                },
                BanOp::Refresh {
                    prefix: net("192.0.2.9/32"),
                    timeout_secs: 600
                },
                BanOp::Remove {
                    prefix: net("192.0.2.1/32")
                },
            ]
        );
        assert_eq!(t.view.len(), 4);
        assert_eq!(t.version, 11);
    }

    #[test]
    fn a_later_snapshot_replaces_what_came_before() {
        let t = translate(
            vec![
                change(
                    3,
                    pb::BanChangeKind::Added,
                    ban("192.0.2.1/32", 60, pb::BanAction::Drop),
                ),
                pb::BanUpdate {
                    group: 0,
                    update: Some(Update::Snapshot(pb::BanSnapshot {
                        version: 4,
                        bans: vec![],
                    })),
                },
            ],
            NOW,
        );
        assert!(t.ops.is_empty() && t.view.is_empty());
        assert_eq!(t.snapshot.unwrap().version, 4);
    }
}
