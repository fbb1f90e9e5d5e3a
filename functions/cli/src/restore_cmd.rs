//! `lifeboat restore`: the restore Lambda's plan and execution from a terminal; with
//! `--status <id>`, where a sharded restore is.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat::ranges::ranges_text;
use std::sync::Arc;

use lifeboat::restore::shards::{LocalQueue, Phase, RestoreStatus, MAX_RECEIVES};
use lifeboat::restore::{Mode, NextStep, RestoreRequest, RestoreResponse, Restorer};
use lifeboat::s3::S3Store;

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The table, s3://bucket/path/to/table.
    #[arg(required_unless_present = "status")]
    pub table: Option<String>,
    /// Restore to this version (default: the newest restorable).
    #[arg(long, conflicts_with = "timestamp")]
    pub version: Option<u64>,
    /// Restore to the newest version committed at or before this time (RFC 3339).
    #[arg(long)]
    pub timestamp: Option<String>,
    /// rollback (in place, as a new commit), clone (into --target) or repair (put back files).
    #[arg(long, value_enum, required_unless_present = "status")]
    pub mode: Option<CliMode>,
    /// Where a clone goes (an empty location).
    #[arg(long)]
    pub target: Option<String>,
    /// Register the clone in the Glue Data Catalog as database.table (clone only; a database
    /// of LIFEBOAT_GLUE_DATABASES).
    #[arg(long, value_name = "DB.TABLE", requires = "target")]
    pub register: Option<String>,
    /// Carry out the restore; without it, only the plan is shown.
    #[arg(long)]
    pub execute: bool,
    /// Print the JSON the Lambda returns.
    #[arg(long)]
    pub json: bool,
    /// Show where sharded restore ID is (its shards done, objects copied, the log written),
    /// and with --wait follow it to the end.
    #[arg(long, value_name = "ID", conflicts_with_all = ["table", "execute"])]
    pub status: Option<String>,
    /// After handing a restore to the work queue (or with --status), wait for it to finish,
    /// with a progress bar.
    #[arg(long)]
    pub wait: bool,
    /// Copy the shards of a restore larger than LIFEBOAT_RESTORE_SHARD_THRESHOLD in this
    /// process, N shards at a time, through an in-process work queue instead of the restore
    /// queue (as N invocations of the restore function would; `make bench` measures it). A
    /// shard whose run fails is run again, up to 5 times, as the restore queue redelivers it.
    #[arg(long, value_name = "N", requires = "execute")]
    pub workers: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CliMode {
    Rollback,
    Clone,
    Repair,
}

pub async fn run(args: RestoreArgs) -> Result<ExitCode> {
    if let Some(id) = &args.status {
        let restorer = Restorer::from_env().await?;
        return status(&restorer, id, args.wait, args.json).await;
    }
    let request = RestoreRequest {
        table: args.table.clone().unwrap_or_default(),
        version: args.version,
        timestamp: args.timestamp,
        mode: match args.mode.unwrap_or(CliMode::Repair) {
            CliMode::Rollback => Mode::Rollback,
            CliMode::Clone => Mode::Clone,
            CliMode::Repair => Mode::Repair,
        },
        target: args.target,
        register: args.register,
        dry_run: !args.execute,
        continuation: None,
    };
    let local = args.workers.map(|_| Arc::new(LocalQueue::default()));
    let mut restorer = Restorer::from_env().await?;
    if let Some(queue) = &local {
        restorer = restorer.with_queue(queue.clone());
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} copying [{bar:30}] {pos}/{len} objects {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    if args.json || !args.execute {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let response = restorer
        .run(&request, None, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
    } else {
        print!("{}", describe(&response));
    }
    if let (Some(started), Some(queue), Some(workers)) = (&response.sharded, &local, args.workers) {
        work_locally(&restorer, queue, workers).await?;
        return status(&restorer, &started.restore_id, false, args.json).await;
    }
    if let (Some(started), true) = (&response.sharded, args.wait) {
        return status(&restorer, &started.restore_id, true, args.json).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies every shard of the restore in `queue`, `workers` at a time, as that many
/// invocations would; a failed shard run is said on stderr and delivered again.
async fn work_locally(
    restorer: &Restorer<S3Store>,
    queue: &LocalQueue,
    workers: usize,
) -> Result<()> {
    queue
        .work(restorer, workers, |failed| {
            let next = if failed.again {
                "it is delivered again"
            } else {
                "the restore stops"
            };
            eprintln!(
                "shard {} of restore {} failed (receive {} of {MAX_RECEIVES}); {next}: {}",
                failed.shard, failed.restore_id, failed.receives, failed.error
            );
        })
        .await?;
    Ok(())
}

/// Prints where sharded restore `id` is; with `wait`, follows it with a progress bar until
/// its log is written (or its finishing failed).
async fn status(
    restorer: &Restorer<S3Store>,
    id: &str,
    wait: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut current = restorer.restore_status(id).await?;
    if wait {
        let bar = indicatif::ProgressBar::new(current.objects).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} objects {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        if json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        while matches!(current.phase, Phase::Copying | Phase::WritingLog) {
            bar.set_position(current.objects_done);
            bar.set_message(format!(
                "{} of {} shards",
                current.shards_done, current.shards
            ));
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            current = restorer.restore_status(id).await?;
        }
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&current)?);
    } else {
        print!("{}", describe_status(&current));
    }
    Ok(match current.phase {
        Phase::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// A sharded restore's status as a person reads it.
pub fn describe_status(status: &RestoreStatus) -> String {
    let mut out = format!(
        "Restore {} of {} into {}\n",
        status.restore_id, status.table, status.target
    );
    out += &format!("  started:           {}\n", status.started_at);
    out += &format!(
        "  shards:            {} of {} done\n",
        status.shards_done, status.shards
    );
    out += &format!(
        "  data:              {} of {} objects, {} of {} bytes\n",
        status.objects_done, status.objects, status.bytes_done, status.bytes
    );
    out += &format!(
        "  phase:             {}\n",
        match status.phase {
            Phase::Copying => "copying the data shards",
            Phase::WritingLog => "every shard is done; writing the log",
            Phase::Done => "done",
            Phase::Failed => "writing the log failed (SQS retries it)",
        }
    );
    if let Some(finished) = &status.finished {
        out += &format!(
            "  log:               {} file(s) written{} at {}\n",
            finished.log.copied,
            finished
                .log
                .commit_written
                .map(|v| format!(", commit {v}"))
                .unwrap_or_default(),
            finished.at
        );
    }
    if let Some(error) = &status.error {
        out += &format!("  error:             {error}\n");
    }
    out
}

/// The response as a person reads it.
pub fn describe(response: &RestoreResponse) -> String {
    let plan = &response.plan;
    let mut out = String::new();
    let mode = mode_name(plan.mode);
    out += &format!(
        "Restore {} by {mode}{}\n",
        plan.table,
        if response.dry_run { " (dry run)" } else { "" }
    );
    if plan.mode == Mode::Clone {
        out += &format!("  into:              {}\n", plan.target);
    }
    out += &format!(
        "  restore point:     version {} committed {}\n",
        plan.restore_point.version,
        plan.restore_point
            .commit_time
            .as_deref()
            .unwrap_or("(time unknown)")
    );
    out += &format!(
        "  restorable:        {}\n",
        ranges_text(&plan.restorable_versions)
    );
    out += &format!(
        "  copy from backup:  {} objects, {} bytes ({} already in place)\n",
        plan.objects_to_copy, plan.bytes_to_copy, plan.already_present
    );
    if let Some(commit) = &plan.commit {
        out += &format!(
            "  new commit:        version {} (RESTORE: adds {} files, removes {} files{})\n",
            commit.version,
            commit.files_to_add,
            commit.files_to_remove,
            if commit.metadata_restored {
                ", restores the schema and properties"
            } else {
                ""
            }
        );
    } else if plan.mode != Mode::Clone {
        out += "  new commit:        none\n";
    }
    for change in &plan.catalog {
        out += &format!(
            "  catalog:           {}{}\n",
            change.describe(),
            if change.done { " (done)" } else { "" }
        );
    }
    for note in &plan.notes {
        out += &format!("  note:              {note}\n");
    }
    if let Some(started) = &response.sharded {
        out += &format!(
            "Handed to the restore work queue as restore {}: {} data objects ({} bytes) in {} shard(s); the log ({} file(s)) is written once every shard is done.\nFollow it with: {}\n",
            started.restore_id,
            started.objects,
            started.bytes,
            started.shards,
            started.log_objects,
            started.status
        );
    }
    if let Some(result) = &response.result {
        out += &format!(
            "Done: copied {} objects ({} bytes), skipped {} already in place{} in {:.1} s\n",
            result.copied,
            result.bytes_copied,
            result.skipped,
            result
                .commit_written
                .map(|v| format!(", wrote commit {v}"))
                .unwrap_or_default(),
            result.seconds
        );
    }
    match response.next {
        Some(NextStep::RunForReal) => {
            out += "This was a dry run: nothing was written. Run again with --execute to restore\n"
        }
        Some(NextStep::Continue { remaining_objects }) => {
            out += &format!(
                "{remaining_objects} object(s) remain: run the same command again to continue; objects already copied are skipped\n"
            )
        }
        None => {}
    }
    out
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Rollback => "rollback",
        Mode::Clone => "clone",
        Mode::Repair => "repair",
    }
}
