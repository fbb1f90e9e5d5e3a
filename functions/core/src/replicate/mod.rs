//! The replicator: one object event in, one server-side copy into the backup bucket out.
//!
//! [`placement`] decides where the content goes (pure); this module only looks at the backup,
//! copies, and reports.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::copy::{copy_object_pinned, CopyRequest, CopySettings};
use crate::error::{Error, Result};
use crate::events::{parse_invocation, Invocation, ObjectEvent, ObjectRef};
use crate::identity::{same_content, Same};
use crate::keys::{
    ancestor_folders, encode_metadata_value, is_immutable_log_key, is_last_checkpoint,
};
use crate::layout::meta;
use crate::metrics::Emf;
use crate::store::{CopyResult, ObjectInfo, SourcePin, Store, WriteOptions};

pub mod placement;

use placement::{conflict_tag, event_object, look_again, place, place_aside, Placement};

/// What the replicator answers: to SQS, the partial batch failure response (only the failed
/// messages are retried); to a direct or EventBridge invocation, what happened to each event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplicateResponse {
    Batch(SqsBatchResponse),
    Events { outcomes: Vec<Outcome> },
}

impl ReplicateResponse {
    /// The message ids SQS will deliver again (none outside a batch).
    pub fn failed_message_ids(&self) -> Vec<&str> {
        match self {
            ReplicateResponse::Batch(batch) => batch
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect(),
            ReplicateResponse::Events { .. } => Vec::new(),
        }
    }
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Copied {
        bytes: u64,
        multipart: bool,
        /// Now minus the event time (how far the backup trails the source).
        lag_ms: Option<u64>,
    },
    /// The backup already holds this content.
    Duplicate,
    /// A different content under an immutable log key; kept aside, the original untouched.
    Conflict {
        kept_at: String,
    },
    /// The source was deleted before it could be copied.
    SourceGone,
    /// The source was overwritten before it could be copied.
    SourceChanged,
    /// Not selected by the include prefixes / exclude patterns.
    Excluded,
    /// An `ObjectRemoved:*` event: recorded, never propagated.
    DeletionSeen,
    TestEvent,
}

/// The replicator over any [`Store`].
pub struct Replicator<S> {
    store: S,
    config: Config,
    settings: CopySettings,
    locks: std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl Replicator<crate::s3::S3Store> {
    /// The replicator as the function and the CLI run it: configuration and the S3 client
    /// from the environment.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let clients = crate::s3::Clients::from_env().await;
        let store = crate::s3::S3Store::new(clients.s3).with_bucket_owners(config.bucket_owners());
        Ok(Replicator::new(store, config))
    }
}

impl<S: Store> Replicator<S> {
    pub fn new(store: S, config: Config) -> Self {
        let settings = CopySettings::from(&config);
        Replicator {
            store,
            config,
            settings,
            locks: Default::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles a Lambda invocation and returns its response: for SQS, the partial batch
    /// failure response; otherwise a summary, or an error so that Lambda retries the event.
    pub async fn handle(&self, input: &Value) -> Result<ReplicateResponse> {
        let mut emf = Emf::new(&[("Function", "replicate")]);
        let response = match parse_invocation(input) {
            Err(err) => {
                emf.add("Errors", 1.0, "Count");
                emf.emit();
                return Err(err);
            }
            Ok(Invocation::Sqs(items)) => {
                let results: Vec<(String, Result<Vec<Outcome>>)> = stream::iter(items)
                    .map(|item| async move {
                        let outcome = match item.events {
                            Ok(events) => self.handle_events(&events).await,
                            Err(err) => Err(err),
                        };
                        (item.message_id, outcome)
                    })
                    .buffer_unordered(self.settings.concurrency)
                    .collect()
                    .await;
                let mut batch = SqsBatchResponse::default();
                for (message_id, result) in results {
                    match result {
                        Ok(outcomes) => outcomes.iter().for_each(|o| tally(&mut emf, o)),
                        Err(err) => {
                            emf.add("Errors", 1.0, "Count");
                            tracing::error!(message_id = %message_id, error = %err, retryable = err.is_retryable(),
                                "record failed; SQS will retry it and then move it to the dead-letter queue");
                            batch.add_failure(message_id);
                        }
                    }
                }
                ReplicateResponse::Batch(batch)
            }
            Ok(Invocation::Direct(events)) => match self.handle_events(&events).await {
                Ok(outcomes) => {
                    outcomes.iter().for_each(|o| tally(&mut emf, o));
                    ReplicateResponse::Events { outcomes }
                }
                Err(err) => {
                    emf.add("Errors", 1.0, "Count");
                    emf.emit();
                    return Err(err);
                }
            },
        };
        emf.emit();
        Ok(response)
    }

    /// Handles the events of one message in order; the first failure fails the message (the
    /// events before it are idempotent, so a retry repeats them harmlessly).
    pub async fn handle_events(&self, events: &[ObjectEvent]) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            outcomes.push(self.handle_event(event).await?);
        }
        Ok(outcomes)
    }

    pub async fn handle_event(&self, event: &ObjectEvent) -> Result<Outcome> {
        match event {
            ObjectEvent::Test => {
                tracing::info!("s3:TestEvent ignored");
                Ok(Outcome::TestEvent)
            }
            ObjectEvent::Removed(object) => {
                self.check_source(object)?;
                tracing::warn!(event = "object_removed", bucket = %object.bucket, key = %object.key,
                    event_name = %object.event_name, version = object.version_id.as_deref().unwrap_or(""),
                    "object removed from the source; the backup keeps its copy");
                Ok(Outcome::DeletionSeen)
            }
            ObjectEvent::Created(object) => self.replicate_object(object).await,
        }
    }

    fn check_source(&self, object: &ObjectRef) -> Result<()> {
        if self.config.is_source_bucket(&object.bucket) {
            Ok(())
        } else {
            Err(Error::bad_input(format!(
                "bucket {:?} (key {:?}) is not in LIFEBOAT_SOURCE_BUCKETS ({}); add it there or remove its notification",
                object.bucket,
                object.key,
                self.config.source_buckets.join(",")
            )))
        }
    }

    /// Copies one created object into the backup, unless the backup already has it.
    pub async fn replicate_object(&self, object: &ObjectRef) -> Result<Outcome> {
        self.replicate(object, false).await
    }

    /// Like [`Self::replicate_object`], for an object whose backup key a listing of the backup
    /// has just shown absent (a backfill): the first attempt copies without looking first
    /// (still with `If-None-Match: *`), one request per object instead of a HEAD and a copy.
    /// A key that appeared since the listing is, on a server that honours the condition, looked
    /// at as usual; on one that ignores it, the copy is the same pinned content again, written
    /// as a new version (the backup is versioned: nothing is lost).
    pub async fn replicate_listed_absent(&self, object: &ObjectRef) -> Result<Outcome> {
        self.replicate(object, true).await
    }

    async fn replicate(&self, object: &ObjectRef, listed_absent: bool) -> Result<Outcome> {
        self.check_source(object)?;
        if !self.config.selects(&object.key) {
            tracing::debug!(bucket = %object.bucket, key = %object.key, "excluded by configuration");
            return Ok(Outcome::Excluded);
        }
        let backup_bucket = &self.config.backup_bucket;
        let layout = self.config.layout();
        let backup_key = layout.key(&object.bucket, &object.key);

        // Without an ETag or a size in the event, ask the source what we are about to copy.
        let mut object = object.clone();
        if object.etag.is_none() || object.size.is_none() {
            match self
                .store
                .head(&object.bucket, &object.key, object.version_id.as_deref())
                .await?
            {
                None => return Ok(self.source_missing(&object, CopyResult::SourceGone)),
                Some(info) => {
                    object.etag.get_or_insert(info.etag);
                    object.size.get_or_insert(info.size);
                    object.version_id = object.version_id.or(info.version_id);
                    object.event_time = object.event_time.or(info.last_modified);
                }
            }
        }

        // One copy at a time per key in this process: duplicates within a batch wait for
        // each other instead of racing (across processes, `If-None-Match` does the same).
        let _guard = self.lock_key(&backup_key).await;
        let size = object.size.unwrap_or(0);
        let described = event_object(&object);
        // Log files are write-once, `_last_checkpoint` is not; any other key is write-once when
        // it belongs to a table (asked only if its content changed).
        let mut write_once = if is_last_checkpoint(&object.key) {
            Some(false)
        } else {
            is_immutable_log_key(&object.key).then_some(true)
        };
        // Twice at most: a copy that finds the key taken meanwhile (a concurrent duplicate, or
        // a retry whose first answer was lost) looks again at what is there.
        for attempt in 0..2 {
            // With conditional copies (or a listing that just showed the key absent) the first
            // attempt does not look: the copy itself refuses to overwrite, and only then do we
            // look at what is there.
            let existing = if attempt == 0 && (self.config.conditional_copy || listed_absent) {
                None
            } else {
                self.store.head(backup_bucket, &backup_key, None).await?
            };
            let mut same = match &existing {
                Some(held) => same_content(held, &described),
                None => Same::Unknown,
            };
            let (destination, if_absent, conflict_with) = loop {
                match place(existing.as_ref(), same, write_once) {
                    Placement::AlreadyThere => {
                        tracing::debug!(bucket = %object.bucket, key = %object.key, "already in the backup");
                        return Ok(Outcome::Duplicate);
                    }
                    Placement::Copy { if_absent } => break (backup_key.clone(), if_absent, None),
                    Placement::LookCloser => {
                        let held = existing.as_ref().expect("placed against an existing copy");
                        same = self.look_closer(held, &object).await?;
                    }
                    Placement::FindTable => {
                        write_once = Some(self.in_table(&object.bucket, &object.key).await?);
                    }
                    Placement::KeepAside => {
                        let original = existing.clone().map(|e| e.metadata).unwrap_or_default();
                        let tag = conflict_tag(&object, Utc::now().timestamp_millis());
                        let aside = layout.conflict_key(&object.bucket, &object.key, &tag);
                        let kept = self.store.head(backup_bucket, &aside, None).await?;
                        let kept_same = match &kept {
                            Some(k) => same_content(k, &described),
                            None => Same::Unknown,
                        };
                        match place_aside(kept.as_ref(), kept_same) {
                            Placement::Copy { if_absent } => {
                                break (aside, if_absent, Some(original))
                            }
                            _ => return Ok(self.report_conflict(&object, &original, aside)),
                        }
                    }
                }
            };
            let mut options = self.write_options(&object);
            options.if_absent = if_absent;
            let request = CopyRequest {
                source_bucket: &object.bucket,
                source_key: &object.key,
                size,
                pin: SourcePin {
                    version_id: object.version_id.clone(),
                    // A version id pins exactly; otherwise the ETag must still match.
                    if_match_etag: if object.version_id.is_some() {
                        None
                    } else {
                        object.etag.clone()
                    },
                },
                bucket: backup_bucket,
                key: &destination,
                options,
            };
            return match copy_object_pinned(&self.store, &self.settings, &request).await? {
                CopyResult::Copied { .. } => match conflict_with {
                    Some(original) => Ok(self.report_conflict(&object, &original, destination)),
                    None => {
                        tracing::info!(bucket = %object.bucket, key = %object.key, bytes = size,
                            backup_key = %destination, "copied");
                        Ok(Outcome::Copied {
                            bytes: size,
                            multipart: size > self.settings.multipart_threshold_bytes,
                            lag_ms: object
                                .event_time
                                .map(|t| (Utc::now() - t).num_milliseconds().max(0) as u64),
                        })
                    }
                },
                CopyResult::PreconditionFailed
                    if look_again(
                        if_absent,
                        self.store
                            .head(backup_bucket, &destination, None)
                            .await?
                            .as_ref(),
                    ) =>
                {
                    continue
                }
                other => Ok(self.source_missing(&object, other)),
            };
        }
        Err(Error::S3 {
            operation: "CopyObject",
            bucket: backup_bucket.clone(),
            key: backup_key,
            message: "the backup key kept changing while it was being copied".into(),
            retryable: true,
            source: None,
        })
    }

    /// Whether the backup copy `held` is the source content `object` describes, when metadata
    /// alone could not tell: the source's checksum first (one HEAD), then the bytes.
    async fn look_closer(&self, held: &ObjectInfo, object: &ObjectRef) -> Result<Same> {
        let version = object.version_id.as_deref();
        let Some(source) = self
            .store
            .head(&object.bucket, &object.key, version)
            .await?
        else {
            // The source is gone: the copy that follows finds it gone and says so.
            return Ok(Same::No);
        };
        if let Some(answer) = same_content(held, &source).decided() {
            return Ok(if answer { Same::Yes } else { Same::No });
        }
        let backup = self
            .store
            .get(
                &self.config.backup_bucket,
                &held.key,
                held.version_id.as_deref(),
            )
            .await?;
        let current = self.store.get(&object.bucket, &object.key, version).await?;
        Ok(if backup.is_some() && backup == current {
            Same::Yes
        } else {
            Same::No
        })
    }

    /// Whether `key` belongs to a Delta table: some folder it lies in has a `_delta_log/` in
    /// the backup. Asked only when a key's content changed (one LIST per folder level).
    async fn in_table(&self, bucket: &str, key: &str) -> Result<bool> {
        for folder in ancestor_folders(key) {
            let log = self
                .config
                .layout()
                .key(bucket, &format!("{folder}_delta_log/"));
            let page = self
                .store
                .list_page(&self.config.backup_bucket, &log, None)
                .await?;
            if !page.objects.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Serializes work on one backup key within this process.
    async fn lock_key(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.len() > 4096 {
                locks.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
            }
            locks.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn report_conflict(
        &self,
        object: &ObjectRef,
        original: &HashMap<String, String>,
        kept_at: String,
    ) -> Outcome {
        tracing::error!(event = "backup_conflict", bucket = %object.bucket, key = %object.key,
            original_etag = original.get(meta::SOURCE_ETAG).map(String::as_str).unwrap_or(""),
            new_etag = object.etag.as_deref().unwrap_or(""), kept_at = %kept_at,
            "a Delta log file was rewritten with different content; the backup keeps the original, the new content is kept aside");
        Outcome::Conflict { kept_at }
    }

    fn source_missing(&self, object: &ObjectRef, result: CopyResult) -> Outcome {
        let outcome = if result == CopyResult::PreconditionFailed {
            Outcome::SourceChanged
        } else {
            Outcome::SourceGone
        };
        tracing::warn!(event = "source_missing", bucket = %object.bucket, key = %object.key,
            etag = object.etag.as_deref().unwrap_or(""), outcome = ?outcome,
            "the source no longer holds what the event described; the verifier reconciles");
        outcome
    }

    fn write_options(&self, object: &ObjectRef) -> WriteOptions {
        let mut metadata = HashMap::new();
        metadata.insert(meta::SOURCE_BUCKET.to_string(), object.bucket.clone());
        metadata.insert(
            meta::SOURCE_KEY.to_string(),
            encode_metadata_value(&object.key),
        );
        if let Some(version) = &object.version_id {
            metadata.insert(meta::SOURCE_VERSION_ID.to_string(), version.clone());
        }
        if let Some(etag) = &object.etag {
            metadata.insert(meta::SOURCE_ETAG.to_string(), etag.clone());
        }
        if let Some(size) = object.size {
            metadata.insert(meta::SOURCE_SIZE.to_string(), size.to_string());
        }
        if let Some(time) = object.event_time {
            metadata.insert(
                meta::SOURCE_LAST_MODIFIED.to_string(),
                time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            );
        }
        WriteOptions {
            metadata,
            storage_class: self.config.storage_class.clone(),
            kms_key_id: self.config.kms_key_id.clone(),
            content_type: None,
            if_absent: false,
        }
    }
}

fn tally(emf: &mut Emf, outcome: &Outcome) {
    match outcome {
        Outcome::Copied { bytes, lag_ms, .. } => {
            emf.add("ObjectsCopied", 1.0, "Count");
            emf.add("BytesCopied", *bytes as f64, "Bytes");
            if let Some(lag) = lag_ms {
                emf.max("CopyLagMs", *lag as f64, "Milliseconds");
            }
        }
        Outcome::Duplicate | Outcome::Excluded | Outcome::TestEvent => {
            emf.add("Skipped", 1.0, "Count")
        }
        Outcome::Conflict { .. } => emf.add("Conflicts", 1.0, "Count"),
        Outcome::SourceGone | Outcome::SourceChanged => emf.add("SourceMissing", 1.0, "Count"),
        Outcome::DeletionSeen => emf.add("DeletionsSeen", 1.0, "Count"),
    }
}
