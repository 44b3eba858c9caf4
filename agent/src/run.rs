//! The running agent: wires sources → uplink and ban-list watch → enforcer.

use crate::config::AgentConfig;

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    anyhow::bail!("agent run mode is not wired yet (config {cfg:?})")
}
