//! The report: per table, restore points and findings; totals over all tables; and the EMF
//! metrics the alarms are built on. What the Lambda returns, `lifeboat verify --json` prints
//! and `_lifeboat/reports/` keeps.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keys::S3Location;
use crate::metrics::Emf;
pub use crate::ranges::VersionRange;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The source's `_delta_log/` is gone.
    TableDropped,
    /// Source objects older than the grace period that the backup lacks (or holds with
    /// another size).
    MissingInBackup,
    /// Source objects younger than the grace period that the backup lacks yet.
    ReplicationPending,
    /// A source log file whose content differs from the backup's.
    LogCorrupted,
    /// Files the source's own versions need that the source no longer has.
    SourceFilesMissing,
    /// The source's latest snapshot cannot be read.
    SourceLogUnreadable,
    /// The source's log ends before the backup's: its newest commits were deleted (a stale
    /// `aws s3 sync --delete`, a manual `rm`), so readers silently see an older version.
    SourceLogRegressed,
    /// A gap in the middle of the source's log that readers cannot cross (a commit deleted
    /// between two others, no checkpoint after it): critical when the latest version is
    /// unreadable.
    SourceLogBroken,
    /// From some version on, the source and the backup hold different histories (a stale sync
    /// deleted commits, then writers committed new ones under the same versions): never
    /// stitched, never repaired over.
    LogDiverged,
    /// Table files in the source that hold other bytes than the backup's authoritative copy
    /// (critical when the source's current version needs them).
    SourceObjectOverwritten,
    /// Rewritten table files the replicator kept aside.
    BackupConflict,
    /// Commits missing from the backed-up log.
    LogGap,
    /// Data or deletion-vector files some backed-up versions need that the backup lacks.
    MissingFilesInBackup,
    UnreadableCommit,
    BadCheckpoint,
    /// Files outside the table root, which are not backed up with it.
    ExternalFile,
    NoRestorableVersion,
    /// The table could not be verified (an S3 error, say).
    VerificationFailed,
    /// A captured Glue Data Catalog entry is gone from the catalog, whether or not its
    /// storage is: every engine that finds tables through the catalog has lost the table.
    CatalogEntryDropped,
    /// A captured Glue entry now points at another location.
    CatalogLocationChanged,
}

impl FindingKind {
    /// The kinds a finding can be critical in, each with its own alarm on
    /// `CriticalFindings{Function=verify,Kind=<name>}` (infra/alarms.json, `findings`). Every
    /// verifier run emits each of them, 0 when not found, so that the alarms return to OK.
    /// (Alarmed kinds whose checks are still to come join this list with their variants:
    /// functions/core/tests/alarm_contract.rs keeps the two in step.)
    pub const ALARMED: &'static [FindingKind] = &[
        FindingKind::TableDropped,
        FindingKind::SourceFilesMissing,
        FindingKind::SourceLogRegressed,
        FindingKind::SourceLogBroken,
        FindingKind::SourceLogUnreadable,
        FindingKind::SourceObjectOverwritten,
        FindingKind::LogDiverged,
        FindingKind::LogCorrupted,
        FindingKind::LogGap,
        FindingKind::MissingFilesInBackup,
        FindingKind::UnreadableCommit,
        FindingKind::NoRestorableVersion,
        FindingKind::VerificationFailed,
        FindingKind::CatalogEntryDropped,
    ];

    /// The report's (and the alarms') name of the kind, `table_dropped`.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// One thing the verifier found: `{kind, severity, detail, ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub detail: String,
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

impl Finding {
    pub fn new(kind: FindingKind, severity: Severity, detail: impl Into<String>) -> Self {
        Finding {
            kind,
            severity,
            detail: detail.into(),
            data: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.data.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }
}

/// What the verifier found for one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableReport {
    /// The source location, `s3://bucket/path`.
    pub table: String,
    pub latest_backup_version: Option<u64>,
    pub oldest_restorable_version: Option<u64>,
    /// RFC 3339.
    pub oldest_restorable_commit_time: Option<String>,
    pub newest_restorable_version: Option<u64>,
    /// RFC 3339.
    pub newest_restorable_commit_time: Option<String>,
    /// Now minus the newest restorable commit time.
    pub rpo_seconds: Option<i64>,
    /// The source's latest version minus the newest restorable one.
    pub lag_versions: Option<i64>,
    pub unrestorable_versions: Vec<VersionRange>,
    /// Most severe first.
    pub findings: Vec<Finding>,
}

impl TableReport {
    pub fn empty(table: &S3Location) -> Self {
        TableReport {
            table: table.to_string(),
            latest_backup_version: None,
            oldest_restorable_version: None,
            oldest_restorable_commit_time: None,
            newest_restorable_version: None,
            newest_restorable_commit_time: None,
            rpo_seconds: None,
            lag_versions: None,
            unrestorable_versions: Vec::new(),
            findings: Vec::new(),
        }
    }

    pub fn restorable(&self) -> bool {
        self.newest_restorable_version.is_some()
    }

    pub fn finding(&self, kind: FindingKind) -> Option<&Finding> {
        self.findings.iter().find(|f| f.kind == kind)
    }

    /// Source objects the backup lacks past the grace period.
    pub fn missing_objects(&self) -> u64 {
        self.finding(FindingKind::MissingInBackup)
            .and_then(|f| f.data.get("count"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Findings that need attention (critical and warning).
    pub fn findings_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .count()
    }

    pub fn failed(&self) -> bool {
        self.finding(FindingKind::VerificationFailed).is_some()
    }
}

/// Totals over all tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub tables_verified: usize,
    pub restorable_tables: usize,
    pub unrestorable_tables: usize,
    /// Tables whose verification failed (counted as unrestorable too).
    pub failed_tables: usize,
    pub max_rpo_seconds: Option<i64>,
    pub critical_findings: usize,
    pub warning_findings: usize,
    pub missing_objects: u64,
    /// Messages sent to the replicator's queue.
    pub objects_resent: u64,
    pub resend_failures: u64,
}

/// The report of one run: what the Lambda returns, `lifeboat verify --json` prints and
/// `_lifeboat/reports/` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// RFC 3339.
    pub generated_at: String,
    pub tables: Vec<TableReport>,
    pub summary: Summary,
}

impl Report {
    pub fn new(generated_at: DateTime<Utc>, tables: Vec<TableReport>) -> Self {
        let mut summary = Summary {
            tables_verified: tables.len(),
            ..Summary::default()
        };
        for t in &tables {
            if t.restorable() {
                summary.restorable_tables += 1;
            } else {
                summary.unrestorable_tables += 1;
            }
            if t.failed() {
                summary.failed_tables += 1;
            }
            if let Some(rpo) = t.rpo_seconds {
                summary.max_rpo_seconds = Some(summary.max_rpo_seconds.unwrap_or(0).max(rpo));
            }
            for f in &t.findings {
                match f.severity {
                    Severity::Critical => summary.critical_findings += 1,
                    Severity::Warning => summary.warning_findings += 1,
                    Severity::Info => {}
                }
            }
            summary.missing_objects += t.missing_objects();
            if let Some(f) = t.finding(FindingKind::MissingInBackup) {
                let number = |k: &str| f.data.get(k).and_then(Value::as_u64).unwrap_or(0);
                summary.objects_resent += number("resent");
                summary.resend_failures += number("resend_failed");
            }
        }
        Report {
            generated_at: rfc3339(generated_at),
            tables,
            summary,
        }
    }

    /// The EMF documents: the aggregates (dimension `Function`, and `Function`+`Kind` for
    /// critical findings) and, with `per_table` (`LIFEBOAT_PER_TABLE_METRICS`), one per table
    /// (dimension `Table`).
    pub fn metrics(&self, per_table: bool) -> Vec<Emf> {
        let mut all = Vec::new();
        for t in self.tables.iter().filter(|_| per_table) {
            let mut emf = Emf::new(&[("Table", t.table.as_str())]);
            emf.set(
                "Restorable",
                if t.restorable() { 1.0 } else { 0.0 },
                "Count",
            );
            if let Some(rpo) = t.rpo_seconds {
                emf.set("RpoSeconds", rpo as f64, "Seconds");
            }
            if let Some(lag) = t.lag_versions {
                emf.set("LagVersions", lag.max(0) as f64, "Count");
            }
            emf.set("MissingObjects", t.missing_objects() as f64, "Count");
            emf.set("Findings", t.findings_count() as f64, "Count");
            all.push(emf);
        }
        let mut total = Emf::new(&[("Function", "verify")]);
        total.set(
            "UnrestorableTables",
            self.summary.unrestorable_tables as f64,
            "Count",
        );
        total.set(
            "MaxRpoSeconds",
            self.summary.max_rpo_seconds.unwrap_or(0) as f64,
            "Seconds",
        );
        total.set(
            "TablesVerified",
            self.summary.tables_verified as f64,
            "Count",
        );
        all.push(total);
        all.extend(self.critical_findings_metrics());
        all
    }

    /// `CriticalFindings{Function=verify}` (every kind) and
    /// `CriticalFindings{Function=verify,Kind=<kind>}` for each alarmed kind
    /// ([`FindingKind::ALARMED`], 0 when not found) and any other kind found critical: what
    /// the alarms of infra/alarms.json watch.
    pub fn critical_findings_metrics(&self) -> Vec<Emf> {
        let mut by_kind: std::collections::BTreeMap<String, usize> =
            FindingKind::ALARMED.iter().map(|k| (k.name(), 0)).collect();
        for f in self.tables.iter().flat_map(|t| &t.findings) {
            if f.severity == Severity::Critical {
                *by_kind.entry(f.kind.name()).or_default() += 1;
            }
        }
        let mut all = Vec::new();
        let mut total = Emf::new(&[("Function", "verify")]);
        total.set(
            "CriticalFindings",
            self.summary.critical_findings as f64,
            "Count",
        );
        all.push(total);
        for (kind, count) in by_kind {
            let mut emf = Emf::new(&[("Function", "verify"), ("Kind", kind.as_str())]);
            emf.set("CriticalFindings", count as f64, "Count");
            all.push(emf);
        }
        all
    }
}

pub fn time_of_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_metrics() {
        let mut a = TableReport::empty(&S3Location::parse("s3://src/a").unwrap());
        a.newest_restorable_version = Some(3);
        a.rpo_seconds = Some(60);
        a.lag_versions = Some(-1);
        a.findings.push(
            Finding::new(FindingKind::MissingInBackup, Severity::Warning, "x")
                .with("count", 2)
                .with("resent", 2),
        );
        a.findings.push(Finding::new(
            FindingKind::ReplicationPending,
            Severity::Info,
            "y",
        ));
        let b = TableReport::empty(&S3Location::parse("s3://src/b").unwrap());
        let report = Report::new(Utc::now(), vec![a, b]);
        let s = &report.summary;
        assert_eq!(
            (
                s.tables_verified,
                s.restorable_tables,
                s.unrestorable_tables
            ),
            (2, 1, 1)
        );
        assert_eq!(
            (s.missing_objects, s.objects_resent, s.max_rpo_seconds),
            (2, 2, Some(60))
        );
        assert_eq!(report.metrics(false).len(), report.metrics(true).len() - 2);
        let metrics = report.metrics(true);
        let first = metrics[0].to_json(0);
        assert_eq!(first["Table"], "s3://src/a");
        assert_eq!(first["Restorable"], 1.0);
        assert_eq!(first["LagVersions"], 0.0);
        assert_eq!(first["Findings"], 1.0);
        assert_eq!(metrics[1].to_json(0)["Restorable"], 0.0);
        let total = metrics[2].to_json(0);
        assert_eq!(total["Function"], "verify");
        assert_eq!(total["UnrestorableTables"], 1.0);
        assert_eq!(total["TablesVerified"], 2.0);
        let value = serde_json::to_value(&report).unwrap();
        let finding = &value["tables"][0]["findings"][0];
        assert_eq!(finding["kind"], "missing_in_backup");
        assert_eq!(finding["severity"], "warning");
        assert_eq!(finding["count"], 2);
        assert!(value["tables"][1]["newest_restorable_version"].is_null());
    }
}
