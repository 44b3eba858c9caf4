//! `mxrepctl bans list` (every active ban, and why) and `mxrepctl bans export --format
//! text|rbldnsd|rbldnsd6|json` (the dropping bans, for those who publish files: one prefix per
//! line, an rbldnsd `ip4set` or `ip6trie` zone, or JSON).

use super::render::{action, ban_json, ban_line};
use super::Output;
use clap::{Subcommand, ValueEnum};
use mxrep_proto::v1 as pb;
use mxrep_proto::v1::admin_client::AdminClient;
use mxrep_proto::v1::ListBansRequest;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum BansCommand {
    /// List active bans (and temporary refusals), with their reasons.
    List,
    /// Ban every address or prefix of a file (one a line; Spamhaus DROP's form too).
    Import(super::import::ImportArgs),
    /// Print the dropping bans as a file others can use.
    Export {
        /// text: one prefix per line; rbldnsd: an rbldnsd ip4set zone of the IPv4 bans;
        /// rbldnsd6: an ip6trie zone of the IPv6 bans; json: one object per ban.
        #[arg(long, value_enum, default_value = "text")]
        format: ExportFormat,
    },
}

/// What `bans export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Text,
    Rbldnsd,
    Rbldnsd6,
    Json,
}

/// The export of `bans` in `format`, as text.
pub fn export(bans: &[pb::Ban], format: ExportFormat, version: u64) -> String {
    // What refuses mail for good (dropped or rejected), as the DNSBL zone answers; temporary
    // refusals are not listings.
    let drops: Vec<&pb::Ban> = bans.iter().filter(|b| action(b) != "tempfail").collect();
    match format {
        ExportFormat::Text => drops.iter().map(|b| format!("{}\n", b.prefix)).collect(),
        ExportFormat::Json => {
            let v = json!({"version": version, "bans": drops.iter().map(|b| ban_json(b)).collect::<Vec<_>>()});
            format!("{v}\n")
        }
        ExportFormat::Rbldnsd | ExportFormat::Rbldnsd6 => {
            let v6 = matches!(format, ExportFormat::Rbldnsd6);
            let mut out = format!("# mxrep ban list, version {version}: A 127.0.0.2, TXT the reason\n:127.0.0.2:mxrep: $\n");
            for b in drops.into_iter().filter(|b| b.prefix.contains(':') == v6) {
                let reason: String = b
                    .reason
                    .chars()
                    .filter(|c| !c.is_control() && *c != ':')
                    .take(200)
                    .collect();
                out.push_str(&format!("{} :127.0.0.2:{reason}\n", b.prefix));
            }
            out
        }
    }
}

pub async fn run(
    client: &mut AdminClient<Channel>,
    out: &Output,
    cmd: BansCommand,
) -> anyhow::Result<()> {
    if let BansCommand::Import(a) = cmd {
        return super::import::run(client, out, a).await;
    }
    let r = client.list_bans(ListBansRequest {}).await?.into_inner();
    if let BansCommand::Export { format } = cmd {
        print!("{}", export(&r.bans, format, r.version));
        return Ok(());
    }
    if out.json {
        out.json(json!({
            "version": r.version,
            "bans": r.bans.iter().map(ban_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    if r.bans.is_empty() {
        println!("no active bans (version {})", r.version);
    }
    for b in &r.bans {
        println!("{}", ban_line(b));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_what_refuses_for_good() {
        let ban = |p: &str, a: pb::BanAction| pb::Ban {
            prefix: p.into(),
            reason: "spam: run".into(),
            action: a as i32,
            ..Default::default()
        };
        let bans = [
            ban("203.0.113.0/24", pb::BanAction::Drop),
            ban("192.0.2.9/32", pb::BanAction::Tempfail),
            ban("198.51.100.7/32", pb::BanAction::Reject),
        ];
        assert_eq!(
            export(&bans, ExportFormat::Text, 7),
            "203.0.113.0/24\n198.51.100.7/32\n"
        );
        let z = export(&bans, ExportFormat::Rbldnsd, 7);
        assert!(
            z.contains("203.0.113.0/24 :127.0.0.2:spam run\n") && !z.contains("192.0.2.9"),
            "{z}"
        );
        let j: serde_json::Value =
            serde_json::from_str(&export(&bans, ExportFormat::Json, 7)).unwrap();
        assert_eq!(j["bans"].as_array().unwrap().len(), 2);
    }
}
