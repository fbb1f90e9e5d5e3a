//! Carrying out a plan: the copies, data first and then the log in version order, and for a
//! rollback the commit, written put-if-absent so a concurrent writer is never overwritten.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::copy::{copy_object_pinned, CopyRequest};
use crate::delta::commit_path;
use crate::error::{Error, Result};
use crate::store::{CopyResult, PutResult, SourcePin, Store, WriteOptions};

use super::plan::{PlannedCopy, RestorePlan};
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
                        other => Err(Error::NotRestorable(format!(
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
