//! What this node does at the edge after applying each entry, outside the pure state machine:
//! publish ban changes to the agents' feed (with the decision's trace context), publish sighting
//! keys, tell the DNS lookups about observed addresses, write the audit line, and count bans.

use super::ban_feed::BanFeed;
use super::greylist_feed::GreylistFeed;
use super::state_store::ObservedTap;
use crate::metrics::{kv, node};
use crate::state::audit::AuditEntry;
use crate::state::{BanChangeKind, BanSource, Command, Response};
use mxrep_common::telemetry::propagate;

/// The feeds and taps one applied entry is reported to.
pub struct ApplyEffects<'a> {
    pub feed: &'a BanFeed,
    pub greylist_feed: &'a GreylistFeed,
    pub observed_tap: Option<&'a ObservedTap>,
}

impl ApplyEffects<'_> {
    /// Reports the entry at `index` (its command, if it carried one) and what applying it changed;
    /// `audit` is the audit entry it recorded, if any.
    pub fn after(
        &self,
        index: u64,
        command: Option<&Command>,
        response: &Response,
        audit: Option<&AuditEntry>,
    ) {
        // A traced entry that added a ban: the decision joins the trace of what decided it.
        let first_added = response
            .changes
            .iter()
            .find(|c| c.kind == BanChangeKind::Added);
        let decided =
            command
                .and_then(Command::traceparent)
                .zip(first_added)
                .map(|(parent, first)| {
                    let span = tracing::info_span!(
                        "ban.decided",
                        index,
                        changes = response.changes.len(),
                        prefix = %first.ban.prefix,
                        rule = rule_of(first)
                    );
                    propagate::set_parent(&span, parent);
                    span
                });
        let trace = decided
            .as_ref()
            .map(propagate::traceparent)
            .unwrap_or_default();
        self.feed.publish(index, response, trace);
        count_bans(response);
        match command.map(Command::untraced) {
            Some(Command::Greylist(sightings)) => {
                let keys = sightings.iter().map(|s| s.triplet).collect();
                self.greylist_feed.publish(index, keys);
            }
            Some(Command::Observe { observations, .. }) => {
                if let Some(tap) = self.observed_tap {
                    observations.iter().for_each(|o| tap(o.addr));
                }
            }
            Some(Command::Audited { command, .. }) => {
                node()
                    .admin_writes
                    .add(1, &[kv("what", admin_kind(command.untraced()))]);
                // One JSON line per administrative write, for a SIEM to collect.
                if let Some(e) = audit.filter(|e| e.index == index) {
                    let line = serde_json::to_string(e).unwrap_or_default();
                    tracing::info!(target: "mxrep_audit", "{line}");
                }
            }
            _ => {}
        }
    }
}

/// The rule a ban is counted under: the first evidence's rule, or `manual`.
fn rule_of(c: &crate::state::BanChange) -> String {
    match c.ban.source {
        BanSource::Manual => "manual".into(),
        BanSource::Automatic => c
            .ban
            .evidence
            .first()
            .map(|e| e.rule.clone())
            .unwrap_or_else(|| "unknown".into()),
    }
}

fn count_bans(response: &Response) {
    for c in &response.changes {
        match c.kind {
            BanChangeKind::Added => {
                let source = match c.ban.source {
                    BanSource::Manual => "manual",
                    BanSource::Automatic => "automatic",
                };
                let action = match c.ban.action {
                    crate::state::BanAction::Drop => "drop",
                    crate::state::BanAction::Reject => "reject",
                    crate::state::BanAction::Tempfail => "tempfail",
                };
                node().bans_created.add(
                    1,
                    &[
                        kv("rule", rule_of(c)),
                        kv("source", source),
                        kv("action", action),
                    ],
                );
            }
            BanChangeKind::Expired => node().bans_ended.add(1, &[kv("why", "expired")]),
            BanChangeKind::Removed => node().bans_ended.add(1, &[kv("why", "removed")]),
            BanChangeKind::Extended => {}
        }
    }
}

/// What kind of administrative write a command is.
fn admin_kind(c: &Command) -> &'static str {
    match c {
        Command::Ban { .. } => "ban",
        Command::Unban { .. } => "unban",
        Command::SetPolicy(_) => "policy",
        Command::Allow { .. } => "allow",
        Command::ClearObserveOnly => "observe_only_clear",
        _ => "other",
    }
}
