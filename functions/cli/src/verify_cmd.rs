//! `lifeboat verify`. (Being built.)

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct VerifyArgs {}

pub async fn run(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("lifeboat verify is not implemented yet")
}
