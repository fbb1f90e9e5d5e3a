//! `lifeboat restore`. (Being built.)

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RestoreArgs {}

pub async fn run(_args: RestoreArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("lifeboat restore is not implemented yet")
}
