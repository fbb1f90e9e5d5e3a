//! `lifeboat replicate`: the replicate Lambda's handler, run here on an event file or on the
//! messages of its SQS queue (as Lambda's SQS event source mapping delivers them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use lifeboat::replicate::Replicator;
use lifeboat::s3::{Clients, S3Store};
use lifeboat_cli::queue::{failed_ids, Drained, QueueDriver};
use serde_json::Value;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["event", "queue"])))]
pub struct ReplicateArgs {
    /// The event JSON file (S3 notification, SQS batch or EventBridge).
    #[arg(long)]
    event: Option<PathBuf>,
    /// The replicator's SQS queue: receive up to 10 messages, hand them to the replicator as
    /// one SQS event, delete those that did not fail (failed ones stay for redelivery).
    #[arg(long, value_name = "URL")]
    queue: Option<String>,
    /// With --queue: repeat until the queue is empty.
    #[arg(long, requires = "queue")]
    until_empty: bool,
    /// With --queue: seconds to wait for messages to arrive before the queue counts as empty.
    #[arg(long, value_name = "SECONDS", default_value_t = 1, requires = "queue")]
    wait: i32,
    /// With --queue: print the summary as JSON.
    #[arg(long, requires = "queue")]
    json: bool,
}

pub async fn run(args: ReplicateArgs) -> Result<ExitCode> {
    let replicator = Replicator::from_env().await?;
    let failed = match (&args.event, &args.queue) {
        (Some(event), _) => {
            let text = std::fs::read_to_string(event)
                .with_context(|| format!("reading {}", event.display()))?;
            let input: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", event.display()))?;
            let response = replicator.handle(&input).await?;
            println!("{}", serde_json::to_string_pretty(&response)?);
            !failed_ids(&response).is_empty()
        }
        (None, Some(queue)) => {
            let summary = drive(&replicator, queue, &args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "{queue}: {} message(s) in {} batch(es): {} deleted, {} failed (left in the queue for redelivery)",
                    summary.messages,
                    summary.batches,
                    summary.deleted,
                    summary.failed.len()
                );
                for id in &summary.failed {
                    println!("  failed: message {id}");
                }
            }
            !summary.failed.is_empty()
        }
        (None, None) => unreachable!("clap requires --event or --queue"),
    };
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One batch, or (`--until-empty`) every batch until the queue is empty, into the in-process
/// replicator.
async fn drive(
    replicator: &Replicator<S3Store>,
    queue: &str,
    args: &ReplicateArgs,
) -> Result<Drained> {
    let clients = Clients::from_env().await;
    let mut driver = QueueDriver::new(clients.sqs, queue);
    driver.wait_seconds = args.wait;
    let mut handler = async |event: Value| -> Result<Value> {
        Ok(serde_json::to_value(replicator.handle(&event).await?)?)
    };
    if !args.until_empty {
        let batch = driver.batch(&mut handler, args.wait).await?;
        return Ok(Drained {
            batches: usize::from(batch.messages > 0),
            messages: batch.messages,
            deleted: batch.deleted,
            rounds: [batch.messages].into_iter().filter(|&m| m > 0).collect(),
            failed: batch.failed,
        });
    }
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} replicating: {pos} messages {elapsed}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let summary = driver
        .until_empty(&mut handler, |so_far| {
            bar.set_position(so_far.messages as u64)
        })
        .await;
    bar.finish_and_clear();
    summary
}
