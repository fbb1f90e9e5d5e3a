//! `lifeboat verify`: restore points and findings per table, as a readable table or as the JSON
//! report the Lambda returns. Exit 3 when some table has no restorable version.

use std::process::ExitCode;

use anyhow::{Context, Result};
use lifeboat::keys::S3Location;
use lifeboat::verify::{Report, Severity, TableReport, Verifier};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A source table, s3://bucket/path (repeatable). Default: LIFEBOAT_TABLES, else every
    /// table found in the backup.
    #[arg(long = "table", value_name = "S3_URL", value_parser = parse_location)]
    tables: Vec<S3Location>,
    /// Print the JSON report (what the Lambda returns).
    #[arg(long)]
    json: bool,
    /// Go on from each table's proven state in the backup, as the scheduled function does
    /// (reads only the commits after it; a full proof when none is usable or one is due), and
    /// keep the state proven. Default: a full proof that leaves no state.
    #[arg(long)]
    incremental: bool,
}

/// A malformed location is bad usage (exit 2), reported by clap.
fn parse_location(text: &str) -> std::result::Result<S3Location, String> {
    S3Location::parse(text).map_err(|e| e.to_string())
}

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let tables = args.tables;
    let verifier = Verifier::from_env().await?;
    let proving = match args.incremental {
        true => lifeboat::verify::Proving::Incremental,
        false => lifeboat::verify::Proving::Stateless,
    };
    let report = verifier
        .run_with((!tables.is_empty()).then_some(tables), proving)
        .await?;
    let written = verifier.write_report(&report).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
        if let Ok(keys) = &written {
            println!(
                "report: s3://{}/{}",
                verifier.config().backup_bucket,
                keys.first().map(String::as_str).unwrap_or_default()
            );
        }
    }
    written.context("writing the report to the backup bucket")?;
    Ok(exit_code(&report))
}

/// 1 when a table could not be verified, 3 when one has no restorable version, else 0.
fn exit_code(report: &Report) -> ExitCode {
    if report.tables.iter().any(TableReport::failed) {
        ExitCode::from(1)
    } else if report.tables.iter().any(|t| !t.restorable()) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// The readable form: one row per table, then each table's unrestorable versions and findings.
fn render(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.summary;
    out.push_str(&format!(
        "verified {} table(s) at {}: {} restorable, {} not; {} critical and {} warning finding(s)\n\n",
        s.tables_verified,
        report.generated_at,
        s.restorable_tables,
        s.unrestorable_tables,
        s.critical_findings,
        s.warning_findings
    ));
    if report.tables.is_empty() {
        out.push_str("no tables: set LIFEBOAT_TABLES, pass --table, or back up a Delta table\n");
        return out;
    }
    let header = [
        "TABLE",
        "BACKED UP",
        "OLDEST RESTORABLE",
        "NEWEST RESTORABLE",
        "RPO",
        "LAG",
    ];
    let rows: Vec<[String; 6]> = report
        .tables
        .iter()
        .map(|t| {
            [
                t.table.clone(),
                version_text(t.latest_backup_version),
                point(
                    t.oldest_restorable_version,
                    t.oldest_restorable_commit_time.as_deref(),
                ),
                point(
                    t.newest_restorable_version,
                    t.newest_restorable_commit_time.as_deref(),
                ),
                t.rpo_seconds.map(duration).unwrap_or_else(|| "-".into()),
                t.lag_versions
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    out.push_str(&line(&header.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    for t in &report.tables {
        if t.unrestorable_versions.is_empty() && t.findings.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{}\n", t.table));
        if !t.unrestorable_versions.is_empty() {
            let ranges: Vec<String> = t
                .unrestorable_versions
                .iter()
                .map(|r| {
                    if r.first == r.last {
                        format!("v{}", r.first)
                    } else {
                        format!("v{}..v{}", r.first, r.last)
                    }
                })
                .collect();
            out.push_str(&format!("  unrestorable: {}\n", ranges.join(", ")));
        }
        for f in &t.findings {
            let severity = match f.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "WARNING",
                Severity::Info => "info",
            };
            let kind = serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!("  {severity:<8} {kind}: {}\n", f.detail));
        }
    }
    out
}

fn version_text(version: Option<u64>) -> String {
    version
        .map(|v| format!("v{v}"))
        .unwrap_or_else(|| "-".into())
}

fn point(version: Option<u64>, time: Option<&str>) -> String {
    match (version, time) {
        (Some(v), Some(t)) => format!("v{v} ({t})"),
        (Some(v), None) => format!("v{v}"),
        _ => "none".into(),
    }
}

fn duration(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(tables: serde_json::Value) -> Report {
        serde_json::from_value(json!({
            "generated_at": "2026-01-01T00:00:00.000Z",
            "tables": tables,
            "summary": {"tables_verified": 1, "restorable_tables": 1, "unrestorable_tables": 0,
                        "failed_tables": 0, "max_rpo_seconds": 5, "critical_findings": 1,
                        "warning_findings": 0, "missing_objects": 0, "objects_resent": 0,
                        "resend_failures": 0}
        }))
        .unwrap()
    }

    fn table(newest: Option<u64>, findings: serde_json::Value) -> serde_json::Value {
        json!({"table": "s3://src/t", "latest_backup_version": 4,
               "oldest_restorable_version": newest.map(|_| 0),
               "oldest_restorable_commit_time": "2026-01-01T00:00:00.000Z",
               "newest_restorable_version": newest,
               "newest_restorable_commit_time": null, "rpo_seconds": 5, "lag_versions": 0,
               "unrestorable_versions": [{"first": 3, "last": 4}], "findings": findings})
    }

    #[test]
    fn renders_restore_points_and_findings() {
        let r = report(json!([table(
            Some(2),
            json!([{"kind": "log_gap", "severity": "critical", "detail": "commits 3 are missing",
                    "missing_commits": {"first": 3, "last": 3}}])
        )]));
        let text = render(&r);
        assert!(text.contains("TABLE"), "{text}");
        assert!(
            text.contains("s3://src/t  v4         v0 (2026-01-01T00:00:00.000Z)  v2"),
            "{text}"
        );
        assert!(text.contains("unrestorable: v3..v4"), "{text}");
        assert!(
            text.contains("CRITICAL log_gap: commits 3 are missing"),
            "{text}"
        );
        assert_eq!(exit_code(&r), ExitCode::SUCCESS);
    }

    #[test]
    fn exit_codes() {
        let none = report(json!([table(None, json!([]))]));
        assert_eq!(exit_code(&none), ExitCode::from(3));
        let failed = report(json!([table(
            None,
            json!([{"kind": "verification_failed", "severity": "critical", "detail": "boom"}])
        )]));
        assert_eq!(exit_code(&failed), ExitCode::from(1));
    }
}
