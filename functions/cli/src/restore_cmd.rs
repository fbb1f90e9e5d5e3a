//! `lifeboat restore`: the restore Lambda's plan and execution from a terminal.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat::ranges::ranges_text;
use lifeboat::restore::{Mode, NextStep, RestoreRequest, RestoreResponse, Restorer};

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The table, s3://bucket/path/to/table.
    pub table: String,
    /// Restore to this version (default: the newest restorable).
    #[arg(long, conflicts_with = "timestamp")]
    pub version: Option<u64>,
    /// Restore to the newest version committed at or before this time (RFC 3339).
    #[arg(long)]
    pub timestamp: Option<String>,
    /// rollback (in place, as a new commit), clone (into --target) or repair (put back files).
    #[arg(long, value_enum)]
    pub mode: CliMode,
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CliMode {
    Rollback,
    Clone,
    Repair,
}

pub async fn run(args: RestoreArgs) -> Result<ExitCode> {
    let request = RestoreRequest {
        table: args.table,
        version: args.version,
        timestamp: args.timestamp,
        mode: match args.mode {
            CliMode::Rollback => Mode::Rollback,
            CliMode::Clone => Mode::Clone,
            CliMode::Repair => Mode::Repair,
        },
        target: args.target,
        register: args.register,
        dry_run: !args.execute,
        continuation: None,
    };
    let restorer = Restorer::from_env().await?;
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
    Ok(ExitCode::SUCCESS)
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
