//! The verifier: which versions of each table can be restored from the backup alone, and what
//! has gone wrong in the source.
//!
//! Per table it makes one listing of the backup table, one of the source table and one of the
//! table's conflict records, reads each backed-up commit once ([`TableHistory`]), and compares
//! the two listings ([`compare`]): sizes first, ETags for log files, and a HEAD only for a log
//! file whose ETags differ (a multipart upload in the source). Missing objects are sent to the
//! replicator's queue as S3 notifications ([`queue`]: self-healing). The report goes to
//! `_lifeboat/reports/` in the backup bucket; nothing else is ever written.
//!
//! - [`input`]: settings and the invoke payload;
//! - [`discover`]: the tables the backup holds;
//! - [`compare`]: source listing × backup listing → findings (pure);
//! - [`backup`], [`source`]: findings about the backup's history and the source's;
//! - [`report`]: the report, its totals and metrics.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::config::Config;
use crate::delta::{LiveFile, LogFiles, TableListing};
use crate::error::{Error, Result};
use crate::history::{valid_commit_at, Divergence, TableHistory};
use crate::identity::same_content;
use crate::keys::S3Location;
use crate::layout::Layout;
use crate::ranges::VersionRange;
use crate::store::{list_all, Store, WriteOptions};

use state::TableState;

pub mod backup;
pub mod catalog;
pub mod compare;
pub mod discover;
pub mod fanout;
pub mod incremental;
pub mod input;
pub mod queue;
pub mod report;
pub mod source;
pub mod source_log;
pub mod state;

pub use input::{VerifyInput, VerifySettings, DEFAULT_GRACE_SECONDS};
pub use queue::{encode_event_key, Queue};
pub use report::{Finding, FindingKind, Report, Severity, Summary, TableReport};

use compare::{compare, Differs, KeptAside};
use report::{rfc3339, time_of_ms};

/// At most this many keys or files are named in one finding (the count is always exact).
const NAMED_MAX: usize = 20;
/// Tables verified at once.
const TABLE_CONCURRENCY: usize = 4;

/// How a run proves each table, and whether it keeps the proven state
/// ([`state`], [`incremental`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proving {
    /// Full proofs, no state read or written (`lifeboat verify`, [`Verifier::run`]).
    Stateless,
    /// Full proofs, and the state they prove written (`{"tables": [...]}`).
    Full,
    /// From each table's proven state where it allows, and the state written (the schedule
    /// and the verify queue).
    Incremental,
}

/// The verifier over any [`Store`] and [`Queue`].
pub struct Verifier<S, Q = aws_sdk_sqs::Client> {
    store: S,
    queue: Option<Q>,
    config: Config,
    settings: VerifySettings,
    /// The Glue Data Catalog, when `LIFEBOAT_GLUE_DATABASES` is set ([`catalog`]).
    catalog: Option<std::sync::Arc<dyn crate::catalog::Catalog>>,
}

impl Verifier<crate::s3::S3Store> {
    /// The verifier as the function and the CLI run it: configuration, settings and the S3
    /// and SQS clients from the environment.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let settings = VerifySettings::from_env()?;
        let clients = crate::s3::Clients::from_env().await;
        let glue = !config.glue_databases.is_empty();
        let store = clients.store().with_bucket_owners(config.bucket_owners());
        let verifier = Verifier::new(store, Some(clients.sqs.clone()), config, settings);
        Ok(match glue {
            true => verifier.with_catalog(std::sync::Arc::new(crate::catalog::GlueCatalog::new(
                clients.glue.clone(),
            ))),
            false => verifier,
        })
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
            catalog: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Lambda handler: verifies, writes the report, prints the metrics and returns the
    /// report. Bad input is an error; a table that cannot be verified is a finding.
    pub async fn handle(&self, input: &Value) -> Result<Value> {
        if crate::catalog::CatalogEvent::is_catalog_event(input) {
            return self.handle_catalog_event(input).await;
        }
        if is_sqs_batch(input) {
            let event: aws_lambda_events::event::sqs::SqsEvent =
                serde_json::from_value(input.clone()).map_err(|e| {
                    Error::bad_input(format!("a verify-queue SQS batch that does not parse: {e}"))
                })?;
            return Ok(serde_json::to_value(self.consume(event).await?)?);
        }
        let input = VerifyInput::parse(input)?;
        let (tables, proving) = match input {
            VerifyInput::Tables(tables) => (Some(tables), Proving::Full),
            VerifyInput::Scheduled => match &self.settings.verify_queue_url {
                Some(url) => return self.dispatch(url).await,
                None => (None, Proving::Incremental),
            },
        };
        let report = self.run_with(tables, proving).await?;
        self.write_report(&report).await?;
        for emf in report.metrics(self.config.per_table_metrics) {
            emf.emit();
        }
        Ok(serde_json::to_value(&report)?)
    }

    /// Verifies `tables`, else the configured tables, else the discovered ones; sends missing
    /// objects to the queue. Writes nothing to S3 but the catalog definitions it captures
    /// ([`catalog`]).
    pub async fn run(&self, tables: Option<Vec<S3Location>>) -> Result<Report> {
        self.run_with(tables, Proving::Stateless).await
    }

    /// [`Self::run`], proving each table as `proving` says.
    pub async fn run_with(
        &self,
        tables: Option<Vec<S3Location>>,
        proving: Proving,
    ) -> Result<Report> {
        let started = Utc::now();
        let all_tables = tables.is_none();
        let tables = self.tables_to_verify(tables).await?;
        tracing::info!(tables = tables.len(), ?proving, "verifying");
        let reports: Vec<TableReport> = stream::iter(tables)
            .map(|table| async move { self.verify_or_report(&table, proving).await })
            .buffered(TABLE_CONCURRENCY)
            .collect()
            .await;
        let reports = self.with_catalog_findings(reports, all_tables).await;
        Ok(Report::new(started, reports))
    }

    /// `tables`, else the configured tables, else the discovered ones; each in a source bucket.
    pub async fn tables_to_verify(
        &self,
        tables: Option<Vec<S3Location>>,
    ) -> Result<Vec<S3Location>> {
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
        Ok(tables)
    }

    /// Verifies one table as `proving` says; a table that cannot be verified is a finding.
    pub async fn verify_or_report(&self, table: &S3Location, proving: Proving) -> TableReport {
        match self.verify_proving(table, proving).await {
            Ok(report) => report,
            Err(err) => {
                tracing::error!(table = %table, error = %err, "verification failed");
                let mut report = TableReport::empty(table);
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
    }

    /// Writes the report as `_lifeboat/reports/<time>.json` and `_lifeboat/reports/latest.json`
    /// in the backup bucket; returns both keys.
    pub async fn write_report(&self, report: &Report) -> Result<Vec<String>> {
        let body = Bytes::from(serde_json::to_vec_pretty(report)?);
        let generated_at = DateTime::parse_from_rfc3339(&report.generated_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let options = WriteOptions {
            content_type: Some("application/json".into()),
            kms_key_id: self.config.kms_key_id.clone(),
            ..WriteOptions::default()
        };
        let mut keys = Vec::new();
        for key in Layout::report_keys(generated_at) {
            self.store
                .put(&self.config.backup_bucket, &key, body.clone(), &options)
                .await?;
            keys.push(key);
        }
        tracing::info!(keys = ?keys, "report written");
        Ok(keys)
    }

    /// Verifies one table: the backup alone, then the source against it (a full proof).
    pub async fn verify_table(&self, table: &S3Location) -> Result<TableReport> {
        Ok(self.verify_table_full(table).await?.0)
    }

    /// [`Self::verify_table`], and the state it proved ([`state`]).
    pub async fn verify_table_full(&self, table: &S3Location) -> Result<(TableReport, TableState)> {
        let now = Utc::now();
        let layout = self.config.layout();
        let backup = layout.location(table);
        let conflicts_prefix = layout.table_conflicts_prefix(table);
        let (mut history, source, conflicts) = futures::try_join!(
            TableHistory::analyze(&self.store, &backup),
            TableListing::load(&self.store, table),
            list_all(&self.store, &self.config.backup_bucket, &conflicts_prefix),
        )?;
        let divergence = history
            .exclude_diverged(&self.store, &conflicts, &conflicts_prefix)
            .await?;
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
        let mut oldest_ms = None;
        let mut newest_ms = None;
        if let Some(v) = oldest {
            oldest_ms = history.commit_time_ms(&self.store, v).await?;
            report.oldest_restorable_commit_time = oldest_ms.and_then(time_of_ms).map(rfc3339);
        }
        if let Some(v) = newest {
            let time = history.commit_time_ms(&self.store, v).await?;
            newest_ms = time;
            report.newest_restorable_commit_time = time.and_then(time_of_ms).map(rfc3339);
            report.rpo_seconds = time.map(|t| ((check.now_ms - t) / 1000).max(0));
        }
        let dropped = source_log::dropped(&source_log);
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
                check.findings.push(check.source_log_regressed(s, b));
            }
        }
        report.unrestorable_versions = check.unrestorable_versions();

        check.backup_findings();
        if let Some(broken) = source_log::broken(&source_log) {
            check.findings.push(source_log::finding(table, &broken));
        }
        if !conflicts.is_empty() {
            check.findings.push(backup::conflict_finding(&conflicts));
        }
        let mut resend = Vec::new();
        if dropped {
            check.findings.push(check.table_dropped());
        } else {
            let cutoff = now - chrono::Duration::seconds(self.settings.grace_seconds as i64);
            let mut comparison = compare(
                &source,
                &history.listing,
                &KeptAside::new(&conflicts_prefix, &conflicts),
                |k| self.config.selects(k),
                cutoff,
            );
            if let Some(d) = &divergence {
                // The source's commits from the divergence on are another branch, not garbage:
                // reported as such below, never as corruption, unless such a commit is no
                // valid commit any more (the other branch was corrupted in turn).
                let diverged = |p: &str| log_version(p).is_some_and(|v| v >= d.version);
                let mut branch = Vec::new();
                for list in [&mut comparison.corrupted, &mut comparison.undecided] {
                    let (theirs, ours): (Vec<Differs>, Vec<Differs>) = std::mem::take(list)
                        .into_iter()
                        .partition(|c| diverged(&c.path));
                    *list = ours;
                    branch.extend(theirs);
                }
                comparison
                    .corrupted
                    .extend(self.invalid_commits(table, branch).await?);
            }
            let undecided = std::mem::take(&mut comparison.undecided);
            comparison
                .corrupted
                .extend(self.resolve_undecided(table, undecided).await?);
            comparison.stale_hints_are_missing();
            let healing = if self.config.queue_url.is_some() {
                "sent to the replicator's queue".to_string()
            } else {
                format!("no LIFEBOAT_QUEUE_URL to send them to: `lifeboat backfill {table}` copies them")
            };
            let needed_now = |path: &str| {
                source_latest.is_some_and(|v| {
                    history
                        .needs
                        .iter()
                        .any(|n| &*n.path == path && n.first <= v && v <= n.last)
                })
            };
            check.findings.extend(comparison.findings(
                table,
                self.settings.grace_seconds,
                &healing,
                needed_now,
            ));
            resend = comparison.resend(&table.bucket);
            if let Some(finding) = self
                .checkpoint_hint_finding(table, &source, &source_log)
                .await?
            {
                check.findings.push(finding);
            }
            if let Some(latest) = source_latest {
                let snapshot = if check.knows_source_latest(latest) {
                    None
                } else {
                    Some(self.source_latest_snapshot(table).await)
                };
                check.source_files_missing(latest, snapshot);
            }
        }
        let (sent, failed) = match (&self.queue, &self.config.queue_url) {
            (Some(queue), Some(url)) => queue::send_all(queue, url, &resend).await,
            _ => (0, 0),
        };
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
        if let Some(d) = &divergence {
            check.findings.push(check.log_diverged(d));
        }
        if newest.is_none() {
            check.findings.push(check.no_restorable_version());
        }
        check.findings.sort_by_key(|f| f.severity);
        report.findings = check.findings;
        tracing::info!(table = %table, latest = ?report.latest_backup_version,
            newest_restorable = ?newest, findings = report.findings.len(), "table verified");
        let proven = ProvenFull {
            oldest_ms,
            newest_ms,
            conflicts: conflicts.len(),
            diverged: divergence.is_some(),
            now_ms: now.timestamp_millis(),
        }
        .state(&history, &report);
        Ok((report, proven))
    }

    /// The commits among `candidates` whose source content is no valid Delta commit (one
    /// gone meanwhile is left to the next run).
    async fn invalid_commits(
        &self,
        table: &S3Location,
        candidates: Vec<Differs>,
    ) -> Result<Vec<Differs>> {
        let mut invalid = Vec::new();
        for c in candidates {
            if let Some((_, false)) = valid_commit_at(&self.store, table, &c.path).await? {
                invalid.push(c);
            }
        }
        Ok(invalid)
    }

    /// Objects of the same size rewritten after their copy was made: the same content or not,
    /// decided by [`crate::identity`] from a HEAD of each side (the backup copy's recorded
    /// source identity and both checksums), and by the bytes when those cannot tell. Returns
    /// those whose content differs.
    async fn resolve_undecided(
        &self,
        table: &S3Location,
        undecided: Vec<Differs>,
    ) -> Result<Vec<Differs>> {
        let mut differ = Vec::new();
        for d in undecided {
            let backup_bucket = &self.config.backup_bucket;
            let (copy, source) = futures::try_join!(
                self.store.head(backup_bucket, &d.backup.key, None),
                self.store.head(&table.bucket, &d.source.key, None),
            )?;
            let (Some(copy), Some(source)) = (copy, source) else {
                continue; // gone meanwhile: the next run sees it missing
            };
            let same = match same_content(&copy, &source).decided() {
                Some(answer) => answer,
                None => {
                    let (ours, theirs) = futures::try_join!(
                        self.store.get(backup_bucket, &d.backup.key, None),
                        self.store.get(&table.bucket, &d.source.key, None),
                    )?;
                    theirs.is_none() || ours == theirs
                }
            };
            if !same {
                differ.push(d);
            }
        }
        Ok(differ)
    }

    /// A source `_last_checkpoint` that points at no checkpoint the log holds: readers trust
    /// it and fail (Lifeboat's own reads ignore it, so nothing else would say so).
    async fn checkpoint_hint_finding(
        &self,
        table: &S3Location,
        source: &TableListing,
        log: &LogFiles,
    ) -> Result<Option<Finding>> {
        if source.get("_delta_log/_last_checkpoint").is_none() {
            return Ok(None);
        }
        let key = table.key("_delta_log/_last_checkpoint");
        let Some(hint) = self.store.get(&table.bucket, &key, None).await? else {
            return Ok(None);
        };
        Ok(crate::delta::check_checkpoint_hint(&hint, log).err().map(|why| {
            Finding::new(
                FindingKind::SourceLogUnreadable,
                Severity::Critical,
                format!(
                    "{why}: readers of the source trust it and fail (\"had a _last_checkpoint hint but didn't find any checkpoints\"). Delete s3://{}/{key} (readers then list the log; Lifeboat never deletes), or repair the checkpoint it names",
                    table.bucket
                ),
            )
            .with("path", "_delta_log/_last_checkpoint")
        }))
    }

    /// The live files of the source's latest version, read with the kernel (for a source
    /// ahead of what the backup's replay describes).
    async fn source_latest_snapshot(&self, table: &S3Location) -> Result<Vec<LiveFile>> {
        let reader = self.store.delta_reader(&table.bucket).await?;
        let location = table.clone();
        tokio::task::spawn_blocking(move || reader.snapshot_files(&location, None))
            .await
            .map_err(|e| Error::delta(table.to_string(), format!("kernel task failed: {e}")))?
            .map(|(_, files)| files)
    }
}

/// The state of one table's check while findings are gathered.
pub struct TableCheck<'a> {
    pub(crate) table: &'a S3Location,
    pub(crate) backup: &'a S3Location,
    pub(crate) history: &'a TableHistory,
    pub(crate) source: &'a TableListing,
    pub(crate) source_log: &'a LogFiles,
    pub(crate) now_ms: i64,
    pub(crate) findings: Vec<Finding>,
}

impl TableCheck<'_> {
    /// The source's log ends at `source_latest`, before the backup's `backup_latest`.
    fn source_log_regressed(&self, source_latest: u64, backup_latest: u64) -> Finding {
        let (s, b) = (source_latest, backup_latest);
        Finding::new(
            FindingKind::SourceLogRegressed,
            Severity::Critical,
            format!(
                "the source's log ends at version {s} but the backup holds commits up to {b}: version(s) {} were deleted from the source's _delta_log/ (a stale `aws s3 sync --delete`, a manual rm) and readers now silently see version {s}; `lifeboat restore {} --mode repair` puts them back (a dry run first shows what it copies)",
                VersionRange::new(s + 1, b),
                self.table
            ),
        )
        .with("source_latest_version", s)
        .with("backup_latest_version", b)
        .with("lost_versions", VersionRange::new(s + 1, b))
    }

    /// The source's log and the backup's went separate ways at `d.version`.
    fn log_diverged(&self, d: &Divergence) -> Finding {
        let table = self.table;
        let v = d.version;
        let stitched = match d.stitched_from {
            Some(from) => format!(
                "; the backup's commits from {from} on were copied from the source's branch and are not restorable (they never chained onto the backup's commit {v})"
            ),
            None => String::new(),
        };
        Finding::new(
            FindingKind::LogDiverged,
            Severity::Critical,
            format!(
                "from version {v} the source and the backup hold different histories: the source's commit {v} (kept aside at {}) is another valid commit, so its log was rolled back (a stale sync, a manual rm) and written on again{stitched}. Lifeboat never stitches the two nor repairs over a valid commit. Choose: keep the source's branch (nothing to do; versions before {v} stay restorable), roll the source back to before it (`lifeboat restore {table} --mode rollback --version {}`), or clone the backup's branch elsewhere (`lifeboat restore {table} --mode clone --version <v> --target s3://...`)",
                d.at,
                v.saturating_sub(1),
            ),
        )
        .with("version", v)
        .with("stitched_from", d.stitched_from)
    }

    /// The source has no log left.
    fn table_dropped(&self) -> Finding {
        Finding::new(
            FindingKind::TableDropped,
            Severity::Critical,
            format!(
                "the source has no Delta log under {} (no commit or checkpoint left in _delta_log/): the table was dropped or its log deleted ({} objects remain under the prefix); the backup still holds it: `lifeboat restore {} --mode rollback` brings it back",
                self.table,
                self.source.len(),
                self.table
            ),
        )
        .with("source_objects", self.source.len())
    }
}

/// Whether a Lambda payload is an SQS batch (the verify queue's).
fn is_sqs_batch(input: &Value) -> bool {
    input["Records"]
        .as_array()
        .and_then(|r| r.first())
        .is_some_and(|r| r["eventSource"] == "aws:sqs")
}

mod proving;
use proving::ProvenFull;

/// The version a log file (a commit, a checkpoint, a CRC) belongs to, from its path relative
/// to the table root.
fn log_version(path: &str) -> Option<u64> {
    crate::delta::classify_log_file(path.strip_prefix("_delta_log/")?).1
}
