//! `lifeboat`: the Lifeboat operations from a terminal, on the same core code as the functions.
//!
//! Exit status: 0 success, 1 failure, 2 bad usage, 3 (`verify`) some table has no restorable
//! version.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod backfill_cmd;
mod demo_cmd;
mod replicate_cmd;
mod restore_cmd;
mod verify_cmd;

#[derive(Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Disaster recovery for Delta Lake tables on S3"
)]
struct Cli {
    /// Log what is being done (also RUST_LOG=...).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the replicator on an event file, or on its SQS queue's messages (--queue URL
    /// [--until-empty]) as Lambda delivers them.
    Replicate(replicate_cmd::ReplicateArgs),
    /// Copy what the backup lacks: everything under s3://SRC/prefix, or what an S3 Inventory
    /// report lists (--inventory s3://bucket/path/manifest.json).
    Backfill(backfill_cmd::BackfillArgs),
    /// Restore points and findings for each table (exit 3 when a table has no restorable version).
    Verify(verify_cmd::VerifyArgs),
    /// Plan (dry run) or carry out a restore: rollback, clone or repair.
    Restore(restore_cmd::RestoreArgs),
    /// The whole story on a local AWS started for it: create, replicate, verify, drop, restore.
    Demo(demo_cmd::DemoArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    lifeboat::telemetry::init_cli_logging(cli.verbose);
    lifeboat::metrics::emit_to_stderr();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Replicate(args) => replicate_cmd::run(args).await,
        Command::Backfill(args) => backfill_cmd::run(args).await,
        Command::Verify(args) => verify_cmd::run(args).await,
        Command::Restore(args) => restore_cmd::run(args).await,
        Command::Demo(args) => demo_cmd::run(args).await,
    }
}
