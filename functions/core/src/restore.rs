//! The restorer: plan, then carry out, a rollback, clone or repair of a table to a version the
//! backup can restore. Safe by default (a dry run unless told otherwise), never deletes,
//! idempotent: objects already in place with the same size and ETag are skipped, so a rerun
//! finishes an interrupted restore.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::copy::{copy_object_pinned, CopyRequest, CopySettings};
use crate::delta::{
    commit_path, parse_commit, table_url, FileEntry, KernelReader, SnapshotDetail, TableListing,
};
use crate::error::{Error, Result};
use crate::history::{TableHistory, VersionStatus};
use crate::keys::S3Location;
use crate::store::{CopyResult, PutResult, SourcePin, Store, WriteOptions};

/// How the table comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In place, as a new commit whose snapshot equals the restore point.
    Rollback,
    /// Into an empty location, with history up to the restore point.
    Clone,
    /// In place, byte for byte, no new commit.
    Repair,
}

/// The invoke payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub table: String,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub mode: Mode,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "default_dry_run")]
    pub dry_run: bool,
    /// Set by the restorer on the follow-up invocations of a long restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<u32>,
}

fn default_dry_run() -> bool {
    true
}

const PAYLOAD_SHAPE: &str = r#"{"table": "s3://bucket/path/to/table", "mode": "rollback" | "clone" | "repair", "version": 42 | "timestamp": "2026-11-20T10:00:00Z" (optional, default: newest restorable), "target": "s3://bucket/new/path" (clone only), "dry_run": true (default)}"#;

impl RestoreRequest {
    /// Parses an invoke payload, with errors that show what is expected.
    pub fn from_value(value: &Value) -> Result<Self> {
        if !value.is_object() {
            return Err(Error::bad_input(format!(
                "the restore payload must be a JSON object like {PAYLOAD_SHAPE}"
            )));
        }
        if value.get("mode").is_none() {
            return Err(Error::bad_input(format!(
                "missing field `mode`: say how to restore, one of rollback (in place, as a new commit), clone (into an empty target) or repair (put back missing or damaged files). Payload: {PAYLOAD_SHAPE}"
            )));
        }
        serde_json::from_value(value.clone()).map_err(|e| {
            Error::bad_input(format!(
                "bad restore payload: {e}. Expected {PAYLOAD_SHAPE}"
            ))
        })
    }
}

/// A checked request.
#[derive(Debug, Clone)]
struct Resolved {
    source: S3Location,
    target: S3Location,
    timestamp: Option<DateTime<Utc>>,
}

fn resolve(request: &RestoreRequest, config: &Config) -> Result<Resolved> {
    let source =
        S3Location::parse(&request.table).map_err(|e| Error::bad_input(format!("table: {e}")))?;
    if source.prefix.is_empty() {
        return Err(Error::bad_input(format!(
            "table {} names a whole bucket; give the table's location, s3://bucket/path/to/table",
            request.table
        )));
    }
    if !config.is_source_bucket(&source.bucket) {
        return Err(Error::bad_input(format!(
            "table {} is not in a protected source bucket (LIFEBOAT_SOURCE_BUCKETS: {})",
            source,
            config.source_buckets.join(", ")
        )));
    }
    if request.version.is_some() && request.timestamp.is_some() {
        return Err(Error::bad_input("give `version` or `timestamp`, not both"));
    }
    let timestamp = match &request.timestamp {
        None => None,
        Some(text) => Some(parse_timestamp(text)?),
    };
    let target = match (request.mode, &request.target) {
        (Mode::Clone, None) => {
            return Err(Error::bad_input(
                "mode clone needs `target`: an empty location such as s3://bucket/restored/table",
            ))
        }
        (Mode::Clone, Some(target)) => {
            let target =
                S3Location::parse(target).map_err(|e| Error::bad_input(format!("target: {e}")))?;
            if target.bucket == config.backup_bucket {
                return Err(Error::bad_input("target must not be in the backup bucket: nothing writes there but the replicator"));
            }
            let inside = |a: &S3Location, b: &S3Location| {
                a.bucket == b.bucket
                    && (a.prefix == b.prefix
                        || a.prefix.starts_with(&b.dir_prefix())
                        || b.prefix.is_empty())
            };
            if inside(&target, &source) || inside(&source, &target) {
                return Err(Error::bad_input(format!(
                    "target {target} overlaps the table {source}; clone into a separate location (or use rollback/repair to restore in place)"
                )));
            }
            target
        }
        (mode, Some(_)) => {
            return Err(Error::bad_input(format!(
                "`target` is only for clone; {} restores the table in place",
                serde_json::to_value(mode)?.as_str().unwrap_or("this mode")
            )))
        }
        (_, None) => source.clone(),
    };
    Ok(Resolved {
        source,
        target,
        timestamp,
    })
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(23, 59, 59).expect("valid").and_utc());
    }
    Err(Error::bad_input(format!(
        "timestamp {text:?} is not a time: use RFC 3339, e.g. 2026-11-20T10:00:00Z"
    )))
}

/// One object the restore copies from the backup.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCopy {
    /// Path relative to the table root.
    pub path: String,
    pub size: u64,
    /// Why it is copied: `log`, `data`, or `replace` (the target holds different content).
    pub reason: &'static str,
}

/// The commit a rollback writes.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCommit {
    pub version: u64,
    pub read_version: u64,
    pub files_to_add: u64,
    pub files_to_remove: u64,
    pub metadata_restored: bool,
    /// The actions, one JSON object per line of the commit file.
    #[serde(skip)]
    pub actions: Vec<Value>,
}

/// What a restore will do (a dry run returns it).
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub table: String,
    pub mode: Mode,
    pub target: String,
    pub restore_point: RestorePoint,
    pub restorable_versions: Vec<(u64, u64)>,
    pub objects_to_copy: u64,
    pub bytes_to_copy: u64,
    /// Objects already in the target with the same size and ETag (skipped).
    pub already_present: u64,
    /// Files older versions needed that the backup does not have (those versions were not
    /// restorable anyway; the restore point does not need them).
    pub unavailable_in_backup: u64,
    /// The table has no log left in the source: a rollback recreates it with its history.
    pub recreate: bool,
    pub commit: Option<PlannedCommit>,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub copies: Vec<PlannedCopy>,
    #[serde(skip)]
    backup: S3Location,
    #[serde(skip)]
    target_location: S3Location,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestorePoint {
    pub version: u64,
    pub commit_time: Option<String>,
}

/// What an execution did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreOutcome {
    pub copied: u64,
    pub bytes_copied: u64,
    /// Already in place with the same size and ETag.
    pub skipped: u64,
    pub commit_written: Option<u64>,
    /// False when the time ran out before every copy was made: run again to continue.
    pub complete: bool,
    pub remaining_objects: u64,
    pub seconds: f64,
}

/// The restorer over any [`Store`].
pub struct Restorer<S> {
    store: S,
    config: Config,
    settings: CopySettings,
}

impl Restorer<crate::s3::S3Store> {
    /// The restorer as the function and the CLI run it: configuration and the S3 client from
    /// the environment.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let clients = crate::s3::Clients::from_env().await;
        Ok(Restorer::new(crate::s3::S3Store::new(clients.s3), config))
    }
}

impl<S: Store> Restorer<S> {
    pub fn new(store: S, config: Config) -> Self {
        let settings = CopySettings::from(&config);
        Restorer {
            store,
            config,
            settings,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Works out what a restore would do. Reads only.
    pub async fn plan(&self, request: &RestoreRequest) -> Result<RestorePlan> {
        let resolved = resolve(request, &self.config)?;
        let backup = self.config.backup_location(&resolved.source);
        let history = TableHistory::analyze(&self.store, &backup).await?;
        if history.versions.is_empty() {
            return Err(Error::Restore(format!(
                "the backup holds no Delta log for {} (looked under {}/_delta_log/): nothing to restore from. Was the table ever replicated? `lifeboat backfill` copies an existing table",
                resolved.source, backup
            )));
        }
        let point = self.choose_point(request, &resolved, &history).await?;
        let version = point.version;
        let commit_time = history.commit_time_ms(&self.store, version).await?;
        let target = TableListing::load(&self.store, &resolved.target).await?;

        let mut plan = RestorePlan {
            table: resolved.source.to_string(),
            mode: request.mode,
            target: resolved.target.to_string(),
            restore_point: RestorePoint {
                version,
                commit_time: commit_time
                    .and_then(DateTime::from_timestamp_millis)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            },
            restorable_versions: history.ranges(true),
            objects_to_copy: 0,
            bytes_to_copy: 0,
            already_present: 0,
            unavailable_in_backup: 0,
            recreate: false,
            commit: None,
            notes: Vec::new(),
            copies: Vec::new(),
            backup: backup.clone(),
            target_location: resolved.target.clone(),
        };

        match request.mode {
            Mode::Clone => {
                let wanted = self.plan_history_copies(&mut plan, &history, &target, version);
                // A rerun of an interrupted clone finds its own objects there, and goes on.
                let foreign: Vec<&str> = target
                    .paths()
                    .filter(|k| !wanted.contains(*k) || plan.copies.iter().any(|c| c.path == *k))
                    .collect();
                if let Some(key) = foreign.first() {
                    return Err(Error::Restore(format!(
                        "clone target {} is not empty: it holds {} object(s) that are not part of this clone, e.g. {key:?}. Clone into an empty location (a clone never overwrites)",
                        resolved.target,
                        foreign.len()
                    )));
                }
                if plan.already_present > 0 {
                    plan.notes.push(format!(
                        "{} object(s) of an interrupted run of this clone are already in place and are skipped",
                        plan.already_present
                    ));
                }
            }
            Mode::Repair => {
                self.plan_history_copies(&mut plan, &history, &target, version);
            }
            Mode::Rollback => {
                let source_log: Vec<(&str, u64)> = target
                    .paths()
                    .filter_map(|k| {
                        let name = k.strip_prefix("_delta_log/")?;
                        Some((k, crate::delta::classify_log_file(name).1?))
                    })
                    .collect();
                // A log that is an exact, shorter copy of the backup's is a recreation that
                // was interrupted: it goes on.
                let resumed = !source_log.is_empty()
                    && source_log.iter().all(|(k, v)| {
                        *v <= version
                            && matches!((target.get(k), history.listing.get(k)),
                                (Some(a), Some(b)) if a.size == b.size && a.etag == b.etag)
                    })
                    && history
                        .log
                        .commits
                        .range(..=version)
                        .any(|v| !source_log.iter().any(|(_, s)| s == v));
                if source_log.is_empty() || resumed {
                    plan.recreate = true;
                    plan.notes.push(if resumed {
                        format!("the source holds part of the log as the backup has it (an interrupted recreation): the rest is copied, up to version {version}")
                    } else {
                        format!("the source has no Delta log left (a dropped table): it is recreated as it was at version {version}, history included")
                    });
                    self.plan_history_copies(&mut plan, &history, &target, version);
                } else {
                    self.plan_rollback(&mut plan, &history, &target, &resolved)
                        .await?;
                }
            }
        }
        plan.objects_to_copy = plan.copies.len() as u64;
        plan.bytes_to_copy = plan.copies.iter().map(|c| c.size).sum();
        Ok(plan)
    }

    async fn choose_point<'h>(
        &self,
        request: &RestoreRequest,
        resolved: &Resolved,
        history: &'h TableHistory,
    ) -> Result<&'h VersionStatus> {
        let ranges = history.ranges(true);
        let range_text = format_ranges(&ranges);
        let first = history.versions.first().map(|s| s.version).unwrap_or(0);
        let last = history.latest_version().unwrap_or(0);
        if let Some(v) = request.version {
            let status = history.status(v).ok_or_else(|| {
                Error::Restore(format!(
                    "version {v} of {} is not in the backup, which holds versions {first}..{last}; restorable: {range_text}",
                    resolved.source
                ))
            })?;
            if !status.restorable {
                return Err(Error::Restore(format!(
                    "version {v} of {} cannot be restored: {}. Restorable versions: {range_text}",
                    resolved.source,
                    status.reason.as_deref().unwrap_or("unknown reason")
                )));
            }
            return Ok(status);
        }
        let newest = history.newest_restorable().ok_or_else(|| {
            let reason = history
                .versions
                .last()
                .and_then(|s| s.reason.clone())
                .unwrap_or_default();
            Error::Restore(format!(
                "no version of {} can be restored from the backup (versions {first}..{last} are there, but e.g. version {last}: {reason})",
                resolved.source
            ))
        })?;
        let Some(at) = resolved.timestamp else {
            return Ok(newest);
        };
        let at_ms = at.timestamp_millis();
        let mut oldest_time = None;
        for status in history.versions.iter().rev().filter(|s| s.restorable) {
            let time = match status.timestamp_ms {
                Some(t) => Some(t),
                None => history.commit_time_ms(&self.store, status.version).await?,
            };
            match time {
                Some(t) if t <= at_ms => return Ok(status),
                Some(t) => oldest_time = Some((status.version, t)),
                None => {}
            }
        }
        let (oldest, oldest_ms) = oldest_time.unwrap_or((newest.version, 0));
        Err(Error::Restore(format!(
            "timestamp {} is before the oldest restore point of {}: version {oldest} committed at {}. Restorable versions: {range_text}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true),
            resolved.source,
            DateTime::from_timestamp_millis(oldest_ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)).unwrap_or_default()
        )))
    }

    /// Log files up to `version` and every data and deletion-vector file those versions need,
    /// as the backup has them (clone, repair, and the recreation of a dropped table). Returns
    /// every path the restore point's history consists of.
    fn plan_history_copies(
        &self,
        plan: &mut RestorePlan,
        history: &TableHistory,
        target: &TableListing,
        version: u64,
    ) -> HashSet<String> {
        let first = history.versions.first().map(|s| s.version).unwrap_or(0);
        let mut paths: Vec<String> = history.log.paths_up_to(version);
        paths.extend(
            history
                .files_needed(first, version)
                .into_iter()
                .map(|n| n.path.to_string()),
        );
        let needed_now: HashSet<&str> = history
            .files_needed(version, version)
            .into_iter()
            .map(|n| &*n.path)
            .collect();
        let mut seen = HashSet::new();
        for path in paths {
            if !seen.insert(path.clone()) || path.contains("://") {
                continue;
            }
            match history.listing.get(&path) {
                None => {
                    debug_assert!(
                        !needed_now.contains(path.as_str()),
                        "restorable version lacks {path}"
                    );
                    plan.unavailable_in_backup += 1;
                }
                Some(backup) => match target.get(&path) {
                    Some(present) if present.size == backup.size && present.etag == backup.etag => {
                        plan.already_present += 1
                    }
                    present => plan.copies.push(PlannedCopy {
                        reason: if present.is_some() {
                            "replace"
                        } else if path.starts_with("_delta_log/") {
                            "log"
                        } else {
                            "data"
                        },
                        path,
                        size: backup.size,
                    }),
                },
            }
        }
        if plan.unavailable_in_backup > 0 {
            plan.notes.push(format!(
                "{} file(s) that only unrestorable older versions referenced are not in the backup and are not copied",
                plan.unavailable_in_backup
            ));
        }
        seen
    }

    async fn plan_rollback(
        &self,
        plan: &mut RestorePlan,
        history: &TableHistory,
        target: &TableListing,
        resolved: &Resolved,
    ) -> Result<()> {
        let version = plan.restore_point.version;
        // Files the restore point needs that the source lacks (or holds with another size).
        for need in history.files_needed(version, version) {
            let Some(backup) = history.listing.get(&need.path) else {
                continue;
            };
            match target.get(&need.path) {
                Some(present) if present.size == backup.size => plan.already_present += 1,
                present => plan.copies.push(PlannedCopy {
                    path: need.path.to_string(),
                    size: backup.size,
                    reason: if present.is_some() { "replace" } else { "data" },
                }),
            }
        }

        let backup_location = plan.backup.clone();
        let source = resolved.source.clone();
        let backup_bucket = self.config.backup_bucket.clone();
        let (restore_point, current) = tokio::task::spawn_blocking(move || -> Result<(SnapshotDetail, SnapshotDetail)> {
            let from_backup = KernelReader::for_bucket(&backup_bucket)?.snapshot(&backup_location, Some(version))?;
            let current = KernelReader::for_bucket(&source.bucket)?.snapshot(&source, None).map_err(|e| {
                Error::Restore(format!(
                    "the source table {source} cannot be read ({e}); its log is damaged: use mode repair to put back the backed-up log files, or clone it elsewhere"
                ))
            })?;
            Ok((from_backup, current))
        })
        .await
        .map_err(|e| Error::Restore(format!("snapshot task failed: {e}")))??;

        if current.version < version {
            return Err(Error::Restore(format!(
                "the source's latest version is {}, older than the restore point {version}: its newest log files are gone. Use mode repair to put them back",
                current.version
            )));
        }
        check_writable(&current.protocol, &current.metadata)?;
        let current_ids: HashMap<(String, Option<String>), &FileEntry> =
            current.files.iter().map(|f| (f.identity(), f)).collect();
        let wanted_ids: HashSet<(String, Option<String>)> =
            restore_point.files.iter().map(|f| f.identity()).collect();
        let adds: Vec<&FileEntry> = restore_point
            .files
            .iter()
            .filter(|f| !current_ids.contains_key(&f.identity()))
            .collect();
        let removes: Vec<&FileEntry> = current
            .files
            .iter()
            .filter(|f| !wanted_ids.contains(&f.identity()))
            .collect();
        if !removes.is_empty() && current.metadata["configuration"]["delta.appendOnly"] == "true" {
            return Err(Error::Restore(format!(
                "{} is append-only (delta.appendOnly=true): a rollback would remove {} file(s). Clone the restore point elsewhere instead",
                resolved.source,
                removes.len()
            )));
        }
        let metadata_restored = restore_point.metadata != current.metadata;
        let now = Utc::now().timestamp_millis();
        let mut commit_info = json!({
            "timestamp": now,
            "operation": "RESTORE",
            "operationParameters": {"version": version, "timestamp": null},
            "readVersion": current.version,
            "isolationLevel": "Serializable",
            "isBlindAppend": false,
            "operationMetrics": {
                "numRestoredFiles": adds.len().to_string(),
                "restoredFilesSize": adds.iter().map(|f| f.size).sum::<u64>().to_string(),
                "numRemovedFiles": removes.len().to_string(),
                "removedFilesSize": removes.iter().map(|f| f.size).sum::<u64>().to_string(),
            },
            "engineInfo": format!("Lifeboat/{}", env!("CARGO_PKG_VERSION")),
        });
        if current.in_commit_timestamps {
            let previous = self
                .previous_commit_time(&resolved.source, current.version)
                .await?;
            commit_info["inCommitTimestamp"] = json!(now.max(previous.unwrap_or(0) + 1));
        }
        let mut actions = vec![json!({ "commitInfo": commit_info })];
        if metadata_restored {
            let mut metadata = restore_point.metadata.clone();
            // The table keeps its identity and the properties that govern how it is written.
            metadata["id"] = current.metadata["id"].clone();
            if current.in_commit_timestamps {
                for key in [
                    "delta.enableInCommitTimestamps",
                    "delta.inCommitTimestampEnablementVersion",
                    "delta.inCommitTimestampEnablementTimestamp",
                ] {
                    if let Some(value) = current.metadata["configuration"].get(key) {
                        metadata["configuration"][key] = value.clone();
                    }
                }
            }
            actions.push(json!({ "metaData": metadata }));
        }
        actions.extend(removes.iter().map(|f| f.remove_action(now)));
        actions.extend(adds.iter().map(|f| f.add_action()));
        plan.commit = Some(PlannedCommit {
            version: current.version + 1,
            read_version: current.version,
            files_to_add: adds.len() as u64,
            files_to_remove: removes.len() as u64,
            metadata_restored,
            actions,
        });
        if adds.is_empty() && removes.is_empty() && !metadata_restored {
            plan.notes.push(format!(
                "the source's latest version {} already equals version {version}; the commit records the restore and changes no data",
                current.version
            ));
        }
        Ok(())
    }

    async fn previous_commit_time(&self, table: &S3Location, version: u64) -> Result<Option<i64>> {
        let key = table.key(&commit_path(version));
        let Some(body) = self.store.get(&table.bucket, &key, None).await? else {
            return Ok(None);
        };
        Ok(parse_commit(&table_url(table)?, version, &body)
            .ok()
            .and_then(|c| c.timestamp_ms))
    }

    /// Carries out `plan`: the copies (in parallel, bounded), then the commit of a rollback.
    /// Stops copying at `deadline` and reports what remains; the commit is written only after
    /// every copy is done.
    pub async fn execute(
        &self,
        plan: &RestorePlan,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<RestoreOutcome> {
        let started = Instant::now();
        let done = AtomicU64::new(0);
        let total = plan.copies.len() as u64;
        let bytes = AtomicU64::new(0);
        let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
        // Data files first, then the log in version order: a reader never meets a commit
        // whose files are not there yet, even if the restore is interrupted.
        let (log, data): (Vec<&PlannedCopy>, Vec<&PlannedCopy>) = plan
            .copies
            .iter()
            .partition(|c| c.path.starts_with("_delta_log/"));
        let mut log = log;
        log.sort_by(|a, b| a.path.cmp(&b.path));
        let mut results = Vec::with_capacity(plan.copies.len());
        for wave in [data, log] {
            let wave_results: Vec<Result<bool>> = stream::iter(wave)
                .map(|copy| async {
                    if out_of_time() {
                        return Ok(false);
                    }
                    let from = plan.backup.key(&copy.path);
                    let to = plan.target_location.key(&copy.path);
                    let request = CopyRequest {
                        source_bucket: &plan.backup.bucket,
                        source_key: &from,
                        size: copy.size,
                        pin: SourcePin::default(),
                        bucket: &plan.target_location.bucket,
                        key: &to,
                        options: WriteOptions::default(),
                    };
                    match copy_object_pinned(&self.store, &self.settings, &request).await? {
                        CopyResult::Copied { .. } => {
                            bytes.fetch_add(copy.size, Ordering::Relaxed);
                            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                            Ok(true)
                        }
                        other => Err(Error::Restore(format!(
                            "s3://{}/{from} could not be read from the backup ({other:?}); nothing was written for it. Run the restore again",
                            plan.backup.bucket
                        ))),
                    }
                })
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
            results.extend(wave_results);
            if results.iter().any(|r| r.is_err()) {
                break;
            }
        }
        let mut copied = 0;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(true) => copied += 1,
                Ok(false) => {}
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        let mut outcome = RestoreOutcome {
            copied,
            bytes_copied: bytes.load(Ordering::Relaxed),
            skipped: plan.already_present,
            commit_written: None,
            complete: copied == total,
            remaining_objects: total - copied,
            seconds: 0.0,
        };
        if outcome.complete {
            if let Some(commit) = &plan.commit {
                let body: String = commit.actions.iter().map(|a| format!("{a}\n")).collect();
                let key = plan.target_location.key(&commit_path(commit.version));
                let body = Bytes::from(body);
                let bucket = &plan.target_location.bucket;
                match self.store.put(bucket, &key, body.clone(), true, &WriteOptions::default()).await? {
                    PutResult::Written { .. } => outcome.commit_written = Some(commit.version),
                    // The SDK retried a put whose first answer was lost: the commit there is ours.
                    PutResult::AlreadyExists if self.store.get(bucket, &key, None).await?.as_ref() == Some(&body) => {
                        outcome.commit_written = Some(commit.version)
                    }
                    PutResult::AlreadyExists => {
                        return Err(Error::Restore(format!(
                            "another writer committed version {} of {} while the restore was running; nothing was overwritten. Run the restore again: it plans against the new latest version",
                            commit.version, plan.table
                        )))
                    }
                }
            }
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    /// Plans, and unless it is a dry run, executes: the response the Lambda and the CLI give.
    pub async fn run(
        &self,
        request: &RestoreRequest,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<Value> {
        let plan = self.plan(request).await?;
        let mut response = json!({
            "dry_run": request.dry_run,
            "plan": plan,
        });
        if let Some(commit) = &plan.commit {
            response["plan"]["commit"]["preview"] =
                Value::Array(commit.actions.iter().take(12).cloned().collect());
        }
        response["plan"]["copies_preview"] =
            serde_json::to_value(plan.copies.iter().take(20).collect::<Vec<_>>())?;
        if request.dry_run {
            response["next"] = json!("this was a dry run: nothing was written. Send the same payload with \"dry_run\": false to restore");
            return Ok(response);
        }
        let outcome = self.execute(&plan, deadline, progress).await?;
        response["result"] = serde_json::to_value(&outcome)?;
        if !outcome.complete {
            response["next"] = json!(format!(
                "{} object(s) remain: the restore continues in a follow-up invocation with the same payload; already copied objects are skipped",
                outcome.remaining_objects
            ));
        }
        Ok(response)
    }
}

/// Writer features a RESTORE commit written by Lifeboat is correct for.
const SUPPORTED_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "generatedColumns",
    "columnMapping",
    "identityColumns",
    "deletionVectors",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "inCommitTimestamp",
    "domainMetadata",
    "typeWidening",
    "typeWidening-preview",
    "rowTracking",
    "clustering",
];

fn check_writable(protocol: &Value, _metadata: &Value) -> Result<()> {
    let version = protocol["minWriterVersion"].as_i64().unwrap_or(0);
    if version > 7 {
        return Err(Error::Restore(format!(
            "the table needs writer version {version}; Lifeboat writes up to 7. Use clone"
        )));
    }
    if let Some(features) = protocol["writerFeatures"].as_array() {
        let unsupported: Vec<&str> = features
            .iter()
            .filter_map(Value::as_str)
            .filter(|f| !SUPPORTED_WRITER_FEATURES.contains(f))
            .collect();
        if !unsupported.is_empty() {
            return Err(Error::Restore(format!(
                "the table uses writer features Lifeboat cannot commit for ({}); restore with clone (or repair) instead",
                unsupported.join(", ")
            )));
        }
    }
    Ok(())
}

/// `[(0, 4), (7, 9)]` as `0..4, 7..9`.
pub fn format_ranges(ranges: &[(u64, u64)]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let vars: HashMap<&str, &str> = [
            ("LIFEBOAT_BACKUP_BUCKET", "backup"),
            ("LIFEBOAT_SOURCE_BUCKETS", "src"),
        ]
        .into();
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn error_of(payload: Value) -> String {
        match RestoreRequest::from_value(&payload) {
            Err(e) => e.to_string(),
            Ok(request) => resolve(&request, &config())
                .expect_err("should be refused")
                .to_string(),
        }
    }

    #[test]
    fn payload_defaults_to_a_dry_run() {
        let r = RestoreRequest::from_value(&json!({"table": "s3://src/t", "mode": "rollback"}))
            .unwrap();
        assert!(r.dry_run);
        assert_eq!(r.mode, Mode::Rollback);
    }

    #[test]
    fn payload_errors_say_what_is_possible() {
        let cases = [
            (
                json!({"table": "s3://src/t", "mode": "rollback", "versoin": 3}),
                "unknown field `versoin`",
            ),
            (json!({"table": "s3://src/t"}), "missing field `mode`"),
            (json!({"mode": "clone"}), "missing field `table`"),
            (
                json!({"table": "s3://src/t", "mode": "undo"}),
                "unknown variant `undo`",
            ),
            (
                json!({"table": "s3://src/t", "mode": "rollback", "version": "three"}),
                "invalid type",
            ),
            (json!("rollback"), "must be a JSON object"),
            (
                json!({"table": "src/t", "mode": "rollback"}),
                "expected s3://bucket/path",
            ),
            (
                json!({"table": "s3://other/t", "mode": "rollback"}),
                "not in a protected source bucket",
            ),
            (
                json!({"table": "s3://src", "mode": "rollback"}),
                "names a whole bucket",
            ),
            (
                json!({"table": "s3://src/t", "mode": "rollback", "version": 1, "timestamp": "2026-01-01T00:00:00Z"}),
                "not both",
            ),
            (
                json!({"table": "s3://src/t", "mode": "rollback", "timestamp": "yesterday"}),
                "RFC 3339",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone"}),
                "needs `target`",
            ),
            (
                json!({"table": "s3://src/t", "mode": "repair", "target": "s3://src/u"}),
                "only for clone",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone", "target": "s3://src/t/copy"}),
                "overlaps",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone", "target": "s3://backup/x"}),
                "backup bucket",
            ),
        ];
        for (payload, expected) in cases {
            let message = error_of(payload.clone());
            assert!(
                message.contains(expected),
                "{payload}: {message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn ranges_read_well() {
        assert_eq!(format_ranges(&[(0, 4), (7, 7)]), "0..4, 7");
        assert_eq!(format_ranges(&[]), "none");
    }
}
