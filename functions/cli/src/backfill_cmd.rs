//! `lifeboat backfill`: copy into the backup what it lacks, from a listing of a prefix (small
//! prefixes) or from an S3 Inventory report (millions of objects, fanned out through the
//! replicator's queue).

use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgGroup, Args};
use lifeboat::inventory::backfill::FanOut;
use lifeboat::keys::S3Location;
use lifeboat::replicate::Replicator;
use lifeboat::s3::{Clients, S3Store};

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["location", "inventory"])))]
pub struct BackfillArgs {
    /// The source location, s3://bucket/prefix: listed, and what the backup lacks copied here.
    location: Option<String>,
    /// An S3 Inventory report instead of a listing: s3://bucket/path/manifest.json (CSV or
    /// Parquet; ORC is refused). What it lists and the backup lacks is sent to the replicator's
    /// queue (LIFEBOAT_QUEUE_URL), or copied here when no queue is configured.
    #[arg(long, value_name = "S3_URL", conflicts_with = "location")]
    inventory: Option<String>,
    /// With --inventory: copy here even when LIFEBOAT_QUEUE_URL is set.
    #[arg(long, requires = "inventory")]
    in_process: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn progress_bar() -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} backfill [{bar:30}] {pos}/{len} objects {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

pub async fn run(args: BackfillArgs) -> Result<ExitCode> {
    let clients = Clients::from_env().await;
    let replicator = Replicator::new(
        S3Store::new(clients.s3.clone()),
        lifeboat::Config::from_env()?,
    );
    if let Some(manifest) = &args.inventory {
        return inventory(&args, &replicator, &clients, manifest).await;
    }
    let location = S3Location::parse(args.location.as_deref().unwrap_or_default())?;
    let bar = progress_bar();
    let summary = lifeboat::backfill::backfill(&replicator, &location, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{location}: {} objects listed, {} already backed up, {} copied ({} bytes), {} conflicts, {} gone from the source, {} failed",
            summary.listed, summary.already_backed_up, summary.copied, summary.bytes_copied,
            summary.conflicts, summary.source_missing, summary.failed
        );
        for error in &summary.errors {
            println!("  failed: {error}");
        }
    }
    Ok(exit(summary.failed))
}

async fn inventory(
    args: &BackfillArgs,
    replicator: &Replicator<S3Store>,
    clients: &Clients,
    manifest: &str,
) -> Result<ExitCode> {
    let location = S3Location::parse(manifest)?;
    let queue = (!args.in_process).then_some(&clients.sqs);
    let bar = progress_bar();
    let summary = lifeboat::inventory::backfill_from_inventory(
        replicator,
        queue,
        &location,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(exit(summary.failed()));
    }
    println!(
        "{}: {} objects of s3://{} in {} data files; {} already backed up, {} not current, {} to copy",
        summary.manifest,
        summary.listed,
        summary.source_bucket,
        summary.data_files,
        summary.already_backed_up,
        summary.not_current,
        summary.to_copy
    );
    match &summary.fan_out {
        FanOut::Queue { queue_url, sent, failed } => println!(
            "  {sent} sent to the replicator's queue {queue_url} ({failed} refused); the replicator copies them"
        ),
        FanOut::InProcess(s) => {
            println!(
                "  copied here: {} copied ({} bytes), {} conflicts, {} gone from the source, {} failed",
                s.copied, s.bytes_copied, s.conflicts, s.source_missing, s.failed
            );
            for error in &s.errors {
                println!("  failed: {error}");
            }
        }
    }
    Ok(exit(summary.failed()))
}

fn exit(failed: u64) -> ExitCode {
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
