//! What a restore copies: every path the restore point needs, against what the target holds
//! (listings first; a HEAD of both sides, and the bytes as a last resort, only where listings
//! cannot tell), and the checks that keep a restore from overwriting what it must not.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};

use super::plan::{CopyReason, PlannedCopy, RestorePlan};
use super::Restorer;
use crate::delta::{classify_log_file, LogFileKind, TableListing};
use crate::error::{Error, Result};
use crate::history::{valid_commit_at, Divergence, TableHistory};
use crate::identity::{same_content, unchanged_since_copy};
use crate::keys::S3Location;
use crate::listing::Listed;
use crate::store::Store;

/// Objects looked at (HEAD of both sides) at once when listings cannot tell.
const LOOK_CONCURRENCY: usize = 16;

impl<S: Store> Restorer<S> {
    /// Classifies each path against the target (listings first; a HEAD of both sides, and
    /// the bytes as a last resort, only where listings cannot tell) and plans a copy of every
    /// path the target does not hold as the backup has it.
    pub(super) async fn plan_copies(
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
    pub(super) async fn refuse_repair_over_valid_commits(
        &self,
        plan: &RestorePlan,
        divergence: Option<&Divergence>,
    ) -> Result<()> {
        for copy in plan
            .copies
            .iter()
            .filter(|c| c.reason == CopyReason::Replace)
        {
            let found = valid_commit_at(&self.store, &plan.target_location, &copy.path).await?;
            if let Some((version, true)) = found {
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
    pub(super) async fn interrupted_recreation(
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
}

/// Log files up to `version` and every data, deletion-vector and change-data file those
/// versions need, each once (clone, repair, and the recreation of a dropped table): every path
/// the restore point's history consists of. `_last_checkpoint` is not among them: it is
/// rewritten in place, and a restored table without it is read from its log listing, which
/// always agrees with the restored log.
pub(super) fn history_paths(history: &TableHistory, version: u64) -> Vec<String> {
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
