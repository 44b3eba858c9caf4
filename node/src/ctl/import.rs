//! `mxrepctl bans import FILE --for DURATION --reason TEXT [--force]`: loads a list operators
//! already have — one address or prefix per line, `#` comments, Spamhaus DROP's
//! `prefix ; SBL id` form — with the same guards as `mxrepctl ban` (breadth, allowlist, the nodes'
//! own addresses) unless `--force`. Sixteen bans in flight at once, a progress line on a
//! terminal, and a summary: added, already banned, refused and why.

use super::ban::parse_duration;
use super::Output;
use crate::state::parse_prefix_strict;
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::{BanRequest, ListBansRequest};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The list: one address or prefix per line; `#` starts a comment, `; …` after a prefix is
    /// ignored (Spamhaus DROP).
    pub file: PathBuf,
    /// How long each ban lasts, e.g. 1h, 7d.
    #[arg(long = "for", value_parser = parse_duration)]
    pub duration: Duration,
    /// Why, for the record (the file's name if not given).
    #[arg(long)]
    pub reason: Option<String>,
    /// Ban even what the guards refuse.
    #[arg(long)]
    pub force: bool,
}

/// One line's prefix, `None` for a blank or comment line, `Err` for a malformed one.
pub fn line_prefix(line: &str) -> Option<Result<ipnet::IpNet, String>> {
    let text = line.split(['#', ';']).next().unwrap_or("").trim();
    if text.is_empty() {
        return None;
    }
    Some(parse_prefix_strict(text).map_err(|e| e.to_string()))
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    a: ImportArgs,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let reason = a
        .reason
        .unwrap_or_else(|| format!("imported from {}", a.file.display()));
    let secs = a.duration.as_secs().max(1);
    let existing: BTreeSet<String> = client
        .list_bans(ListBansRequest {})
        .await?
        .into_inner()
        .bans
        .into_iter()
        .map(|b| b.prefix)
        .collect();
    let mut refused: Vec<(usize, String, String)> = vec![];
    let mut wanted = vec![];
    let (mut added, mut already) = (0usize, 0usize);
    for (i, line) in text.lines().enumerate() {
        match line_prefix(line) {
            None => {}
            Some(Err(e)) => refused.push((i + 1, line.trim().to_string(), e)),
            Some(Ok(p)) if existing.contains(&p.to_string()) => already += 1,
            Some(Ok(p)) => wanted.push((i + 1, p)),
        }
    }
    let total = wanted.len();
    let progress = std::io::stderr().is_terminal() && !out.json;
    let calls = futures::stream::iter(wanted.into_iter().map(|(line, p)| {
        let mut c = client.clone();
        let req = BanRequest {
            prefix: p.to_string(),
            duration_seconds: secs,
            reason: reason.clone(),
            force: a.force,
        };
        async move { (line, p, c.ban(req).await) }
    }))
    .buffer_unordered(16);
    futures::pin_mut!(calls);
    let mut done = 0;
    while let Some((line, p, r)) = calls.next().await {
        done += 1;
        match r {
            Ok(_) => added += 1,
            Err(s) => refused.push((line, p.to_string(), s.message().to_string())),
        }
        if progress && (done % 50 == 0 || done == total) {
            eprint!("\r{done}/{total} sent");
        }
    }
    if progress {
        eprintln!();
    }
    refused.sort();
    if out.json {
        out.json(json!({
            "added": added, "already_banned": already,
            "refused": refused.iter().map(|(l, p, e)| json!({"line": l, "entry": p, "why": e})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "{added} added, {already} already banned, {} refused",
            refused.len()
        );
        for (l, p, e) in &refused {
            println!("  line {l}: {p}: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::line_prefix;

    #[test]
    fn drop_lists_and_comments() {
        assert_eq!(
            line_prefix("1.10.16.0/20 ; SBL256894")
                .unwrap()
                .unwrap()
                .to_string(),
            "1.10.16.0/20"
        );
        assert_eq!(
            line_prefix("  203.0.113.7  # seen in the logs")
                .unwrap()
                .unwrap()
                .to_string(),
            "203.0.113.7/32"
        );
        assert!(line_prefix("; Spamhaus DROP List 2026/11/27").is_none());
        assert!(line_prefix("   ").is_none());
        assert!(line_prefix("10.0.0.1/24")
            .unwrap()
            .unwrap_err()
            .contains("did you mean"));
        assert!(line_prefix("bogus").unwrap().is_err());
    }
}
