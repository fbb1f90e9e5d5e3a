//! The verifier: which versions of each table can be restored from the backup alone, and what
//! has gone wrong in the source.
//!
//! Per table it makes one listing of the backup table, one of the source table and one of the
//! table's conflict records, reads each backed-up commit once ([`TableHistory`]), and compares
//! the two listings: sizes first, ETags for log files, and a HEAD only for a log file whose
//! ETags differ (a multipart upload in the source). Missing objects are sent to the
//! replicator's queue as S3 notifications (self-healing). The report goes to
//! `_lifeboat/reports/` in the backup bucket; nothing else is ever written.

use std::collections::HashSet;
use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::delta::{KernelReader, LiveFile, LogFiles, TableListing};
use crate::error::{Error, Result};
use crate::history::{Problem, TableHistory};
use crate::keys::{is_immutable_log_key, S3Location};
use crate::listing::Listed;
use crate::metrics::Emf;
use crate::replicate::{meta, CONFLICTS_PREFIX};
use crate::store::{list_all, ObjectInfo, Store, WriteOptions};

/// Where reports are written in the backup bucket.
pub const REPORTS_PREFIX: &str = "_lifeboat/reports/";
/// How old a source object must be before its absence from the backup counts as missing.
pub const DEFAULT_GRACE_SECONDS: u64 = 15 * 60;
/// Delta's default `delta.deletedFileRetentionDuration`: a file removed from the table more
/// recently than this may still be needed by time travel, so a source that already lacks it
/// was vacuumed too early.
const DELETED_FILE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// At most this many keys or files are named in one finding (the count is always exact).
const NAMED_MAX: usize = 20;
/// Tables verified at once.
const TABLE_CONCURRENCY: usize = 4;
/// SendMessageBatch calls in flight.
const SEND_CONCURRENCY: usize = 8;
/// Folder depth below a source bucket's backup prefix that discovery walks.
const DISCOVERY_MAX_DEPTH: usize = 12;

/// Verifier settings beyond the shared [`Config`].
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// `LIFEBOAT_GRACE_SECONDS`: source objects younger than this are pending, not missing.
    pub grace_seconds: u64,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            grace_seconds: DEFAULT_GRACE_SECONDS,
        }
    }
}

impl VerifySettings {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let grace_seconds = match lookup("LIFEBOAT_GRACE_SECONDS")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            None => DEFAULT_GRACE_SECONDS,
            Some(text) => text.replace('_', "").parse::<u64>().map_err(|_| {
                Error::config(
                    "LIFEBOAT_GRACE_SECONDS",
                    format!("{text:?} is not a whole number of seconds"),
                )
            })?,
        };
        Ok(VerifySettings { grace_seconds })
    }
}

/// The replicator's queue, as the verifier uses it.
pub trait Queue: Send + Sync {
    /// Sends up to 10 message bodies in one batch; returns a description of each one that
    /// failed.
    fn send_batch(
        &self,
        queue_url: &str,
        bodies: &[String],
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}

impl Queue for aws_sdk_sqs::Client {
    async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<Vec<String>> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| Error::Sqs {
                        operation: "SendMessageBatch",
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::Sqs {
                operation: "SendMessageBatch",
                message: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            })?;
        Ok(out
            .failed()
            .iter()
            .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default()))
            .collect())
    }
}

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
    /// Rewritten log files the replicator kept aside.
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
    fn new(kind: FindingKind, severity: Severity, detail: impl Into<String>) -> Self {
        Finding {
            kind,
            severity,
            detail: detail.into(),
            data: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.data.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }
}

/// An inclusive range of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    pub first: u64,
    pub last: u64,
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
    fn empty(table: &S3Location) -> Self {
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

    fn finding(&self, kind: FindingKind) -> Option<&Finding> {
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
    fn new(generated_at: DateTime<Utc>, tables: Vec<TableReport>) -> Self {
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

    /// The EMF documents: one per table (dimension `Table`) and the aggregate (`Function`).
    pub fn metrics(&self) -> Vec<Emf> {
        let mut all = Vec::new();
        for t in &self.tables {
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
        all
    }
}

/// What invoked the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyInput {
    /// The schedule (or an empty payload): the configured or discovered tables.
    Scheduled,
    Tables(Vec<S3Location>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TablesRequest {
    tables: Option<Vec<String>>,
}

const INPUT_SHAPE: &str =
    r#"the scheduled EventBridge event, {} or {"tables": ["s3://bucket/path/to/table", ...]}"#;

impl VerifyInput {
    /// Parses a Lambda payload: an EventBridge event (its content is ignored), `{}` / `null`,
    /// or `{"tables": [...]}` (nothing else).
    pub fn parse(input: &Value) -> Result<Self> {
        if input.is_null() {
            return Ok(VerifyInput::Scheduled);
        }
        if input.get("detail-type").is_some() && input.get("source").is_some() {
            return Ok(VerifyInput::Scheduled);
        }
        let request: TablesRequest = serde_json::from_value(input.clone())
            .map_err(|e| Error::bad_input(format!("verify input must be {INPUT_SHAPE}: {e}")))?;
        match request.tables {
            None => Ok(VerifyInput::Scheduled),
            Some(tables) if tables.is_empty() => Err(Error::bad_input(
                "\"tables\" is empty: name at least one s3:// table, or leave it out to verify the configured or discovered tables",
            )),
            Some(tables) => Ok(VerifyInput::Tables(
                tables
                    .iter()
                    .map(|t| S3Location::parse(t))
                    .collect::<Result<_>>()?,
            )),
        }
    }
}

/// A source object to send to the replicator's queue.
#[derive(Debug, Clone)]
struct Resend {
    bucket: String,
    object: ObjectInfo,
}

/// The verifier over any [`Store`] and [`Queue`].
pub struct Verifier<S, Q = aws_sdk_sqs::Client> {
    store: S,
    queue: Option<Q>,
    config: Config,
    settings: VerifySettings,
}

impl Verifier<crate::s3::S3Store> {
    /// The verifier as the function and the CLI run it: configuration, settings and the S3
    /// and SQS clients from the environment.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let settings = VerifySettings::from_env()?;
        let clients = crate::s3::Clients::from_env().await;
        Ok(Verifier::new(
            crate::s3::S3Store::new(clients.s3),
            Some(clients.sqs),
            config,
            settings,
        ))
    }
}

impl<S: Store, Q: Queue> Verifier<S, Q> {
    /// `queue` is used only when `LIFEBOAT_QUEUE_URL` is configured.
    pub fn new(store: S, queue: Option<Q>, config: Config, settings: VerifySettings) -> Self {
        Verifier {
            store,
            queue,
            config,
            settings,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Lambda handler: verifies, writes the report, prints the metrics and returns the
    /// report. Bad input is an error; a table that cannot be verified is a finding.
    pub async fn handle(&self, input: &Value) -> Result<Value> {
        let input = VerifyInput::parse(input)?;
        let tables = match input {
            VerifyInput::Tables(tables) => Some(tables),
            VerifyInput::Scheduled => None,
        };
        let report = self.run(tables).await?;
        self.write_report(&report).await?;
        for emf in report.metrics() {
            emf.emit();
        }
        Ok(serde_json::to_value(&report)?)
    }

    /// Verifies `tables`, else the configured tables, else the discovered ones; sends missing
    /// objects to the queue. Writes nothing to S3.
    pub async fn run(&self, tables: Option<Vec<S3Location>>) -> Result<Report> {
        let started = Utc::now();
        let tables = match tables {
            Some(tables) => tables,
            None if !self.config.tables.is_empty() => self.config.tables.clone(),
            None => self.discover_tables().await?,
        };
        for table in &tables {
            if !self.config.is_source_bucket(&table.bucket) {
                return Err(Error::bad_input(format!(
                    "{table}: bucket {:?} is not in LIFEBOAT_SOURCE_BUCKETS ({})",
                    table.bucket,
                    self.config.source_buckets.join(",")
                )));
            }
        }
        tracing::info!(tables = tables.len(), "verifying");
        let reports: Vec<TableReport> = stream::iter(tables)
            .map(|table| async move {
                match self.verify_table(&table).await {
                    Ok(report) => report,
                    Err(err) => {
                        tracing::error!(table = %table, error = %err, "verification failed");
                        let mut report = TableReport::empty(&table);
                        report.findings.push(
                            Finding::new(
                                FindingKind::VerificationFailed,
                                Severity::Critical,
                                format!("the table could not be verified: {err}"),
                            )
                            .with("retryable", err.is_retryable()),
                        );
                        report
                    }
                }
            })
            .buffered(TABLE_CONCURRENCY)
            .collect()
            .await;
        Ok(Report::new(started, reports))
    }

    /// Writes the report as `_lifeboat/reports/<time>.json` and `_lifeboat/reports/latest.json`
    /// in the backup bucket; returns both keys.
    pub async fn write_report(&self, report: &Report) -> Result<Vec<String>> {
        let body = Bytes::from(serde_json::to_vec_pretty(report)?);
        let stamp = DateTime::parse_from_rfc3339(&report.generated_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now())
            .format("%Y-%m-%dT%H-%M-%S%.3fZ");
        let options = WriteOptions {
            content_type: Some("application/json".into()),
            kms_key_id: self.config.kms_key_id.clone(),
            ..WriteOptions::default()
        };
        let mut keys = Vec::new();
        for key in [
            format!("{REPORTS_PREFIX}{stamp}.json"),
            format!("{REPORTS_PREFIX}latest.json"),
        ] {
            self.store
                .put(
                    &self.config.backup_bucket,
                    &key,
                    body.clone(),
                    false,
                    &options,
                )
                .await?;
            keys.push(key);
        }
        tracing::info!(keys = ?keys, "report written");
        Ok(keys)
    }

    /// Every prefix in the backup, under each source bucket's backup prefix, that holds a
    /// `_delta_log/`, as source locations. Walks folders with delimiter listings and does not
    /// descend into a table.
    pub async fn discover_tables(&self) -> Result<Vec<S3Location>> {
        let bucket = &self.config.backup_bucket;
        let mut tables = Vec::new();
        let mut walked = HashSet::new();
        for source in &self.config.source_buckets {
            let root = self.config.backup_prefix_for(source);
            if !walked.insert(root.clone()) {
                tracing::warn!(source_bucket = %source, prefix = %root,
                    "several source buckets share this backup prefix; its tables are attributed to the first");
                continue;
            }
            let mut level = vec![root.clone()];
            for _ in 0..=DISCOVERY_MAX_DEPTH {
                let mut next_level = Vec::new();
                for prefix in level {
                    let folders = self.folders(bucket, &prefix).await?;
                    if folders.iter().any(|f| f.ends_with("/_delta_log/"))
                        || folders.iter().any(|f| f == "_delta_log/")
                    {
                        let key = prefix[root.len()..].trim_end_matches('/');
                        tables.push(S3Location {
                            bucket: source.clone(),
                            prefix: key.to_string(),
                        });
                        continue;
                    }
                    next_level.extend(folders.into_iter().filter(|f| !f.starts_with("_lifeboat/")));
                }
                if next_level.is_empty() {
                    break;
                }
                level = next_level;
            }
        }
        tables.sort();
        tracing::info!(tables = tables.len(), "tables discovered in the backup");
        Ok(tables)
    }

    async fn folders(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let mut continuation = None;
        loop {
            let page = self
                .store
                .list_folders(bucket, prefix, continuation)
                .await?;
            all.extend(page.folders);
            match page.next {
                Some(next) => continuation = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Verifies one table: the backup alone, then the source against it.
    pub async fn verify_table(&self, table: &S3Location) -> Result<TableReport> {
        let now = Utc::now();
        let backup = self.config.backup_location(table);
        let conflicts_prefix = format!(
            "{CONFLICTS_PREFIX}{}",
            self.config
                .backup_key(&table.bucket, &table.key("_delta_log/"))
        );
        let (history, source, conflicts) = futures::try_join!(
            TableHistory::analyze(&self.store, &backup),
            TableListing::load(&self.store, table),
            list_all(&self.store, &self.config.backup_bucket, &conflicts_prefix),
        )?;
        let source_log = source.log();
        let mut report = TableReport::empty(table);
        let mut check = TableCheck {
            table,
            backup: &backup,
            history: &history,
            source: &source,
            source_log: &source_log,
            now_ms: now.timestamp_millis(),
            findings: Vec::new(),
        };

        // Restore points, from the backup alone.
        report.latest_backup_version = history.latest_version();
        let oldest = history.oldest_restorable().map(|s| s.version);
        let newest = history.newest_restorable().map(|s| s.version);
        report.oldest_restorable_version = oldest;
        report.newest_restorable_version = newest;
        if let Some(v) = oldest {
            report.oldest_restorable_commit_time = history
                .commit_time_ms(&self.store, v)
                .await?
                .and_then(time_of_ms)
                .map(rfc3339);
        }
        if let Some(v) = newest {
            let time = history.commit_time_ms(&self.store, v).await?;
            report.newest_restorable_commit_time = time.and_then(time_of_ms).map(rfc3339);
            report.rpo_seconds = time.map(|t| ((check.now_ms - t) / 1000).max(0));
        }
        let dropped = source_log.all.is_empty();
        let source_latest = if dropped {
            None
        } else {
            source_log.latest_version()
        };
        if let (Some(s), Some(n)) = (source_latest, newest) {
            report.lag_versions = Some(s as i64 - n as i64);
        }
        if let (Some(s), Some(b)) = (source_latest, history.latest_version()) {
            if s < b {
                check.findings.push(
                    Finding::new(
                        FindingKind::SourceLogRegressed,
                        Severity::Critical,
                        format!(
                            "the source's log ends at version {s} but the backup holds commits up to {b}: version(s) {} were deleted from the source's _delta_log/ (a stale `aws s3 sync --delete`, a manual rm) and readers now silently see version {s}; `lifeboat restore {table} --mode repair` puts them back (a dry run first shows what it copies)",
                            range_text(s + 1, b)
                        ),
                    )
                    .with("source_latest_version", s)
                    .with("backup_latest_version", b)
                    .with("lost_versions", VersionRange { first: s + 1, last: b }),
                );
            }
        }
        report.unrestorable_versions = check.unrestorable_versions();

        check.backup_findings();
        if !conflicts.is_empty() {
            check.findings.push(conflict_finding(&conflicts));
        }
        let mut resend = Vec::new();
        if dropped {
            check.findings.push(
                Finding::new(
                    FindingKind::TableDropped,
                    Severity::Critical,
                    format!(
                        "the source has no _delta_log/ under {table}: the table was dropped or its log deleted ({} objects remain under the prefix); the backup still holds it: `lifeboat restore {table} --mode rollback` brings it back",
                        source.len()
                    ),
                )
                .with("source_objects", source.len()),
            );
        } else {
            let compared = self.compare(&mut check, now).await?;
            resend = compared;
            check.source_files_missing(source_latest).await;
        }
        let (sent, failed) = self.resend(&resend).await;
        if let Some(f) = check
            .findings
            .iter_mut()
            .find(|f| f.kind == FindingKind::MissingInBackup)
        {
            f.data.insert("resent".into(), json!(sent));
            if failed > 0 {
                f.data.insert("resend_failed".into(), json!(failed));
            }
        }
        if newest.is_none() {
            check.findings.push(check.no_restorable_version());
        }
        check.findings.sort_by_key(|f| f.severity);
        report.findings = check.findings;
        tracing::info!(table = %table, latest = ?report.latest_backup_version,
            newest_restorable = ?newest, findings = report.findings.len(), "table verified");
        Ok(report)
    }

    /// Compares every selected source object with the backup listing: missing (or another
    /// size) past the grace period is to be re-sent; a log file with other content is
    /// corrupted. Returns the objects to re-send.
    async fn compare(&self, check: &mut TableCheck<'_>, now: DateTime<Utc>) -> Result<Vec<Resend>> {
        let cutoff = now - chrono::Duration::seconds(self.settings.grace_seconds as i64);
        let (source, backup) = (check.source, &check.history.listing);
        let mut missing: Vec<(&str, &Listed, &'static str)> = Vec::new();
        let mut pending = 0u64;
        let mut corrupted = Vec::new();
        let mut to_resolve = Vec::new();
        let mut key = String::new();
        for (relative, object) in source.iter() {
            key.clear();
            key.push_str(source.prefix());
            key.push_str(relative);
            if !self.config.selects(&key) {
                continue;
            }
            let immutable_log = is_immutable_log_key(relative);
            let reason = match backup.get(relative) {
                None => Some("missing"),
                Some(backed_up) if immutable_log => {
                    let both = || {
                        (
                            relative.to_string(),
                            source.object(relative, object),
                            backup.object(relative, backed_up),
                        )
                    };
                    if backed_up.size != object.size {
                        corrupted.push(both());
                    } else if backed_up.etag != object.etag {
                        to_resolve.push(both());
                    }
                    None
                }
                Some(backed_up) if backed_up.size != object.size => Some("size differs"),
                // `_last_checkpoint` is rewritten in place: the backup should have its latest.
                Some(backed_up)
                    if relative.ends_with("_delta_log/_last_checkpoint")
                        && backed_up.etag != object.etag =>
                {
                    Some("older content")
                }
                Some(_) => None,
            };
            let Some(reason) = reason else { continue };
            if object.last_modified().is_some_and(|t| t > cutoff) {
                pending += 1;
            } else {
                missing.push((relative, object, reason));
            }
        }

        // Same size, other ETag: a multipart source or another content. The backup's metadata
        // names the source ETag it copied; without it, compare the bytes (log files only).
        for (relative, object, backed_up) in to_resolve {
            let head = self
                .store
                .head(&self.config.backup_bucket, &backed_up.key, None)
                .await?;
            let same = match head
                .as_ref()
                .and_then(|h| h.metadata.get(meta::SOURCE_ETAG))
            {
                Some(etag) => *etag == object.etag,
                None => {
                    let ours = self
                        .store
                        .get(&self.config.backup_bucket, &backed_up.key, None)
                        .await?;
                    let theirs = self
                        .store
                        .get(&check.table.bucket, &object.key, None)
                        .await?;
                    ours == theirs || theirs.is_none()
                }
            };
            if !same {
                corrupted.push((relative, object, backed_up));
            }
        }

        if !corrupted.is_empty() {
            corrupted.sort_by(|a, b| a.0.cmp(&b.0));
            let files: Vec<Value> = corrupted
                .iter()
                .take(NAMED_MAX)
                .map(|(relative, source, backup)| {
                    json!({"path": relative, "source_size": source.size, "backup_size": backup.size,
                           "source_etag": source.etag, "backup_etag": backup.etag})
                })
                .collect();
            let names: Vec<&str> = corrupted
                .iter()
                .take(3)
                .map(|(r, _, _)| r.as_str())
                .collect();
            check.findings.push(
                Finding::new(
                    FindingKind::LogCorrupted,
                    Severity::Critical,
                    format!(
                        "{} Delta log file(s) in the source differ from the backup ({}{}): the source's log was overwritten; the backup keeps the original, never re-copied: `lifeboat restore {} --mode repair` puts it back",
                        corrupted.len(),
                        names.join(", "),
                        if corrupted.len() > 3 { ", ..." } else { "" },
                        check.table
                    ),
                )
                .with("count", corrupted.len())
                .with("files", files),
            );
        }

        if pending > 0 {
            check.findings.push(
                Finding::new(
                    FindingKind::ReplicationPending,
                    Severity::Info,
                    format!(
                        "{pending} source object(s) younger than the {} s grace period are not in the backup yet",
                        self.settings.grace_seconds
                    ),
                )
                .with("count", pending),
            );
        }
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        missing.sort_by(|a, b| a.0.cmp(b.0));
        let bytes: u64 = missing.iter().map(|(_, o, _)| o.size).sum();
        let log_files = missing
            .iter()
            .filter(|(r, _, _)| r.starts_with("_delta_log/"))
            .count();
        let keys: Vec<Value> = missing
            .iter()
            .take(NAMED_MAX)
            .map(|(r, o, reason)| json!({"path": r, "size": o.size, "reason": reason}))
            .collect();
        let healing = if self.config.queue_url.is_some() {
            "sent to the replicator's queue".to_string()
        } else {
            format!(
                "no LIFEBOAT_QUEUE_URL to send them to: `lifeboat backfill {}` copies them",
                check.table
            )
        };
        check.findings.push(
            Finding::new(
                FindingKind::MissingInBackup,
                Severity::Warning,
                format!(
                    "{} source object(s) ({bytes} bytes, {log_files} of them log files) older than the {} s grace period are missing from the backup or differ in size; {healing}",
                    missing.len(),
                    self.settings.grace_seconds
                ),
            )
            .with("count", missing.len())
            .with("bytes", bytes)
            .with("log_files", log_files)
            .with("objects", keys),
        );
        Ok(missing
            .into_iter()
            .map(|(r, o, _)| Resend {
                bucket: check.table.bucket.clone(),
                object: source.object(r, o),
            })
            .collect())
    }

    /// Sends the objects to the replicator's queue, 10 per SendMessageBatch; returns (sent,
    /// failed). Failures are logged, never fatal: the next run sends again.
    async fn resend(&self, objects: &[Resend]) -> (u64, u64) {
        let (Some(queue), Some(url)) = (&self.queue, &self.config.queue_url) else {
            return (0, 0);
        };
        if objects.is_empty() {
            return (0, 0);
        }
        let bodies: Vec<String> = objects
            .iter()
            .map(|r| notification(&r.bucket, &r.object).to_string())
            .collect();
        let results: Vec<(usize, Result<Vec<String>>)> = stream::iter(bodies.chunks(10))
            .map(|chunk| async move { (chunk.len(), queue.send_batch(url, chunk).await) })
            .buffer_unordered(SEND_CONCURRENCY)
            .collect()
            .await;
        let (mut sent, mut failed) = (0u64, 0u64);
        for (n, result) in results {
            match result {
                Ok(failures) => {
                    for failure in &failures {
                        tracing::warn!(error = %failure, "a re-sent object was refused by the queue");
                    }
                    failed += failures.len() as u64;
                    sent += (n - failures.len()) as u64;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not send missing objects to the queue");
                    failed += n as u64;
                }
            }
        }
        tracing::info!(
            sent,
            failed,
            "missing objects sent to the replicator's queue"
        );
        (sent, failed)
    }
}

/// The state of one table's check while findings are gathered.
struct TableCheck<'a> {
    table: &'a S3Location,
    backup: &'a S3Location,
    history: &'a TableHistory,
    source: &'a TableListing,
    source_log: &'a LogFiles,
    now_ms: i64,
    findings: Vec<Finding>,
}

impl TableCheck<'_> {
    /// The backup's unrestorable versions, and before them the versions the source still has
    /// that the backup never got.
    fn unrestorable_versions(&self) -> Vec<VersionRange> {
        let mut ranges: Vec<VersionRange> = Vec::new();
        let backup_earliest = self.history.versions.first().map(|s| s.version);
        let source_earliest = self.source_log.earliest_version();
        match (source_earliest, backup_earliest) {
            (Some(s), Some(b)) if s < b => ranges.push(VersionRange {
                first: s,
                last: b - 1,
            }),
            (Some(s), None) => ranges.push(VersionRange {
                first: s,
                last: self.source_log.latest_version().unwrap_or(s),
            }),
            _ => {}
        }
        for (first, last) in self.history.ranges(false) {
            push_range(&mut ranges, first, last);
        }
        ranges
    }

    fn latest_restorable(&self) -> bool {
        self.history
            .versions
            .last()
            .is_some_and(|status| status.restorable)
    }

    /// The first restorable version after `v`, if any.
    fn next_restorable_after(&self, v: u64) -> Option<u64> {
        self.history
            .versions
            .iter()
            .find(|s| s.version > v && s.restorable)
            .map(|s| s.version)
    }

    /// Findings about the backup itself: log gaps, unreadable commits and checkpoints, files
    /// the backup lacks.
    fn backup_findings(&mut self) {
        let history = self.history;
        let latest = history.latest_version();
        let log = &history.log;
        // Commits the backup lacks inside its own range (with no checkpoint to restart from).
        let mut gaps: Vec<VersionRange> = Vec::new();
        if let (Some(first), Some(last)) = (history.versions.first(), latest) {
            for v in first.version..=last {
                if !log.commits.contains(&v) && !log.checkpoint_complete(v) {
                    push_range(&mut gaps, v, v);
                }
            }
        }
        for gap in gaps {
            let until = self
                .next_restorable_after(gap.last)
                .map(|n| n - 1)
                .or(latest)
                .unwrap_or(gap.last);
            let reaches_latest = Some(until) == latest;
            let in_source = (gap.first..=gap.last)
                .filter(|v| self.source_log.commits.contains(v))
                .count();
            self.findings.push(
                Finding::new(
                    FindingKind::LogGap,
                    if reaches_latest {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "commits {} are missing from the backup's log, so versions {}..{until} cannot be restored{}",
                        range_text(gap.first, gap.last),
                        gap.first,
                        if in_source > 0 {
                            format!("; the source still has {in_source} of them (see missing_in_backup)")
                        } else {
                            String::new()
                        }
                    ),
                )
                .with("missing_commits", gap)
                .with("unrestorable", VersionRange { first: gap.first, last: until }),
            );
        }
        // Versions the source has below the backup's first (never backed up).
        if let (Some(s), Some(b)) = (
            self.source_log.earliest_version(),
            history.versions.first().map(|s| s.version),
        ) {
            if s < b {
                self.findings.push(
                    Finding::new(
                        FindingKind::LogGap,
                        Severity::Warning,
                        format!(
                            "the backup's log starts at version {b} but the source's at {s}: versions {s}..{} were never backed up (see missing_in_backup)",
                            b - 1
                        ),
                    )
                    .with("missing_commits", VersionRange { first: s, last: b - 1 })
                    .with("unrestorable", VersionRange { first: s, last: b - 1 }),
                );
            }
        }

        let mut missing_files = Vec::new();
        let mut external = Vec::new();
        for problem in &history.problems {
            match problem {
                Problem::LogGap { .. } => {} // reported from the log itself above
                Problem::UnreadableCommit { version, reason } => {
                    let until = self
                        .next_restorable_after(*version)
                        .map(|n| n - 1)
                        .or(latest)
                        .unwrap_or(*version);
                    self.findings.push(
                        Finding::new(
                            FindingKind::UnreadableCommit,
                            if Some(until) == latest && !self.latest_restorable() {
                                Severity::Critical
                            } else {
                                Severity::Warning
                            },
                            format!("commit {version} in the backup cannot be read: {reason}"),
                        )
                        .with("version", version),
                    );
                }
                Problem::BadCheckpoint { version, reason } => self.findings.push(
                    Finding::new(
                        FindingKind::BadCheckpoint,
                        Severity::Warning,
                        format!("checkpoint {version} in the backup cannot be used: {reason}"),
                    )
                    .with("version", version),
                ),
                Problem::MissingFile {
                    path,
                    expected_size,
                    found_size,
                    first,
                    last,
                } => missing_files.push((path, *expected_size, *found_size, *first, *last)),
                Problem::ExternalFile { path, first, last } => external.push(
                    json!({"path": path, "versions": VersionRange { first: *first, last: *last }}),
                ),
            }
        }
        if !missing_files.is_empty() {
            missing_files.sort();
            let mut versions = Vec::new();
            let mut sorted: Vec<(u64, u64)> = missing_files.iter().map(|m| (m.3, m.4)).collect();
            sorted.sort();
            for (first, last) in sorted {
                push_range(&mut versions, first, last);
            }
            let affects_latest = missing_files.iter().any(|m| Some(m.4) == latest);
            let in_source = missing_files
                .iter()
                .filter(|m| self.source.get(m.0).is_some())
                .count();
            let files: Vec<Value> = missing_files
                .iter()
                .take(NAMED_MAX)
                .map(|(path, expected, found, first, last)| {
                    json!({"path": path, "expected_size": expected, "found_size": found,
                           "versions": VersionRange { first: *first, last: *last }})
                })
                .collect();
            self.findings.push(
                Finding::new(
                    FindingKind::MissingFilesInBackup,
                    if affects_latest {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "{} data or deletion-vector file(s) that versions {} need are missing from the backup {} or have the wrong size ({}{}); {in_source} of them are still in the source",
                        missing_files.len(),
                        ranges_text(&versions),
                        self.backup,
                        missing_files.iter().take(3).map(|m| m.0.as_str()).collect::<Vec<_>>().join(", "),
                        if missing_files.len() > 3 { ", ..." } else { "" }
                    ),
                )
                .with("count", missing_files.len())
                .with("versions", versions)
                .with("files", files),
            );
        }
        if !external.is_empty() {
            self.findings.push(
                Finding::new(
                    FindingKind::ExternalFile,
                    Severity::Warning,
                    format!(
                        "{} file(s) the log references lie outside the table root and are not backed up with it",
                        external.len()
                    ),
                )
                .with("count", external.len())
                .with("files", external.into_iter().take(NAMED_MAX).collect::<Vec<_>>()),
            );
        }
    }

    /// Files the source's own versions need that the source lacks: at its latest version the
    /// table is broken (critical); at older versions within the deleted-file retention, time
    /// travel is broken (a VACUUM with too short a retention, a manual delete: warning).
    async fn source_files_missing(&mut self, source_latest: Option<u64>) {
        let Some(source_latest) = source_latest else {
            return;
        };
        let history = self.history;
        let source = self.source;
        // The oldest version the source's own log can still rebuild.
        let source_oldest = if self.source_log.commits.contains(&0) {
            Some(0)
        } else {
            self.source_log
                .checkpoints
                .keys()
                .copied()
                .find(|v| self.source_log.checkpoint_complete(*v))
        };
        let backup_latest = history.latest_version();
        // Whether the backup's replay describes the source's latest version.
        let latest_known = history
            .status(source_latest)
            .is_some_and(|s| s.live_files.is_some());
        let present = |path: &str, size: u64, exact: bool| {
            source.get(path).is_some_and(|o| {
                if exact {
                    o.size == size
                } else {
                    o.size >= size
                }
            })
        };

        let mut at_latest: Vec<(String, u64)> = Vec::new();
        let mut older: Vec<(String, u64, VersionRange)> = Vec::new();
        for need in &history.needs {
            if need.path.contains("://") || present(&need.path, need.size, need.exact) {
                continue;
            }
            if latest_known && need.first <= source_latest && source_latest <= need.last {
                at_latest.push((need.path.to_string(), need.size));
                continue;
            }
            if !latest_known && Some(need.last) == backup_latest {
                continue; // checked against the source's own latest snapshot below
            }
            let first = need.first.max(source_oldest.unwrap_or(u64::MAX));
            let last = need.last.min(source_latest);
            if first > last {
                continue; // versions the source's log no longer reaches anyway
            }
            // Removed by version last + 1: long enough ago, a VACUUM may delete it.
            let removed_ms = history.status(need.last + 1).and_then(|s| s.timestamp_ms);
            if removed_ms.is_some_and(|t| self.now_ms - t > DELETED_FILE_RETENTION_MS) {
                continue;
            }
            older.push((
                need.path.to_string(),
                need.size,
                VersionRange { first, last },
            ));
        }
        if !latest_known {
            match self.source_latest_snapshot().await {
                Ok((_, files)) => {
                    for file in files {
                        if !file.path.contains("://") && !present(&file.path, file.size, true) {
                            at_latest.push((file.path.clone(), file.size));
                        }
                        if let Some(dv) = file.dv {
                            if !dv.path.contains("://") && !present(&dv.path, dv.min_size, false) {
                                at_latest.push((dv.path, dv.min_size));
                            }
                        }
                    }
                }
                Err(err) => self.findings.push(
                    Finding::new(
                        FindingKind::SourceLogUnreadable,
                        Severity::Critical,
                        format!(
                            "the source's latest version {source_latest} cannot be read: {err}"
                        ),
                    )
                    .with("version", source_latest),
                ),
            }
        }
        if at_latest.is_empty() && older.is_empty() {
            return;
        }
        at_latest.sort();
        at_latest.dedup();
        older.sort_by(|a, b| a.0.cmp(&b.0));
        let mut broken = Vec::new();
        let mut spans: Vec<(u64, u64)> = older.iter().map(|o| (o.2.first, o.2.last)).collect();
        if !at_latest.is_empty() {
            spans.push((source_latest, source_latest));
        }
        spans.sort();
        for (first, last) in spans {
            push_range(&mut broken, first, last);
        }
        let mut files: Vec<Value> = at_latest
            .iter()
            .map(|(path, size)| json!({"path": path, "size": size, "needed_by_latest": true}))
            .collect();
        files.extend(older.iter().map(
            |(path, size, versions)| json!({"path": path, "size": size, "versions": versions}),
        ));
        files.truncate(NAMED_MAX);
        let repair = format!(
            "`lifeboat restore {} --mode repair` copies them back from the backup",
            self.table
        );
        let detail = if at_latest.is_empty() {
            format!(
                "time travel to versions {} of the source is broken: {} file(s) they need were deleted from the source within the {}-day retention (a VACUUM with too short a retention, or a manual delete); {repair}",
                ranges_text(&broken),
                older.len(),
                DELETED_FILE_RETENTION_MS / (24 * 3600 * 1000)
            )
        } else {
            format!(
                "the source table is broken: its latest version {source_latest} needs {} file(s) the source no longer has{}; {repair}",
                at_latest.len(),
                if older.is_empty() {
                    String::new()
                } else {
                    format!(", and {} more are gone that versions {} need", older.len(), ranges_text(&broken))
                }
            )
        };
        self.findings.push(
            Finding::new(
                FindingKind::SourceFilesMissing,
                if at_latest.is_empty() {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                detail,
            )
            .with("count", at_latest.len() + older.len())
            .with("latest_version_broken", !at_latest.is_empty())
            .with("versions", broken)
            .with("files", files),
        );
    }

    /// The live files of the source's latest version, read with the kernel (for a source
    /// ahead of what the backup's replay describes).
    async fn source_latest_snapshot(&self) -> Result<(u64, Vec<LiveFile>)> {
        let table = self.table.clone();
        tokio::task::spawn_blocking(move || {
            KernelReader::for_bucket(&table.bucket)?.snapshot_files(&table, None)
        })
        .await
        .map_err(|e| Error::delta(self.table.to_string(), format!("kernel task failed: {e}")))?
    }

    fn no_restorable_version(&self) -> Finding {
        let history = self.history;
        let detail = match (history.versions.first(), history.versions.last()) {
            (Some(first), Some(last)) => format!(
                "none of the backed-up versions {}..{} can be restored; version {}: {}",
                first.version,
                last.version,
                last.version,
                last.reason.as_deref().unwrap_or("unknown reason")
            ),
            _ => format!(
                "the backup holds no Delta log for this table (nothing under {}/_delta_log/)",
                self.backup
            ),
        };
        Finding::new(FindingKind::NoRestorableVersion, Severity::Critical, detail)
    }
}

fn conflict_finding(conflicts: &[ObjectInfo]) -> Finding {
    let kept: Vec<&str> = conflicts
        .iter()
        .take(NAMED_MAX)
        .map(|o| o.key.as_str())
        .collect();
    Finding::new(
        FindingKind::BackupConflict,
        Severity::Warning,
        format!(
            "{} rewrite(s) of this table's log files reached the replicator with content other than the backup's; the backup keeps the originals and the rewritten content aside under {CONFLICTS_PREFIX}",
            conflicts.len()
        ),
    )
    .with("count", conflicts.len())
    .with("kept", kept)
}

/// The S3 notification the replicator would have received for `object`, as an SQS body.
fn notification(bucket: &str, object: &ObjectInfo) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": object.last_modified.map(rfc3339),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "lifeboat-verify"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "lifeboat-verify-resend",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encode_event_key(&object.key), "size": object.size, "eTag": object.etag},
        },
    }]})
}

/// Form-encodes a key as S3 notifications carry it, so that
/// [`crate::keys::decode_event_key`] gives back exactly `key`.
pub fn encode_event_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'=');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

fn push_range(ranges: &mut Vec<VersionRange>, first: u64, last: u64) {
    match ranges.last_mut() {
        Some(r) if first <= r.last.saturating_add(1) => r.last = r.last.max(last),
        _ => ranges.push(VersionRange { first, last }),
    }
}

fn range_text(first: u64, last: u64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    }
}

fn ranges_text(ranges: &[VersionRange]) -> String {
    let mut parts: Vec<String> = ranges
        .iter()
        .take(5)
        .map(|r| range_text(r.first, r.last))
        .collect();
    if ranges.len() > 5 {
        parts.push("...".into());
    }
    parts.join(", ")
}

fn time_of_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::keys::decode_event_key;
    use proptest::prelude::*;

    #[test]
    fn input_shapes() {
        let scheduled = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event",
            "source": "aws.events", "time": "2026-01-01T00:00:00Z", "detail": {}});
        assert_eq!(
            VerifyInput::parse(&scheduled).unwrap(),
            VerifyInput::Scheduled
        );
        assert_eq!(
            VerifyInput::parse(&json!({})).unwrap(),
            VerifyInput::Scheduled
        );
        assert_eq!(
            VerifyInput::parse(&Value::Null).unwrap(),
            VerifyInput::Scheduled
        );
        assert_eq!(
            VerifyInput::parse(&json!({"tables": ["s3://b/t/x/", "s3://b"]})).unwrap(),
            VerifyInput::Tables(vec![
                S3Location::parse("s3://b/t/x").unwrap(),
                S3Location::parse("s3://b").unwrap()
            ])
        );
        for (bad, says) in [
            (json!({"table": "s3://b/t"}), "unknown field `table`"),
            (json!({"tables": "s3://b/t"}), "invalid type"),
            (json!({"tables": [1]}), "invalid type"),
            (json!({"tables": []}), "empty"),
            (json!({"tables": ["b/t"]}), "expected s3://"),
            (json!([1, 2]), "verify input must be"),
        ] {
            let err = VerifyInput::parse(&bad).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
            assert_eq!(err.kind(), "Lifeboat.BadInput");
        }
    }

    #[test]
    fn grace_setting() {
        let s = VerifySettings::from_lookup(|_| None).unwrap();
        assert_eq!(s.grace_seconds, 900);
        let s = VerifySettings::from_lookup(|_| Some("0".into())).unwrap();
        assert_eq!(s.grace_seconds, 0);
        let err = VerifySettings::from_lookup(|_| Some("soon".into())).unwrap_err();
        assert!(err.to_string().contains("LIFEBOAT_GRACE_SECONDS"), "{err}");
    }

    #[test]
    fn ranges_merge() {
        let mut r = Vec::new();
        for (a, b) in [(0, 1), (2, 2), (5, 7), (6, 9), (11, 11)] {
            push_range(&mut r, a, b);
        }
        assert_eq!(
            r,
            vec![
                VersionRange { first: 0, last: 2 },
                VersionRange { first: 5, last: 9 },
                VersionRange {
                    first: 11,
                    last: 11
                }
            ]
        );
        assert_eq!(ranges_text(&r), "0..2, 5..9, 11");
    }

    #[test]
    fn notification_parses_back_to_the_object() {
        let object = ObjectInfo {
            key: "t/part=a b+c%2F/é.parquet".into(),
            size: 42,
            etag: "abc".into(),
            version_id: None,
            last_modified: DateTime::from_timestamp(1_700_000_000, 0),
            metadata: HashMap::new(),
        };
        let body = notification("src", &object).to_string();
        let events = crate::events::parse_body(&body).unwrap();
        let crate::events::ObjectEvent::Created(parsed) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(parsed.bucket, "src");
        assert_eq!(parsed.key, object.key);
        assert_eq!(parsed.size, Some(42));
        assert_eq!(parsed.etag.as_deref(), Some("abc"));
        assert_eq!(parsed.event_time, object.last_modified);
    }

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
        let metrics = report.metrics();
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

    proptest! {
        #[test]
        fn event_keys_round_trip(key in "\\PC{1,60}") {
            prop_assert_eq!(decode_event_key(&encode_event_key(&key)).unwrap(), key);
        }
    }
}
