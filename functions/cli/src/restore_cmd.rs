//! `lifeboat restore`: the restore Lambda's plan and execution from a terminal.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat::restore::{Mode, RestoreRequest, Restorer};
use serde_json::Value;

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
pub fn describe(response: &Value) -> String {
    let plan = &response["plan"];
    let mut out = String::new();
    let dry = response["dry_run"].as_bool().unwrap_or(true);
    out += &format!(
        "Restore {} by {}{}\n",
        plan["table"].as_str().unwrap_or("?"),
        plan["mode"].as_str().unwrap_or("?"),
        if dry { " (dry run)" } else { "" }
    );
    if plan["mode"] == "clone" {
        out += &format!(
            "  into:              {}\n",
            plan["target"].as_str().unwrap_or("?")
        );
    }
    out += &format!(
        "  restore point:     version {} committed {}\n",
        plan["restore_point"]["version"],
        plan["restore_point"]["commit_time"]
            .as_str()
            .unwrap_or("(time unknown)")
    );
    let ranges: Vec<String> = plan["restorable_versions"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|p| {
                    if p[0] == p[1] {
                        p[0].to_string()
                    } else {
                        format!("{}..{}", p[0], p[1])
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    out += &format!("  restorable:        {}\n", ranges.join(", "));
    out += &format!(
        "  copy from backup:  {} objects, {} bytes ({} already in place)\n",
        plan["objects_to_copy"], plan["bytes_to_copy"], plan["already_present"]
    );
    if let Some(commit) = plan["commit"].as_object() {
        out += &format!(
            "  new commit:        version {} (RESTORE: adds {} files, removes {} files{})\n",
            commit["version"],
            commit["files_to_add"],
            commit["files_to_remove"],
            if commit["metadata_restored"] == true {
                ", restores the schema and properties"
            } else {
                ""
            }
        );
    } else if plan["mode"] != "clone" {
        out += "  new commit:        none\n";
    }
    for note in plan["notes"].as_array().into_iter().flatten() {
        out += &format!(
            "  note:              {}\n",
            note.as_str().unwrap_or_default()
        );
    }
    if let Some(result) = response["result"].as_object() {
        out += &format!(
            "Done: copied {} objects ({} bytes), skipped {} already in place{} in {:.1} s\n",
            result["copied"],
            result["bytes_copied"],
            result["skipped"],
            result["commit_written"]
                .as_u64()
                .map(|v| format!(", wrote commit {v}"))
                .unwrap_or_default(),
            result["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(next) = response["next"].as_str() {
        out += &format!(
            "{}\n",
            next.replace(
                "Send the same payload with \"dry_run\": false",
                "Run again with --execute"
            )
        );
    }
    out
}
