//! Planning a restore: the restore point, the objects to copy from the backup, and for a
//! rollback the commit to write. Reads only.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::commit::{restore_commit, PlannedCommit};
use super::copies::history_paths;
use super::request::{resolve, Mode, Resolved, RestoreRequest};
use super::Restorer;
use crate::delta::{commit_path, parse_commit, table_url, SnapshotDetail, TableListing};
use crate::error::{Error, Result};
use crate::history::TableHistory;
use crate::keys::S3Location;
use crate::ranges::VersionRange;
use crate::store::{list_all, Store};

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

        let backup_reader = self.store.delta_reader(&self.config.backup_bucket).await?;
        let source_reader = self.store.delta_reader(&resolved.source.bucket).await?;
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
