//! Backfill: copy everything under a source prefix that the backup lacks. This is how tables
//! that existed before Lifeboat get their first backup, with the replicator's own copy path.

use std::collections::HashMap;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::error::Result;
use crate::events::ObjectRef;
use crate::keys::S3Location;
use crate::replicate::{Outcome, Replicator};
use crate::store::{list_all, Store};

#[derive(Debug, Default, Clone, Serialize)]
pub struct BackfillSummary {
    pub listed: u64,
    pub already_backed_up: u64,
    pub copied: u64,
    pub bytes_copied: u64,
    pub conflicts: u64,
    pub excluded: u64,
    pub source_missing: u64,
    pub failed: u64,
    pub errors: Vec<String>,
}

/// Copies what the backup lacks under `location`; `progress` is called after each object.
pub async fn backfill<S: Store>(
    replicator: &Replicator<S>,
    location: &S3Location,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<BackfillSummary> {
    let config = replicator.config();
    let store = replicator.store();
    let source = list_all(store, &location.bucket, &location.dir_prefix()).await?;
    let backup_prefix = config
        .layout()
        .key(&location.bucket, &location.dir_prefix());
    let backup: HashMap<String, u64> = list_all(store, &config.backup_bucket, &backup_prefix)
        .await?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();

    let mut summary = BackfillSummary {
        listed: source.len() as u64,
        ..Default::default()
    };
    // Each object the backup lacks, and whether its key is absent from the backup altogether
    // (then the copy need not look first) or there with another size (a possible conflict).
    let todo: Vec<(ObjectRef, bool)> = source
        .into_iter()
        .filter_map(|o| {
            let listed = backup
                .get(&config.layout().key(&location.bucket, &o.key))
                .copied();
            if listed == Some(o.size) {
                summary.already_backed_up += 1;
                return None;
            }
            let object = ObjectRef {
                bucket: location.bucket.clone(),
                key: o.key,
                size: Some(o.size),
                etag: Some(o.etag),
                version_id: None,
                event_time: o.last_modified,
                event_name: "ObjectCreated:Backfill".into(),
            };
            Some((object, listed.is_none()))
        })
        .collect();
    copy_all(replicator, todo, &mut summary, progress).await;
    Ok(summary)
}

/// Copies each object (with whether a listing of the backup showed its key absent) through
/// the replicator, `copy_concurrency` at a time, and counts the outcomes into `summary`.
pub(crate) async fn copy_all<S: Store>(
    replicator: &Replicator<S>,
    todo: Vec<(ObjectRef, bool)>,
    summary: &mut BackfillSummary,
    progress: impl Fn(u64, u64) + Sync,
) {
    let config = replicator.config();
    let total = todo.len() as u64;
    let done = &std::sync::atomic::AtomicU64::new(0);
    let progress = &progress;
    let results: Vec<(ObjectRef, Result<Outcome>)> = stream::iter(todo)
        .map(|(object, absent)| async move {
            let result = if absent {
                replicator.replicate_listed_absent(&object).await
            } else {
                replicator.replicate_object(&object).await
            };
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, total);
            (object, result)
        })
        .buffer_unordered(config.copy_concurrency)
        .collect()
        .await;
    for (object, result) in results {
        match result {
            Ok(Outcome::Copied { bytes, .. }) => {
                summary.copied += 1;
                summary.bytes_copied += bytes;
            }
            Ok(Outcome::Duplicate) => summary.already_backed_up += 1,
            Ok(Outcome::Conflict { .. }) => summary.conflicts += 1,
            Ok(Outcome::Excluded) => summary.excluded += 1,
            Ok(Outcome::SourceGone | Outcome::SourceChanged) => summary.source_missing += 1,
            Ok(Outcome::DeletionSeen | Outcome::TestEvent) => {}
            Err(err) => {
                summary.failed += 1;
                summary
                    .errors
                    .push(format!("s3://{}/{}: {err}", object.bucket, object.key));
            }
        }
    }
}
