//! The audit trail, as replicated data: every administrative write (ban, unban, policy,
//! allowlist, observe-only, membership) with who asked — the client certificate's subject, "dev"
//! without TLS — when, what, and what it replaced. Kept for `audit.keep_days` and at most
//! [`MAX_ENTRIES`], so a snapshot stays bounded.

use super::{Command, ReputationState};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Entries kept at most, whatever their age.
pub const MAX_ENTRIES: usize = 10_000;

/// One administrative write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Cluster time it was applied (unix ms).
    pub at_ms: i64,
    /// Log index of the write.
    pub index: u64,
    /// Who asked: the certificate subject, or "dev".
    pub actor: String,
    /// What was done, in words ("ban 203.0.113.0/24 for 3600 s: snowshoe").
    pub action: String,
    /// What it replaced, in words (empty when nothing was there).
    pub replaced: String,
}

impl ReputationState {
    /// The words for `command` and for what it would replace now (before it is applied).
    pub(super) fn describe_change(&self, command: &Command) -> (String, String) {
        match command {
            Command::Ban {
                prefix,
                duration_ms,
                reason,
                ..
            } => (
                format!("ban {prefix} for {} s: {reason}", duration_ms / 1000),
                self.bans.get(prefix).map(ban_words).unwrap_or_default(),
            ),
            Command::Unban { prefix } => (
                format!("unban {prefix}"),
                self.bans.get(prefix).map(ban_words).unwrap_or_default(),
            ),
            Command::SetPolicy(_) => (
                "replace the policy".into(),
                toml::to_string(&self.policy).unwrap_or_default(),
            ),
            Command::Allow { prefix, add } => (
                format!(
                    "{} {prefix} {} the allowlist",
                    if *add { "add" } else { "remove" },
                    if *add { "to" } else { "from" }
                ),
                if self.allow.contains(prefix) {
                    format!("{prefix} was on the allowlist")
                } else {
                    String::new()
                },
            ),
            Command::ClearObserveOnly => (
                "end observe-only mode".into(),
                self.observe_only
                    .as_ref()
                    .map(|o| format!("observe-only: {}", o.reason))
                    .unwrap_or_default(),
            ),
            Command::AuditNote(text) => (text.clone(), String::new()),
            other => (
                format!("{other:?}").chars().take(200).collect(),
                String::new(),
            ),
        }
    }

    /// Records an entry, forgetting what is past the keeping time or the count.
    pub(super) fn record_audit(&mut self, entry: AuditEntry) {
        let keep_ms = i64::from(self.policy.audit.keep_days) * 86_400_000;
        let oldest = self.clock_ms.saturating_sub(keep_ms);
        while self.audit.front().is_some_and(|e| e.at_ms < oldest)
            || self.audit.len() >= MAX_ENTRIES
        {
            self.audit.pop_front();
        }
        self.audit.push_back(entry);
    }
}

fn ban_words(b: &super::Ban) -> String {
    format!(
        "ban {} until {} ms ({:?}): {}",
        b.prefix, b.expires_ms, b.source, b.reason
    )
}

/// Entries at or after `since_ms`, oldest first.
pub fn since(log: &VecDeque<AuditEntry>, since_ms: i64) -> Vec<AuditEntry> {
    log.iter()
        .filter(|e| e.at_ms >= since_ms)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{BanSource, Request};

    fn apply(s: &mut ReputationState, index: u64, now_ms: i64, actor: &str, command: Command) {
        let command = Command::Audited {
            actor: actor.into(),
            command: Box::new(command),
        };
        s.apply(index, &Request { now_ms, command });
    }

    #[test]
    fn who_what_and_what_it_replaced_kept_for_the_policy_time() {
        let mut s = ReputationState::default();
        let day = 86_400_000;
        let prefix = "192.0.2.0/24".parse().unwrap();
        let ban = |reason: &str| Command::Ban {
            prefix,
            duration_ms: 3_600_000,
            reason: reason.into(),
            source: BanSource::Manual,
        };
        apply(&mut s, 1, day, "CN=alice, O=mxrep:admin", ban("first"));
        apply(&mut s, 2, day + 1, "CN=bob, O=mxrep:admin", ban("second"));
        apply(&mut s, 3, day + 2, "dev", Command::Unban { prefix });
        let e: Vec<_> = s.audit.iter().collect();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].actor, "CN=alice, O=mxrep:admin");
        assert_eq!(e[0].action, "ban 192.0.2.0/24 for 3600 s: first");
        assert_eq!(e[0].replaced, "");
        assert!(e[1].replaced.contains("first"), "{}", e[1].replaced);
        assert!(e[2].replaced.contains("second"), "{}", e[2].replaced);
        assert!(s.bans.is_empty(), "the commands themselves were applied");
        // Kept for keep_days (90 by default): a write 91 days later leaves only itself.
        apply(
            &mut s,
            4,
            day * 92,
            "dev",
            Command::AuditNote("node 4 added".into()),
        );
        assert_eq!(s.audit.len(), 1);
        assert_eq!(since(&s.audit, 0)[0].action, "node 4 added");
        assert!(since(&s.audit, day * 93).is_empty());
    }
}
