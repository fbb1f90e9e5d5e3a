//! Which version a restore brings back: the one asked for, the newest restorable, or the one a
//! timestamp names as Delta decides it, refused (never swapped for another) when it cannot be
//! restored.

use chrono::{DateTime, SecondsFormat, Utc};

use super::request::{Resolved, RestoreRequest};
use super::timestamps::{describe, point_at, Ict, PointAt, Version as TimedVersion};
use super::Restorer;
use crate::delta::commit_path;
use crate::error::{Error, Result};
use crate::history::{TableHistory, VersionStatus};
use crate::layout::meta;
use crate::ranges::ranges_text;
use crate::store::Store;

impl<S: Store> Restorer<S> {
    pub(super) async fn choose_point<'h>(
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
        let reader =
            std::sync::Arc::new(self.store.delta_reader(&self.config.backup_bucket).await?);
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
}
