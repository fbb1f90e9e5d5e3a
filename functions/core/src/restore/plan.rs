//! Planning a restore: the restore point, the objects to copy from the backup, and for a
//! rollback the commit to write. Reads only.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::delta::{classify_log_file, LogFileKind};
use crate::delta::{commit_path, parse_commit, table_url, SnapshotDetail, TableListing};
use crate::error::{Error, Result};
use crate::history::{Divergence, TableHistory, VersionStatus};
use crate::identity::{same_content, unchanged_since_copy};
use crate::keys::S3Location;
use crate::layout::meta;
use crate::listing::Listed;
use crate::ranges::{ranges_text, VersionRange};
use crate::store::list_all;
use crate::store::Store;

use super::commit::{restore_commit, PlannedCommit};
use super::request::{resolve, Mode, Resolved, RestoreRequest};
use super::timestamps::{describe, point_at, Ict, PointAt, Version as TimedVersion};
use super::Restorer;

/// How many planned copies a plan shows.
const COPIES_PREVIEW: usize = 20;
/// Objects looked at (HEAD of both sides) at once when listings cannot tell.
const LOOK_CONCURRENCY: usize = 16;

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
    /// The backup copy's ETag: the copy is pinned to it (`CopySourceIfMatch`), so it takes
    /// exactly the content the plan was made from.
    pub etag: String,
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
        let mut history = TableHistory::analyze(&self.store, &backup).await?;
        // A log the source rolled back and wrote on again is never stitched into a restore.
        let conflicts_prefix = self
            .config
            .layout()
            .table_conflicts_prefix(&resolved.source);
        let conflicts =
            list_all(&self.store, &self.config.backup_bucket, &conflicts_prefix).await?;
        let divergence = history
            .exclude_diverged(&self.store, &conflicts, &conflicts_prefix)
            .await?;
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
                let paths = history_paths(&history, version);
                let wanted: HashSet<String> = paths.iter().cloned().collect();
                self.plan_copies(&mut plan, &history, &target, paths)
                    .await?;
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
                let paths = history_paths(&history, version);
                self.plan_copies(&mut plan, &history, &target, paths)
                    .await?;
                self.refuse_repair_over_valid_commits(&plan, divergence.as_ref())
                    .await?;
            }
            Mode::Rollback => {
                let (source_has_log, resumed) = self
                    .interrupted_recreation(&plan, &history, &target, version)
                    .await?;
                if !source_has_log || resumed {
                    plan.recreate = true;
                    plan.notes.push(if resumed {
                        format!("the source holds part of the log as the backup has it (an interrupted recreation): the rest is copied, up to version {version}")
                    } else {
                        format!("the source has no Delta log left (a dropped table): it is recreated as it was at version {version}, history included")
                    });
                    let paths = history_paths(&history, version);
                    self.plan_copies(&mut plan, &history, &target, paths)
                        .await?;
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
        let (versions, ict) = self.commit_times(history).await?;
        let at_text = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let chosen = match point_at(at.timestamp_millis(), &versions, ict) {
            PointAt::Restorable(t) => {
                self.refuse_if_the_backup_lags(resolved, history, at)
                    .await?;
                t.version
            }
            PointAt::NotRestorable {
                at: t,
                before,
                after,
            } => {
                let reason = history
                    .status(t.version)
                    .and_then(|s| s.reason.clone())
                    .unwrap_or_else(|| "unknown reason".into());
                let neighbours: Vec<String> = [("before", before), ("after", after)]
                    .into_iter()
                    .filter_map(|(side, n)| n.map(|n| format!("{} {side}", describe(&n))))
                    .collect();
                return Err(Error::NotRestorable(format!(
                    "timestamp {at_text} names {} of {}, the newest committed at or before it, and it cannot be restored: {reason}. Lifeboat does not pick another version for you: the nearest restorable are {}; give one as `version`. Restorable versions: {range_text}",
                    describe(&t),
                    resolved.source,
                    if neighbours.is_empty() { "none".to_string() } else { neighbours.join(" and ") },
                )));
            }
            PointAt::BeforeFirst { first } => {
                return Err(Error::NotRestorable(format!(
                    "timestamp {at_text} is before the oldest restore point of {}: the backup's first commit is {}. Restorable versions: {range_text}",
                    resolved.source,
                    first.as_ref().map(describe).unwrap_or_else(|| "of unknown time".into()),
                )));
            }
        };
        history
            .status(chosen)
            .ok_or_else(|| Error::NotRestorable(format!("version {chosen} is not in the backup")))
    }

    /// A timestamp names the newest version committed at or before it *in the source*: when
    /// the source holds a commit after the backup's newest that was written at or before the
    /// instant (replication lags, or the events were lost), the backup cannot tell which
    /// version the instant names, and the restore is refused rather than silently taking an
    /// older one.
    async fn refuse_if_the_backup_lags(
        &self,
        resolved: &Resolved,
        history: &TableHistory,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let Some(backup_latest) = history.latest_version() else {
            return Ok(());
        };
        let log = crate::store::list_all(
            &self.store,
            &resolved.source.bucket,
            &resolved.source.key("_delta_log/"),
        )
        .await?;
        let newer = log.iter().find_map(|o| {
            let name = o.key.rsplit_once("/_delta_log/")?.1;
            match crate::delta::classify_log_file(name) {
                (crate::delta::LogFileKind::Commit, Some(v)) if v > backup_latest => {
                    let written = o.last_modified?;
                    (written.timestamp() <= at.timestamp()).then_some((v, written))
                }
                _ => None,
            }
        });
        if let Some((v, written)) = newer {
            return Err(Error::NotRestorable(format!(
                "the source's version {v}, committed at {}, is at or before {} but not in the backup yet (replication lags, or its events were lost: the next verify re-sends what is missing): the backup cannot tell which version that instant names. Wait for the backup to catch up (lifeboat verify shows lag_versions), or restore by version",
                written.to_rfc3339_opts(SecondsFormat::Secs, true),
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        Ok(())
    }

    /// Every version of the backup with what Delta's commit time for it is made of: the source
    /// modification time of its commit file (kept in the backup copy's metadata), its
    /// in-commit timestamp, and whether in-commit timestamps are on, read from the newest
    /// metadata as Delta reads it. File times are looked up (a HEAD each) only for the
    /// commits without in-commit timestamps.
    async fn commit_times(&self, history: &TableHistory) -> Result<(Vec<TimedVersion>, Ict)> {
        const TIME_LOOKUP_CONCURRENCY: usize = 32;
        let reader = std::sync::Arc::new(self.store.delta_reader(&self.config.backup_bucket)?);
        let backup = history.table.clone();
        let fallback = history.newest_restorable().map(|s| s.version);
        let configuration = tokio::task::spawn_blocking(move || {
            reader
                .metadata(&backup, None)
                .or_else(|e| match fallback {
                    Some(v) => reader.metadata(&backup, Some(v)),
                    None => Err(e),
                })
                .map(|(_, m)| m["configuration"].clone())
        })
        .await
        .map_err(|e| Error::Restore(format!("metadata task failed: {e}")))??;
        let ict = Ict::of(&configuration);
        let file_time = |status: &VersionStatus| {
            let version = status.version;
            let file = if history.log.commits.contains(&version) {
                Some(commit_path(version))
            } else {
                history
                    .log
                    .checkpoints
                    .get(&version)
                    .and_then(|c| c.first())
                    .map(|(_, path)| path.to_string())
            };
            let wanted = !matches!(ict, Ict::FromCreation)
                && !matches!(ict, Ict::From { version: from, .. } if version >= from);
            async move {
                let Some(file) = file.filter(|_| wanted) else {
                    return Ok(None);
                };
                let head = self
                    .store
                    .head(&history.table.bucket, &history.table.key(&file), None)
                    .await?;
                // S3 gives modification times in whole seconds (what Delta reads); the
                // replicator records the event's time, in milliseconds.
                Ok::<_, Error>(head.and_then(|h| {
                    h.metadata
                        .get(meta::SOURCE_LAST_MODIFIED)
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.timestamp() * 1000)
                        .or_else(|| h.last_modified.map(|t| t.timestamp() * 1000))
                }))
            }
        };
        use futures::StreamExt as _;
        let file_times: Vec<Result<Option<i64>>> = futures::stream::iter(&history.versions)
            .map(file_time)
            .buffered(TIME_LOOKUP_CONCURRENCY)
            .collect()
            .await;
        let mut versions = Vec::with_capacity(history.versions.len());
        for (status, file_ms) in history.versions.iter().zip(file_times) {
            versions.push(TimedVersion {
                version: status.version,
                commit: history.log.commits.contains(&status.version),
                file_ms: file_ms?,
                ict_ms: status.timestamp_ms,
                restorable: status.restorable,
            });
        }
        Ok((versions, ict))
    }

    async fn plan_rollback(
        &self,
        plan: &mut RestorePlan,
        history: &TableHistory,
        target: &TableListing,
        resolved: &Resolved,
    ) -> Result<()> {
        let version = plan.restore_point.version;
        // Readers trust the source's `_last_checkpoint`: one that points nowhere makes the
        // table unreadable whatever commit the rollback writes, and a restore never deletes.
        if target.get("_delta_log/_last_checkpoint").is_some() {
            let key = resolved.source.key("_delta_log/_last_checkpoint");
            if let Some(hint) = self.store.get(&resolved.source.bucket, &key, None).await? {
                if let Err(why) = crate::delta::check_checkpoint_hint(&hint, &target.log()) {
                    return Err(Error::Restore(format!(
                        "{why}: readers of {} fail on it whatever a rollback writes, and Lifeboat never deletes. Delete s3://{}/{key} (readers then find the checkpoints by listing the log), and run the rollback again",
                        resolved.source, resolved.source.bucket
                    )));
                }
            }
        }
        // Files the restore point needs that the source lacks, or holds with other content.
        let needed: Vec<String> = history
            .files_needed(version, version)
            .into_iter()
            .filter(|n| !n.path.contains("://"))
            .map(|n| n.path.to_string())
            .collect();
        self.plan_copies(plan, history, target, needed).await?;

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

    /// Classifies each path against the target (listings first; a HEAD of both sides, and
    /// the bytes as a last resort, only where listings cannot tell) and plans a copy of every
    /// path the target does not hold as the backup has it.
    async fn plan_copies(
        &self,
        plan: &mut RestorePlan,
        history: &TableHistory,
        target: &TableListing,
        paths: Vec<String>,
    ) -> Result<()> {
        let mut look = Vec::new();
        for path in paths {
            let Some(backup) = history.listing.get(&path) else {
                plan.unavailable_in_backup += 1;
                continue;
            };
            let reason = match presence(target.get(&path), backup) {
                Presence::InPlace => {
                    plan.already_present += 1;
                    continue;
                }
                Presence::Look => {
                    look.push(path);
                    continue;
                }
                Presence::Differs => CopyReason::Replace,
                Presence::Absent if path.starts_with("_delta_log/") => CopyReason::Log,
                Presence::Absent => CopyReason::Data,
            };
            plan.copies.push(PlannedCopy {
                size: backup.size,
                etag: backup.etag.to_string(),
                reason,
                path,
            });
        }
        let backup_location = &plan.backup;
        let target_location = &plan.target_location;
        let looked: Vec<Result<(String, bool)>> = stream::iter(look)
            .map(|path| async move {
                let same = self
                    .same_in_both(backup_location, target_location, &path)
                    .await?;
                Ok((path, same))
            })
            .buffered(LOOK_CONCURRENCY)
            .collect()
            .await;
        for result in looked {
            let (path, same) = result?;
            if same {
                plan.already_present += 1;
            } else if let Some(backup) = history.listing.get(&path) {
                plan.copies.push(PlannedCopy {
                    size: backup.size,
                    etag: backup.etag.to_string(),
                    reason: CopyReason::Replace,
                    path,
                });
            }
        }
        if plan.unavailable_in_backup > 0 {
            plan.notes.push(format!(
                "{} file(s) that only unrestorable older versions referenced are not in the backup and are not copied",
                plan.unavailable_in_backup
            ));
        }
        Ok(())
    }

    /// Whether the target holds the backup's content at `path`, decided by
    /// [`crate::identity`] from a HEAD of each side, and by the bytes when those cannot tell.
    pub(super) async fn same_in_both(
        &self,
        backup: &S3Location,
        target: &S3Location,
        path: &str,
    ) -> Result<bool> {
        let (from, to) = (backup.key(path), target.key(path));
        let (copy, present) = futures::try_join!(
            self.store.head(&backup.bucket, &from, None),
            self.store.head(&target.bucket, &to, None),
        )?;
        let (Some(copy), Some(present)) = (copy, present) else {
            return Ok(false);
        };
        if let Some(answer) = same_content(&copy, &present).decided() {
            return Ok(answer);
        }
        let (ours, theirs) = futures::try_join!(
            self.store.get(&backup.bucket, &from, None),
            self.store.get(&target.bucket, &to, None),
        )?;
        Ok(ours.is_some() && ours == theirs)
    }

    /// A repair puts back what was lost or damaged; it never overwrites a valid commit of the
    /// source with another (a log rolled back and written on again: the two are different
    /// histories, and the source's may hold legitimate writes).
    async fn refuse_repair_over_valid_commits(
        &self,
        plan: &RestorePlan,
        divergence: Option<&Divergence>,
    ) -> Result<()> {
        let root = table_url(&plan.target_location)?;
        for copy in plan
            .copies
            .iter()
            .filter(|c| c.reason == CopyReason::Replace)
        {
            let Some(name) = copy.path.strip_prefix("_delta_log/") else {
                continue;
            };
            let (LogFileKind::Commit, Some(version)) = classify_log_file(name) else {
                continue;
            };
            let key = plan.target_location.key(&copy.path);
            let Some(body) = self
                .store
                .get(&plan.target_location.bucket, &key, None)
                .await?
            else {
                continue;
            };
            if parse_commit(&root, version, &body).is_ok() {
                let from = divergence.map_or(version, |d| d.version.min(version));
                return Err(Error::NotRestorable(format!(
                    "the source's log diverged from the backup's at version {from}: its commit {version} is another valid commit, not damage, and a repair never overwrites a valid commit (it would undo the writes of the source's branch). Choose: keep the source's branch (repair up to version {} only), roll the source back to before the divergence (mode rollback, version {}), or clone the backup's branch elsewhere (mode clone with a target)",
                    from.saturating_sub(1),
                    from.saturating_sub(1)
                )));
            }
        }
        Ok(())
    }

    /// Whether the target holds a log at all, and whether that log is an exact, shorter copy
    /// of the backup's up to `version` (a recreation that was interrupted, which goes on).
    async fn interrupted_recreation(
        &self,
        plan: &RestorePlan,
        history: &TableHistory,
        target: &TableListing,
        version: u64,
    ) -> Result<(bool, bool)> {
        let target_log: Vec<(&str, u64)> = target
            .paths()
            .filter_map(|k| {
                let name = k.strip_prefix("_delta_log/")?;
                Some((k, crate::delta::classify_log_file(name).1?))
            })
            .collect();
        if target_log.is_empty() {
            return Ok((false, false));
        }
        let shorter = history
            .log
            .commits
            .range(..=version)
            .any(|v| !target_log.iter().any(|(_, s)| s == v));
        if !shorter || target_log.iter().any(|(_, v)| *v > version) {
            return Ok((true, false));
        }
        for (path, _) in &target_log {
            let Some(backup) = history.listing.get(path) else {
                return Ok((true, false));
            };
            let same = match presence(target.get(path), backup) {
                Presence::InPlace => true,
                Presence::Look => {
                    self.same_in_both(&plan.backup, &plan.target_location, path)
                        .await?
                }
                Presence::Absent | Presence::Differs => false,
            };
            if !same {
                return Ok((true, false));
            }
        }
        Ok((true, true))
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

/// Log files up to `version` and every data, deletion-vector and change-data file those
/// versions need, each once (clone, repair, and the recreation of a dropped table): every path
/// the restore point's history consists of. `_last_checkpoint` is not among them: it is
/// rewritten in place, and a restored table without it is read from its log listing, which
/// always agrees with the restored log.
fn history_paths(history: &TableHistory, version: u64) -> Vec<String> {
    let first = history.versions.first().map(|s| s.version).unwrap_or(0);
    let mut paths: Vec<String> = history.log.paths_up_to(version);
    paths.extend(
        history
            .files_needed(first, version)
            .into_iter()
            .map(|n| n.path.to_string()),
    );
    // A checkpoint a reader could not use (a sidecar or a part missing) is left out: readers of
    // the restored table replay the commits instead of failing on it.
    let unusable = history.unusable_checkpoints();
    let mut seen = HashSet::new();
    paths.retain(|p| {
        let checkpoint_of = p
            .strip_prefix("_delta_log/")
            .map(classify_log_file)
            .filter(|(kind, _)| {
                matches!(
                    kind,
                    LogFileKind::Checkpoint
                        | LogFileKind::CheckpointPart { .. }
                        | LogFileKind::CheckpointV2
                )
            })
            .and_then(|(_, v)| v);
        !p.contains("://")
            && !checkpoint_of.is_some_and(|v| unusable.contains(&v))
            && seen.insert(p.clone())
    });
    paths
}

/// Whether the target already holds the backup's copy of a path, as far as the two listings
/// tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The same content (the same ETag, or untouched since the backup copy was made).
    InPlace,
    Absent,
    /// Another size: other content.
    Differs,
    /// Listings cannot tell (a copy a restore wrote, a rewrite): look at both objects.
    Look,
}

/// What the listings say about one path in the target, against the backup's copy.
pub fn presence(target: Option<&Listed>, backup: &Listed) -> Presence {
    match target {
        None => Presence::Absent,
        Some(t) if t.size != backup.size => Presence::Differs,
        Some(t) if t.etag == backup.etag => Presence::InPlace,
        Some(t)
            if unchanged_since_copy(
                t.size,
                t.last_modified(),
                backup.size,
                backup.last_modified(),
            ) =>
        {
            Presence::InPlace
        }
        Some(_) => Presence::Look,
    }
}
