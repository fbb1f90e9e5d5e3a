//! Carrying out a plan: the copies, data first and then the log in version order, and for a
//! rollback the commit, written put-if-absent so a concurrent writer is never overwritten.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::copy::{copy_object_pinned, CopyRequest};
use crate::delta::{classify_log_file, commit_path, LogFileKind, TableListing};
use crate::error::{Error, Result};
use crate::layout::meta;
use crate::store::{CopyResult, PutResult, SourcePin, Store, WriteOptions};

use super::plan::{CopyReason, PlannedCopy, RestorePlan};
use super::Restorer;

/// What an execution did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

impl<S: Store> Restorer<S> {
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
        let budget = AtomicU64::new(self.copy_limit.unwrap_or(u64::MAX));
        let run = Run {
            deadline,
            budget: &budget,
            bytes: &bytes,
            done: &done,
            total,
            progress: &progress,
        };
        // Data first, then sidecars, then checkpoints, then the commits one at a time in
        // version order: a reader never meets a commit whose files are not there yet, and a
        // failure stops the restore before anything that depends on what failed.
        let [data, sidecars, checkpoints, commits] = write_order(&plan.copies);
        let mut results = Vec::with_capacity(plan.copies.len());
        for (wave, parallel) in [
            (data, true),
            (sidecars, true),
            (checkpoints, true),
            (commits, false),
        ] {
            let wave_results: Vec<Result<bool>> = stream::iter(wave)
                .map(|copy| self.copy_planned(plan, copy, &run))
                .buffered(if parallel {
                    self.settings.concurrency
                } else {
                    1
                })
                .collect()
                .await;
            let failed = wave_results.iter().any(|r| r.is_err());
            results.extend(wave_results);
            if failed {
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
        if outcome.complete && copied > 0 {
            self.check_written(plan).await?;
        }
        if outcome.complete {
            if let Some(commit) = &plan.commit {
                let key = plan.target_location.key(&commit_path(commit.version));
                let body = Bytes::from(commit.body());
                let bucket = &plan.target_location.bucket;
                let if_absent = WriteOptions {
                    if_absent: true,
                    ..WriteOptions::default()
                };
                match self.store.put(bucket, &key, body.clone(), &if_absent).await? {
                    PutResult::Written { .. } => outcome.commit_written = Some(commit.version),
                    // The SDK retried a put whose first answer was lost: the commit there is ours.
                    PutResult::PreconditionFailed if self.store.get(bucket, &key, None).await?.as_ref() == Some(&body) => {
                        outcome.commit_written = Some(commit.version)
                    }
                    PutResult::PreconditionFailed => {
                        return Err(Error::ConcurrentCommit(format!(
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
}

impl<S: Store> Restorer<S> {
    /// Copies `copies` as [`Self::execute`] copies data files (pinned to the backup ETag,
    /// marked with it), in parallel, bounded, stopping at `deadline`: the copies of one shard
    /// of a sharded restore ([`super::shards`]). Returns how many were copied and their bytes.
    pub(super) async fn copy_data(
        &self,
        plan: &RestorePlan,
        copies: &[PlannedCopy],
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<(u64, u64)> {
        let (done, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
        let budget = AtomicU64::new(self.copy_limit.unwrap_or(u64::MAX));
        let run = Run {
            deadline,
            budget: &budget,
            bytes: &bytes,
            done: &done,
            total: copies.len() as u64,
            progress: &progress,
        };
        let results: Vec<Result<bool>> = stream::iter(copies)
            .map(|copy| self.copy_planned(plan, copy, &run))
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut copied = 0;
        for result in results {
            copied += u64::from(result?);
        }
        Ok((copied, bytes.load(Ordering::Relaxed)))
    }
}

/// One execution's budget and counters.
struct Run<'a, P> {
    deadline: Option<Instant>,
    /// Copies left before the run stops (the copy limit).
    budget: &'a AtomicU64,
    bytes: &'a AtomicU64,
    done: &'a AtomicU64,
    total: u64,
    progress: &'a P,
}

impl<P> Run<'_, P> {
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
    }
}

impl<S: Store> Restorer<S> {
    /// Copies one planned object; `Ok(false)` when the run is out of time or copies.
    async fn copy_planned(
        &self,
        plan: &RestorePlan,
        copy: &PlannedCopy,
        run: &Run<'_, impl Fn(u64, u64) + Sync>,
    ) -> Result<bool> {
        if run.out_of_time() {
            return Ok(false);
        }
        let from = plan.backup.key(&copy.path);
        let to = plan.target_location.key(&copy.path);
        // A commit the target lacks is written only if it is still absent: a writer
        // that committed that version meanwhile is never overwritten.
        let commit = copy.reason == CopyReason::Log && is_commit(&copy.path);
        let mut options = WriteOptions {
            if_absent: commit,
            ..WriteOptions::default()
        };
        options
            .metadata
            .insert(meta::RESTORED_FROM_ETAG.to_string(), copy.etag.clone());
        let request = CopyRequest {
            source_bucket: &plan.backup.bucket,
            source_key: &from,
            size: copy.size,
            // Exactly the content the plan was made from.
            pin: SourcePin {
                version_id: None,
                if_match_etag: Some(copy.etag.clone()),
            },
            bucket: &plan.target_location.bucket,
            key: &to,
            options,
        };
        match copy_object_pinned(&self.store, &self.settings, &request).await? {
                    CopyResult::Copied { .. } => {}
                    CopyResult::PreconditionFailed
                        if commit
                            && self
                                .store
                                .head(&plan.target_location.bucket, &to, None)
                                .await?
                                .is_some() =>
                    {
                        if !self
                            .same_in_both(&plan.backup, &plan.target_location, &copy.path)
                            .await?
                        {
                            return Err(Error::ConcurrentCommit(format!(
                                "another writer committed {} of {} while the restore was running; nothing was overwritten, and the restore stopped before the commits after it. Look at the table's history, then run the restore again: it plans against what is there now",
                                copy.path, plan.table
                            )));
                        }
                    }
                    other => {
                        return Err(Error::NotRestorable(format!(
                            "s3://{}/{from} could not be copied as planned ({other:?}): the backup copy is gone or changed since the plan; nothing was written for it. Run the restore again",
                            plan.backup.bucket
                        )))
                    }
                }
        run.bytes.fetch_add(copy.size, Ordering::Relaxed);
        (run.progress)(run.done.fetch_add(1, Ordering::Relaxed) + 1, run.total);
        Ok(true)
    }

    /// Checks what the copies wrote, from one listing of the target: every planned path is
    /// there with the backup copy's size (a copy is atomic and pinned to the backup copy's
    /// ETag, so the size confirms it landed where the plan said).
    async fn check_written(&self, plan: &RestorePlan) -> Result<()> {
        let written = TableListing::load(&self.store, &plan.target_location).await?;
        for copy in &plan.copies {
            match written.get(&copy.path) {
                Some(listed) if listed.size == copy.size => {}
                found => {
                    return Err(Error::Restore(format!(
                        "after the restore, {} holds {} where the backup's copy has {} bytes; run the restore again",
                        plan.target_location.key(&copy.path),
                        found.map_or("nothing".to_string(), |l| format!("{} bytes", l.size)),
                        copy.size
                    )))
                }
            }
        }
        Ok(())
    }
}

fn is_commit(path: &str) -> bool {
    path.strip_prefix("_delta_log/")
        .is_some_and(|name| classify_log_file(name).0 == LogFileKind::Commit)
}

/// The copies in the order they are written: data files (and anything outside the log),
/// sidecars, checkpoints and other log files, then the commits in version order.
pub fn write_order(copies: &[PlannedCopy]) -> [Vec<&PlannedCopy>; 4] {
    let mut waves: [Vec<&PlannedCopy>; 4] = Default::default();
    for copy in copies {
        let wave = match copy.path.strip_prefix("_delta_log/") {
            None => 0,
            Some(name) => match classify_log_file(name).0 {
                LogFileKind::Sidecar => 1,
                LogFileKind::Commit => 3,
                _ => 2,
            },
        };
        waves[wave].push(copy);
    }
    // Zero-padded versions: path order is version order.
    waves[3].sort_by(|a, b| a.path.cmp(&b.path));
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(path: &str) -> PlannedCopy {
        PlannedCopy {
            path: path.into(),
            size: 1,
            etag: "e".into(),
            reason: CopyReason::Data,
        }
    }

    #[test]
    fn data_then_sidecars_then_checkpoints_then_commits_in_order() {
        let copies = [
            copy("_delta_log/00000000000000000002.json"),
            copy("part-1.parquet"),
            copy("_delta_log/00000000000000000001.checkpoint.parquet"),
            copy("_delta_log/_sidecars/abc.parquet"),
            copy("_delta_log/00000000000000000000.json"),
            copy("_change_data/cdc-0.parquet"),
            copy("_delta_log/00000000000000000001.crc"),
            copy("_delta_log/00000000000000000001.json"),
            copy("deletion_vector_x.bin"),
        ];
        let waves = write_order(&copies);
        let paths = |i: usize| waves[i].iter().map(|c| c.path.as_str()).collect::<Vec<_>>();
        assert_eq!(
            paths(0),
            [
                "part-1.parquet",
                "_change_data/cdc-0.parquet",
                "deletion_vector_x.bin"
            ]
        );
        assert_eq!(paths(1), ["_delta_log/_sidecars/abc.parquet"]);
        assert_eq!(
            paths(2),
            [
                "_delta_log/00000000000000000001.checkpoint.parquet",
                "_delta_log/00000000000000000001.crc"
            ]
        );
        assert_eq!(
            paths(3),
            [
                "_delta_log/00000000000000000000.json",
                "_delta_log/00000000000000000001.json",
                "_delta_log/00000000000000000002.json"
            ]
        );
        assert!(is_commit("_delta_log/00000000000000000002.json"));
        assert!(!is_commit(
            "_delta_log/00000000000000000001.checkpoint.parquet"
        ));
    }
}
