//! The flags that place a node in a cluster that grows and shrinks: `--join`,
//! `--id-from-hostname`, `--advertise-peer`, `--advertise-api`, `--cluster-size`.

use anyhow::Context;

/// How a node finds its place in a cluster that grows and shrinks (a Kubernetes StatefulSet).
#[derive(Debug, clap::Args, Default)]
pub struct MembershipArgs {
    /// Any member's API address, HOST:PORT: a node not listed in --peers asks to be added
    /// (learner, then voter) at every start, until the cluster says it is a member.
    #[arg(long)]
    pub join: Option<String>,
    /// Take the id from the host name's trailing `-N`, plus one (pod `mxrep-2` is node 3).
    #[arg(long, conflicts_with = "id")]
    pub id_from_hostname: bool,
    /// HOST:PORT peers use to reach this node, when not --peer-listen (e.g. a pod's DNS name).
    #[arg(long)]
    pub advertise_peer: Option<String>,
    /// HOST:PORT clients use to reach this node's API, when not --api-listen.
    #[arg(long)]
    pub advertise_api: Option<String>,
    /// The number of voters the deployment runs (nodes 1..=N). The leader removes a member with a
    /// higher id once it has stopped answering for a while: a scale-down. Off unless given.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub cluster_size: Option<u64>,
}

/// A HOST:PORT flag, checked.
pub(super) fn checked(flag: &str, value: &str) -> anyhow::Result<String> {
    mxrep_common::addr::host_port(value).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// This host's name: `HOSTNAME` (set in every Kubernetes pod), else the kernel's.
pub(super) fn host_name() -> anyhow::Result<String> {
    if let Some(h) = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return Ok(h.trim().to_string());
    }
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("--id-from-hostname: cannot read the host name")?;
    Ok(h.trim().to_string())
}

/// The node id for host `name`: its trailing `-N` plus one, as a StatefulSet names its pods.
pub fn id_from_hostname(name: &str) -> anyhow::Result<u64> {
    let ordinal = name
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .with_context(|| {
            format!("--id-from-hostname: the host name '{name}' does not end in -N (a StatefulSet pod's ordinal)")
        })?;
    Ok(ordinal + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_from_statefulset_pod_names() {
        assert_eq!(super::id_from_hostname("mxrep-0").unwrap(), 1);
        assert_eq!(super::id_from_hostname("my-release-mxrep-4").unwrap(), 5);
        let e = super::id_from_hostname("mailhost").unwrap_err().to_string();
        assert!(e.contains("'mailhost' does not end in -N"), "{e}");
    }
}
