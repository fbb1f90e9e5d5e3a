//! Planning a restore: the restore point, the objects to copy from the backup, and for a
//! rollback the commit to write. Reads only.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::delta::{commit_path, parse_commit, table_url, SnapshotDetail, TableListing};
use crate::error::{Error, Result};
use crate::history::{TableHistory, VersionStatus};
use crate::keys::S3Location;
use crate::ranges::{ranges_text, VersionRange};
use crate::store::Store;

use super::commit::{restore_commit, PlannedCommit};
use super::request::{resolve, Mode, Resolved, RestoreRequest};
use super::Restorer;

/// How many planned copies a plan shows.
const COPIES_PREVIEW: usize = 20;

/// Why an object is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyReason {
    /// A log file the target lacks.
    Log,
    /// A data, deletion-vector or change-data file the target lacks.
    Data,
    /// The target holds different content under this key.
    Replace,
}

/// One object the restore copies from the backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCopy {
    /// Path relative to the table root.
    pub path: String,
    pub size: u64,
    pub reason: CopyReason,
}

/// The version a restore brings back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestorePoint {
    pub version: u64,
    pub commit_time: Option<String>,
}

/// What a restore will do (a dry run returns it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestorePlan {
    pub table: String,
    pub mode: Mode,
    pub target: String,
    pub restore_point: RestorePoint,
    pub restorable_versions: Vec<VersionRange>,
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
    /// What the restore does to the Glue Data Catalog ([`super::catalog`]): the entries it
    /// registers again, leaves, or refuses to overwrite, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<crate::catalog::CatalogChange>,
    pub notes: Vec<String>,
    /// The first copies, as a person checks them in a dry run.
    pub copies_preview: Vec<PlannedCopy>,
    #[serde(skip)]
    pub copies: Vec<PlannedCopy>,
    #[serde(skip)]
    pub(crate) backup: S3Location,
    #[serde(skip)]
    pub(crate) target_location: S3Location,
}

impl<S: Store> Restorer<S> {
    /// Works out what a restore would do. Reads only.
    pub async fn plan(&self, request: &RestoreRequest) -> Result<RestorePlan> {
        let resolved = resolve(request, &self.config)?;
        let backup = self.config.layout().location(&resolved.source);
        let history = TableHistory::analyze(&self.store, &backup).await?;
        if history.versions.is_empty() {
            return Err(Error::NotRestorable(format!(
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
            backup: backup.clone(),
            target_location: resolved.target.clone(),
            ..RestorePlan::default()
        };

        match request.mode {
            Mode::Clone => {
                let wanted = plan_history_copies(&mut plan, &history, &target, version);
                // A rerun of an interrupted clone finds its own objects there, and goes on.
                let foreign: Vec<&str> = target
                    .paths()
                    .filter(|k| !wanted.contains(*k) || plan.copies.iter().any(|c| c.path == *k))
                    .collect();
                if let Some(key) = foreign.first() {
                    return Err(Error::TargetNotEmpty(format!(
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
                plan_history_copies(&mut plan, &history, &target, version);
            }
            Mode::Rollback => {
                let (source_has_log, resumed) = interrupted_recreation(&history, &target, version);
                if !source_has_log || resumed {
                    plan.recreate = true;
                    plan.notes.push(if resumed {
                        format!("the source holds part of the log as the backup has it (an interrupted recreation): the rest is copied, up to version {version}")
                    } else {
                        format!("the source has no Delta log left (a dropped table): it is recreated as it was at version {version}, history included")
                    });
                    plan_history_copies(&mut plan, &history, &target, version);
                } else {
                    self.plan_rollback(&mut plan, &history, &target, &resolved)
                        .await?;
                }
            }
        }
        plan.objects_to_copy = plan.copies.len() as u64;
        plan.bytes_to_copy = plan.copies.iter().map(|c| c.size).sum();
        plan.copies_preview = plan.copies.iter().take(COPIES_PREVIEW).cloned().collect();
        Ok(plan)
    }

    async fn choose_point<'h>(
        &self,
        request: &RestoreRequest,
        resolved: &Resolved,
        history: &'h TableHistory,
    ) -> Result<&'h VersionStatus> {
        let range_text = ranges_text(&history.ranges(true));
        let first = history.versions.first().map(|s| s.version).unwrap_or(0);
        let last = history.latest_version().unwrap_or(0);
        if let Some(v) = request.version {
            let status = history.status(v).ok_or_else(|| {
                Error::NotRestorable(format!(
                    "version {v} of {} is not in the backup, which holds versions {first}..{last}; restorable: {range_text}",
                    resolved.source
                ))
            })?;
            if !status.restorable {
                return Err(Error::NotRestorable(format!(
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
            Error::NotRestorable(format!(
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
        Err(Error::NotRestorable(format!(
            "timestamp {} is before the oldest restore point of {}: version {oldest} committed at {}. Restorable versions: {range_text}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true),
            resolved.source,
            DateTime::from_timestamp_millis(oldest_ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)).unwrap_or_default()
        )))
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
                    reason: if present.is_some() {
                        CopyReason::Replace
                    } else {
                        CopyReason::Data
                    },
                }),
            }
        }

        let backup_reader = self.store.delta_reader(&self.config.backup_bucket)?;
        let source_reader = self.store.delta_reader(&resolved.source.bucket)?;
        let backup_location = plan.backup.clone();
        let source = resolved.source.clone();
        let (restore_point, current) = tokio::task::spawn_blocking(move || -> Result<(SnapshotDetail, SnapshotDetail)> {
            let from_backup = backup_reader.snapshot(&backup_location, Some(version))?;
            let current = source_reader.snapshot(&source, None).map_err(|e| {
                Error::Restore(format!(
                    "the source table {source} cannot be read ({e}); its log is damaged: use mode repair to put back the backed-up log files, or clone it elsewhere"
                ))
            })?;
            Ok((from_backup, current))
        })
        .await
        .map_err(|e| Error::Restore(format!("snapshot task failed: {e}")))??;

        let previous = if current.in_commit_timestamps {
            self.previous_commit_time(&resolved.source, current.version)
                .await?
        } else {
            None
        };
        let commit = restore_commit(
            &resolved.source,
            &restore_point,
            &current,
            Utc::now().timestamp_millis(),
            previous,
        )?;
        if commit.files_to_add == 0 && commit.files_to_remove == 0 && !commit.metadata_restored {
            plan.notes.push(format!(
                "the source's latest version {} already equals version {version}; the commit records the restore and changes no data",
                current.version
            ));
        }
        plan.commit = Some(commit);
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
}

/// Log files up to `version` and every data and deletion-vector file those versions need,
/// as the backup has them (clone, repair, and the recreation of a dropped table). Returns
/// every path the restore point's history consists of.
fn plan_history_copies(
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
                        CopyReason::Replace
                    } else if path.starts_with("_delta_log/") {
                        CopyReason::Log
                    } else {
                        CopyReason::Data
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

/// Whether the target holds a log at all, and whether that log is an exact, shorter copy of
/// the backup's up to `version` (a recreation that was interrupted, which goes on).
fn interrupted_recreation(
    history: &TableHistory,
    target: &TableListing,
    version: u64,
) -> (bool, bool) {
    let source_log: Vec<(&str, u64)> = target
        .paths()
        .filter_map(|k| {
            let name = k.strip_prefix("_delta_log/")?;
            Some((k, crate::delta::classify_log_file(name).1?))
        })
        .collect();
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
    (!source_log.is_empty(), resumed)
}
