//! Sharded restores: the data copies of a large restore split into shards that concurrent
//! invocations of the restore function copy, fed through the restore work queue (SQS).
//!
//! How it goes:
//! 1. the coordinating request plans as always; when the plan has more data files to copy
//!    than `LIFEBOAT_RESTORE_SHARD_THRESHOLD` and `LIFEBOAT_RESTORE_QUEUE_URL` is set, it
//!    splits them ([`split`], pure: by object count and bytes), writes the restore's record
//!    under `_lifeboat/state/restores/<id>/` in the backup (`plan.json`: the request and the
//!    shard sizes; `log.json`: the log copies and the rollback's commit; `shards/<n>.json`:
//!    each shard's copies), sends one message per shard, and answers with the restore id;
//! 2. each shard message is copied by whichever invocation receives it, with the same
//!    per-object copy as a single-invocation restore (pinned to the backup ETag, marked with
//!    `lifeboat-restored-from-etag`); when it is done, a small `done/<n>.json` is written
//!    put-if-absent. A shard killed midway is not acknowledged: SQS delivers it again after
//!    its visibility timeout, and the redelivery (its `ApproximateReceiveCount` above 1) looks
//!    at each target key first and skips the copies already made;
//! 3. the invocation that writes the last `done` record (it lists `done/` after writing its
//!    own) writes the log: sidecars, checkpoints, then the commits one at a time, then a
//!    rollback's commit, put-if-absent, exactly as [`Restorer::execute`] does, and records
//!    `finished.json`. Two invocations finishing their last shards at once may both do it:
//!    every log write is put-if-absent and recognizes its own copy, so the second changes
//!    nothing. A failure there is recorded in `error.json` and fails the message, so SQS
//!    retries the finishing (then the dead-letter queue).
//!
//! S3 Batch Operations ([`crate::batch`]) is not used for restores: a batch copy keeps each
//! source key and can only put a folder in front of it, while a restore copies
//! `<backup prefix>/k` to `<target prefix>/k`; nor can it pin each copy to its own planned ETag
//! or mark it with the ETag it came from. Plans above `LIFEBOAT_RESTORE_BATCH_THRESHOLD` say so
//! and go through the queue.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::identity::same_content;
use crate::keys::S3Location;
use crate::layout::Layout;
use crate::store::{list_all, ObjectInfo, PutResult, Store, WriteOptions};

use super::execute::{write_order, RestoreOutcome};
use super::plan::{PlannedCopy, RestorePlan};
use super::request::RestoreRequest;
use super::response::RestoreResponse;
use super::Restorer;

const MIB: u64 = 1024 * 1024;
/// SQS's largest `SendMessageBatch`.
const SEND_BATCH: usize = 10;
/// State objects written or read at once.
const STATE_CONCURRENCY: usize = 16;

/// Where restores go in shards, and how large a shard is (`LIFEBOAT_RESTORE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSettings {
    /// `LIFEBOAT_RESTORE_QUEUE_URL`: the restore work queue; unset, every restore runs in one
    /// invocation and its follow-ups.
    pub queue_url: Option<String>,
    /// `LIFEBOAT_RESTORE_SHARD_THRESHOLD`: restores with more data files to copy than this go
    /// in shards.
    pub threshold_objects: u64,
    /// `LIFEBOAT_RESTORE_SHARD_OBJECTS`: at most this many objects per shard.
    pub shard_objects: u64,
    /// `LIFEBOAT_RESTORE_SHARD_BYTES`: at most this many bytes per shard (an object larger
    /// than this is a shard of its own).
    pub shard_bytes: u64,
    /// `LIFEBOAT_RESTORE_BATCH_THRESHOLD`: above this many objects a plan says why S3 Batch
    /// Operations is not used.
    pub batch_threshold_objects: u64,
}

impl Default for ShardSettings {
    fn default() -> Self {
        ShardSettings {
            queue_url: None,
            threshold_objects: 10_000,
            shard_objects: 2_000,
            shard_bytes: 64 * 1024 * MIB,
            batch_threshold_objects: 1_000_000,
        }
    }
}

impl ShardSettings {
    /// The settings from the environment, through `get` (trimmed, empty as unset).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let defaults = ShardSettings::default();
        let number = |variable: &'static str, default: u64| -> Result<u64> {
            match get(variable) {
                None => Ok(default),
                Some(text) => match text.replace('_', "").parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Error::config(
                        variable,
                        format!("{text:?} is not a whole number above 0"),
                    )),
                },
            }
        };
        Ok(ShardSettings {
            queue_url: get("LIFEBOAT_RESTORE_QUEUE_URL"),
            threshold_objects: number(
                "LIFEBOAT_RESTORE_SHARD_THRESHOLD",
                defaults.threshold_objects,
            )?,
            shard_objects: number("LIFEBOAT_RESTORE_SHARD_OBJECTS", defaults.shard_objects)?,
            shard_bytes: number("LIFEBOAT_RESTORE_SHARD_BYTES", defaults.shard_bytes)?,
            batch_threshold_objects: number(
                "LIFEBOAT_RESTORE_BATCH_THRESHOLD",
                defaults.batch_threshold_objects,
            )?,
        })
    }
}

/// Splits objects of `sizes` (in plan order) into consecutive shards of at most
/// `max_objects` objects and `max_bytes` bytes; an object larger than `max_bytes` is a shard
/// of its own. Every object is in exactly one shard, in order.
pub fn split(sizes: &[u64], max_objects: u64, max_bytes: u64) -> Vec<Range<usize>> {
    let max_objects = max_objects.max(1) as usize;
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, size) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= max_objects || bytes.saturating_add(*size) > max_bytes) {
            shards.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < sizes.len() {
        shards.push(start..sizes.len());
    }
    shards
}

/// One shard message on the restore work queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMessage {
    pub restore_id: String,
    pub shard: u32,
}

/// Where the restore work goes: SQS in production, anything in tests.
#[async_trait::async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends each body as one message.
    async fn send(&self, bodies: Vec<String>) -> Result<()>;
    /// The queue, as a person finds it.
    fn name(&self) -> String;
}

/// The restore work queue on SQS.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }
}

#[async_trait::async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, bodies: Vec<String>) -> Result<()> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let sqs_error = |message: String| Error::Sqs {
            operation: "SendMessageBatch",
            message,
            source: None,
        };
        for chunk in bodies.chunks(SEND_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| sqs_error(e.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error(format!("sending restore shards to {}: {e}", self.url)))?;
            if let Some(failed) = sent.failed().first() {
                return Err(sqs_error(format!(
                    "{} restore shard message(s) were not accepted by {} (e.g. {}: {})",
                    sent.failed().len(),
                    self.url,
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.url.clone()
    }
}

/// What the coordinating request answers for a restore it handed to the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardedStart {
    pub restore_id: String,
    pub shards: u32,
    /// Data files the shards copy.
    pub objects: u64,
    pub bytes: u64,
    /// Log files written once every shard is done.
    pub log_objects: u64,
    pub queue: String,
    /// Where the progress is kept, in the backup bucket.
    pub state: String,
    /// How to follow it.
    pub status: String,
}

/// The size of one shard, as `plan.json` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSize {
    pub objects: u64,
    pub bytes: u64,
}

/// `plan.json`: what every invocation of a sharded restore needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardedRestore {
    pub id: String,
    pub started_at: String,
    pub request: RestoreRequest,
    /// The plan as the coordinating request answered it (its copies are in the manifests).
    pub plan: RestorePlan,
    pub backup_bucket: String,
    pub backup_prefix: String,
    pub target_bucket: String,
    pub target_prefix: String,
    pub shards: Vec<ShardSize>,
}

impl ShardedRestore {
    fn backup(&self) -> S3Location {
        S3Location {
            bucket: self.backup_bucket.clone(),
            prefix: self.backup_prefix.clone(),
        }
    }

    fn target(&self) -> S3Location {
        S3Location {
            bucket: self.target_bucket.clone(),
            prefix: self.target_prefix.clone(),
        }
    }

    /// A plan to copy with: where from, where to, and `copies`.
    fn plan_with(&self, copies: Vec<PlannedCopy>) -> RestorePlan {
        RestorePlan {
            copies,
            backup: self.backup(),
            target_location: self.target(),
            ..self.plan.clone()
        }
    }
}

/// `log.json`: what the last shard's invocation writes once the data is in place.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogWrites {
    pub copies: Vec<PlannedCopy>,
    /// The rollback's commit, one action per line (the plan keeps only its summary).
    pub commit_actions: Vec<Value>,
}

/// `shards/<n>.json`: one shard's copies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardManifest {
    pub shard: u32,
    pub copies: Vec<PlannedCopy>,
}

/// `done/<n>.json`: a finished shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardDone {
    pub shard: u32,
    pub copied: u64,
    /// Already copied by an earlier delivery of this shard (recognized by their marker).
    pub skipped: u64,
    pub bytes_copied: u64,
    pub seconds: f64,
    pub at: String,
}

/// `finished.json`: the log writes and the catalog, once every shard was done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    pub log: RestoreOutcome,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<crate::catalog::CatalogChange>,
    pub at: String,
}

/// `error.json`: the last failure of the log writes (the finishing is retried).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    pub at: String,
}

/// Where a sharded restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Shards are being copied.
    Copying,
    /// Every shard is done; the log is being written.
    WritingLog,
    Done,
    /// The log writes failed (see `error`); SQS retries them.
    Failed,
}

/// `lifeboat restore --status <id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreStatus {
    pub restore_id: String,
    pub table: String,
    pub target: String,
    pub phase: Phase,
    pub shards: u32,
    pub shards_done: u32,
    pub objects: u64,
    pub objects_done: u64,
    pub bytes: u64,
    pub bytes_done: u64,
    pub log_objects: u64,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Finished>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one shard delivery did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardRun {
    pub restore_id: String,
    pub shard: u32,
    /// `None`: the shard was already done (a duplicate delivery).
    pub done: Option<ShardDone>,
    /// This delivery wrote the log.
    pub finished: bool,
}

fn shard_name(kind: &str, shard: u32) -> String {
    format!("{kind}/{shard:06}.json")
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new restore id: its start time and a digest of what it restores, sortable by time.
fn new_id(plan: &RestorePlan) -> String {
    let at = Utc::now();
    let seed = format!(
        "{} {} {:?} {} {}",
        plan.table,
        plan.target,
        plan.mode,
        plan.restore_point.version,
        at.timestamp_nanos_opt().unwrap_or_default()
    );
    let digest = format!("{:x}", md5::Md5::digest(seed.as_bytes()));
    format!("{}-{}", at.format("%Y%m%dT%H%M%SZ"), &digest[..8])
}

use md5::Digest as _;

impl RestoreResponse {
    /// Records that the restore was handed to the queue.
    pub fn with_sharded(mut self, started: ShardedStart) -> Self {
        self.sharded = Some(started);
        self
    }
}

impl<S: Store> Restorer<S> {
    /// Uses `queue` as the restore work queue.
    pub fn with_queue(mut self, queue: Arc<dyn WorkQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Whether `plan` goes through the work queue, with the plan's note saying which path it
    /// takes and why.
    pub(super) fn plan_sharding(&self, plan: &mut RestorePlan) -> bool {
        let settings = &self.config.restore_shards;
        let [data, ..] = write_order(&plan.copies);
        let objects = data.len() as u64;
        if objects <= settings.threshold_objects {
            return false;
        }
        if objects > settings.batch_threshold_objects {
            plan.notes.push(format!(
                "{objects} data files are above LIFEBOAT_RESTORE_BATCH_THRESHOLD ({}), but S3 Batch Operations is not used: a batch copy keeps each backup key (it can only put a folder in front of it) while a restore copies <backup prefix>/<path> to <target>/<path>, and it cannot pin each copy to its planned ETag nor mark it with lifeboat-restored-from-etag",
                settings.batch_threshold_objects
            ));
        }
        if self.queue.is_none() {
            plan.notes.push(format!(
                "{objects} data files are above LIFEBOAT_RESTORE_SHARD_THRESHOLD ({}), but no restore queue is configured (LIFEBOAT_RESTORE_QUEUE_URL): the restore runs in this invocation and its follow-ups",
                settings.threshold_objects
            ));
            return false;
        }
        let sizes: Vec<u64> = data.iter().map(|c| c.size).collect();
        let shards = split(&sizes, settings.shard_objects, settings.shard_bytes).len();
        plan.notes.push(format!(
            "{objects} data files are copied in {shards} shard(s) by concurrent invocations through the restore work queue; the log ({} file(s){}) is written once every shard is done, by the invocation that finishes the last one. Follow it with `lifeboat restore --status <id>`",
            plan.copies.len() - data.len(),
            if plan.commit.is_some() { " and the rollback's commit" } else { "" }
        ));
        true
    }

    fn state_options() -> WriteOptions {
        WriteOptions {
            content_type: Some("application/json".into()),
            ..WriteOptions::default()
        }
    }

    async fn put_state(&self, key: &str, value: &impl Serialize, if_absent: bool) -> Result<bool> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        let options = WriteOptions {
            if_absent,
            ..Self::state_options()
        };
        Ok(matches!(
            self.store
                .put(&self.config.backup_bucket, key, body, &options)
                .await?,
            PutResult::Written { .. }
        ))
    }

    async fn get_state<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self
            .store
            .get(&self.config.backup_bucket, key, None)
            .await?
        {
            None => Ok(None),
            Some(body) => Ok(Some(serde_json::from_slice(&body).map_err(|e| {
                Error::Restore(format!(
                    "s3://{}/{key} is not a restore record ({e})",
                    self.config.backup_bucket
                ))
            })?)),
        }
    }

    async fn load_restore(&self, id: &str) -> Result<ShardedRestore> {
        let key = Layout::restore_key(id, "plan.json");
        self.get_state(&key).await?.ok_or_else(|| {
            Error::NotRestorable(format!(
                "no sharded restore {id:?}: s3://{}/{key} does not exist",
                self.config.backup_bucket
            ))
        })
    }

    /// Hands `plan`'s data copies to the work queue in shards, after writing the restore's
    /// record; the log is written once every shard is done.
    pub(super) async fn start_sharded(
        &self,
        request: &RestoreRequest,
        plan: &RestorePlan,
    ) -> Result<ShardedStart> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| Error::Restore("no restore work queue is configured".into()))?;
        let settings = &self.config.restore_shards;
        let id = new_id(plan);
        let [data, sidecars, checkpoints, commits] = write_order(&plan.copies);
        let sizes: Vec<u64> = data.iter().map(|c| c.size).collect();
        let ranges = split(&sizes, settings.shard_objects, settings.shard_bytes);
        let manifests: Vec<ShardManifest> = ranges
            .iter()
            .enumerate()
            .map(|(i, range)| ShardManifest {
                shard: i as u32,
                copies: data[range.clone()].iter().map(|c| (*c).clone()).collect(),
            })
            .collect();
        let log = LogWrites {
            copies: [sidecars, checkpoints, commits]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            commit_actions: plan
                .commit
                .as_ref()
                .map(|c| c.actions.clone())
                .unwrap_or_default(),
        };
        let record = ShardedRestore {
            id: id.clone(),
            started_at: now(),
            request: request.clone(),
            plan: plan.clone(),
            backup_bucket: plan.backup.bucket.clone(),
            backup_prefix: plan.backup.prefix.clone(),
            target_bucket: plan.target_location.bucket.clone(),
            target_prefix: plan.target_location.prefix.clone(),
            shards: manifests
                .iter()
                .map(|m| ShardSize {
                    objects: m.copies.len() as u64,
                    bytes: m.copies.iter().map(|c| c.size).sum(),
                })
                .collect(),
        };
        // Everything a shard needs is written before its message is sent.
        let id_ref = &id;
        stream::iter(&manifests)
            .map(|m| async move {
                self.put_state(
                    &Layout::restore_key(id_ref, &shard_name("shards", m.shard)),
                    m,
                    true,
                )
                .await
            })
            .buffer_unordered(STATE_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        self.put_state(&Layout::restore_key(&id, "log.json"), &log, true)
            .await?;
        self.put_state(&Layout::restore_key(&id, "plan.json"), &record, true)
            .await?;
        let bodies = manifests
            .iter()
            .map(|m| {
                serde_json::to_string(&ShardMessage {
                    restore_id: id.clone(),
                    shard: m.shard,
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        queue.send(bodies).await?;
        tracing::info!(restore_id = %id, shards = manifests.len(), objects = sizes.len(), "restore handed to the work queue");
        Ok(ShardedStart {
            shards: manifests.len() as u32,
            objects: sizes.len() as u64,
            bytes: sizes.iter().sum(),
            log_objects: log.copies.len() as u64,
            queue: queue.name(),
            state: format!(
                "s3://{}/{}",
                self.config.backup_bucket,
                Layout::restore_key(&id, "")
            ),
            status: format!("lifeboat restore --status {id}"),
            restore_id: id,
        })
    }

    /// Handles an SQS batch of shard messages: each shard is copied, and the batch response
    /// names the messages that failed (SQS delivers them again). `progress` is told the
    /// copies of the shard being copied.
    pub async fn handle_shards(
        &self,
        event: &Value,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<(SqsBatchResponse, Vec<ShardRun>)> {
        let batch: SqsEvent = serde_json::from_value(event.clone())
            .map_err(|e| Error::bad_input(format!("SQS batch does not parse: {e}")))?;
        let mut response = SqsBatchResponse::default();
        let mut runs = Vec::new();
        for (i, record) in batch.records.into_iter().enumerate() {
            let message_id = record.message_id.unwrap_or_else(|| format!("#{i}"));
            // Lambda always says how often the message was received; without it, look first.
            let redelivered = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse::<u32>().ok())
                != Some(1);
            let result = match serde_json::from_str::<ShardMessage>(
                record.body.as_deref().unwrap_or_default(),
            ) {
                Ok(message) => {
                    self.run_shard(&message, redelivered, deadline, &progress)
                        .await
                }
                Err(e) => Err(Error::bad_input(format!(
                    "message {message_id} is not a restore shard ({e})"
                ))),
            };
            match result {
                Ok(run) => runs.push(run),
                Err(err) => {
                    tracing::error!(message_id = %message_id, error = %err, retryable = err.is_retryable(),
                        "restore shard failed; SQS delivers it again, then moves it to the dead-letter queue");
                    response.add_failure(message_id);
                }
            }
        }
        Ok((response, runs))
    }

    /// Copies one shard (unless it is done already), records it, and writes the log if it was
    /// the last.
    pub async fn run_shard(
        &self,
        message: &ShardMessage,
        redelivered: bool,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<ShardRun> {
        let started = Instant::now();
        let id = &message.restore_id;
        let done_key = Layout::restore_key(id, &shard_name("done", message.shard));
        let mut run = ShardRun {
            restore_id: id.clone(),
            shard: message.shard,
            ..ShardRun::default()
        };
        let record = self.load_restore(id).await?;
        let already = self
            .store
            .head(&self.config.backup_bucket, &done_key, None)
            .await?
            .is_some();
        if !already {
            let manifest: ShardManifest = self
                .get_state(&Layout::restore_key(
                    id,
                    &shard_name("shards", message.shard),
                ))
                .await?
                .ok_or_else(|| {
                    Error::Restore(format!(
                        "restore {id} has no shard {} (its manifest is missing)",
                        message.shard
                    ))
                })?;
            let plan = record.plan_with(Vec::new());
            let total = manifest.copies.len() as u64;
            let to_copy = if redelivered {
                self.not_yet_copied(&plan, manifest.copies).await?
            } else {
                manifest.copies
            };
            let skipped = total - to_copy.len() as u64;
            let (copied, bytes_copied) = self
                .copy_data(&plan, &to_copy, deadline, |done, _| {
                    progress(skipped + done, total)
                })
                .await?;
            if copied < to_copy.len() as u64 {
                return Err(Error::Restore(format!(
                    "shard {} of restore {id} stopped with {} of {total} object(s) left (out of time); SQS delivers it again and the copies made are skipped",
                    message.shard,
                    to_copy.len() as u64 - copied
                )));
            }
            let done = ShardDone {
                shard: message.shard,
                copied,
                skipped,
                bytes_copied,
                seconds: started.elapsed().as_secs_f64(),
                at: now(),
            };
            self.put_state(&done_key, &done, true).await?;
            run.done = Some(done);
        }
        run.finished = self.finish_if_last(&record).await?;
        Ok(run)
    }

    /// The copies of a shard the target does not hold yet as the backup has them: a copy an
    /// earlier delivery made carries the backup ETag it came from, and is skipped.
    async fn not_yet_copied(
        &self,
        plan: &RestorePlan,
        copies: Vec<PlannedCopy>,
    ) -> Result<Vec<PlannedCopy>> {
        let target = &plan.target_location;
        let looked: Vec<Option<PlannedCopy>> = stream::iter(copies)
            .map(|copy| async move {
                let head = self
                    .store
                    .head(&target.bucket, &target.key(&copy.path), None)
                    .await?;
                let backup = ObjectInfo {
                    size: copy.size,
                    etag: copy.etag.clone(),
                    ..ObjectInfo::default()
                };
                let in_place =
                    head.is_some_and(|h| same_content(&h, &backup).decided() == Some(true));
                Ok::<_, Error>((!in_place).then_some(copy))
            })
            .buffer_unordered(self.settings.concurrency)
            .try_collect()
            .await?;
        Ok(looked.into_iter().flatten().collect())
    }

    /// Writes the log of `record` when every shard is done and nobody finished it yet;
    /// whether this call did.
    async fn finish_if_last(&self, record: &ShardedRestore) -> Result<bool> {
        let id = &record.id;
        let done = list_all(
            &self.store,
            &self.config.backup_bucket,
            &Layout::restore_key(id, "done/"),
        )
        .await?;
        if done.len() < record.shards.len() {
            return Ok(false);
        }
        let finished_key = Layout::restore_key(id, "finished.json");
        if self
            .store
            .head(&self.config.backup_bucket, &finished_key, None)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        match self.write_log(record).await {
            Ok(finished) => {
                self.put_state(&finished_key, &finished, true).await?;
                tracing::info!(restore_id = %id, "every shard is done and the log is written");
                Ok(true)
            }
            Err(err) => {
                let failure = Failure {
                    error: err.to_string(),
                    at: now(),
                };
                self.put_state(&Layout::restore_key(id, "error.json"), &failure, false)
                    .await?;
                Err(err)
            }
        }
    }

    /// The log writes of a sharded restore, as a single-invocation restore makes them once its
    /// data is copied: sidecars, checkpoints, the commits in order, then a rollback's commit;
    /// then the catalog.
    async fn write_log(&self, record: &ShardedRestore) -> Result<Finished> {
        let log: LogWrites = self
            .get_state(&Layout::restore_key(&record.id, "log.json"))
            .await?
            .unwrap_or_default();
        let mut plan = record.plan_with(log.copies);
        if let Some(commit) = &mut plan.commit {
            commit.actions = log.commit_actions;
        }
        let outcome = self.execute(&plan, None, |_, _| {}).await?;
        if !outcome.complete {
            return Err(Error::Restore(format!(
                "restore {}: {} log file(s) were not written; the finishing is retried",
                record.id, outcome.remaining_objects
            )));
        }
        self.apply_catalog(&mut plan).await?;
        Ok(Finished {
            log: outcome,
            catalog: plan.catalog,
            at: now(),
        })
    }

    /// Where sharded restore `id` is: shards done, objects and bytes copied, and how it ended.
    pub async fn restore_status(&self, id: &str) -> Result<RestoreStatus> {
        let record = self.load_restore(id).await?;
        let done = list_all(
            &self.store,
            &self.config.backup_bucket,
            &Layout::restore_key(id, "done/"),
        )
        .await?;
        let mut status = RestoreStatus {
            restore_id: id.to_string(),
            table: record.plan.table.clone(),
            target: record.plan.target.clone(),
            phase: Phase::Copying,
            shards: record.shards.len() as u32,
            shards_done: 0,
            objects: record.shards.iter().map(|s| s.objects).sum(),
            objects_done: 0,
            bytes: record.shards.iter().map(|s| s.bytes).sum(),
            bytes_done: 0,
            log_objects: record.plan.objects_to_copy
                - record.shards.iter().map(|s| s.objects).sum::<u64>(),
            started_at: record.started_at.clone(),
            finished: None,
            error: None,
        };
        for object in &done {
            let shard = object
                .key
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(size) = shard.and_then(|s| record.shards.get(s)) {
                status.shards_done += 1;
                status.objects_done += size.objects;
                status.bytes_done += size.bytes;
            }
        }
        status.finished = self
            .get_state(&Layout::restore_key(id, "finished.json"))
            .await?;
        let failure: Option<Failure> = self
            .get_state(&Layout::restore_key(id, "error.json"))
            .await?;
        status.phase = match (&status.finished, &failure) {
            (Some(_), _) => Phase::Done,
            (None, Some(_)) => Phase::Failed,
            (None, None) if status.shards_done == status.shards => Phase::WritingLog,
            (None, None) => Phase::Copying,
        };
        if status.finished.is_none() {
            status.error = failure.map(|f| f.error);
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        // (sizes, max objects, max bytes, expected shards as (start, end))
        type Case = (&'static [u64], u64, u64, &'static [(usize, usize)]);
        let cases: &[Case] = &[
            (&[], 10, 100, &[]),
            (&[1], 10, 100, &[(0, 1)]),
            // By count.
            (&[1, 1, 1, 1, 1], 2, 100, &[(0, 2), (2, 4), (4, 5)]),
            (&[1, 1, 1, 1], 2, 100, &[(0, 2), (2, 4)]),
            // By bytes: a shard closes before the object that would exceed the limit.
            (&[40, 40, 40, 40], 10, 100, &[(0, 2), (2, 4)]),
            (&[50, 50, 50], 10, 100, &[(0, 2), (2, 3)]),
            // An object above the byte limit is a shard of its own.
            (&[10, 500, 10], 10, 100, &[(0, 1), (1, 2), (2, 3)]),
            (&[500, 500], 10, 100, &[(0, 1), (1, 2)]),
            // Both limits: the count closes the first, the bytes the second.
            (&[1, 1, 1, 98, 1, 1, 5], 3, 100, &[(0, 3), (3, 6), (6, 7)]),
            // A limit of 0 objects still makes progress.
            (&[1, 1], 0, 100, &[(0, 1), (1, 2)]),
            (&[0, 0, 0], 10, 0, &[(0, 3)]),
        ];
        for (sizes, objects, bytes, expected) in cases {
            let got = split(sizes, *objects, *bytes);
            let pairs: Vec<(usize, usize)> = got.iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(pairs, *expected, "{sizes:?} {objects} {bytes}");
            // Every object exactly once, in order.
            let flat: Vec<usize> = got.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn settings_table() {
        let defaults = ShardSettings::default();
        // (variables, expected: Ok(settings) or Err(variable named))
        type Case = (
            Vec<(&'static str, &'static str)>,
            Result<ShardSettings, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (vec![], Ok(defaults.clone())),
            (
                vec![
                    ("LIFEBOAT_RESTORE_QUEUE_URL", "https://sqs/q"),
                    ("LIFEBOAT_RESTORE_SHARD_THRESHOLD", "1_000"),
                    ("LIFEBOAT_RESTORE_SHARD_OBJECTS", "50"),
                    ("LIFEBOAT_RESTORE_SHARD_BYTES", "1048576"),
                ],
                Ok(ShardSettings {
                    queue_url: Some("https://sqs/q".into()),
                    threshold_objects: 1000,
                    shard_objects: 50,
                    shard_bytes: MIB,
                    ..defaults.clone()
                }),
            ),
            (
                vec![("LIFEBOAT_RESTORE_SHARD_OBJECTS", "0")],
                Err("LIFEBOAT_RESTORE_SHARD_OBJECTS"),
            ),
            (
                vec![("LIFEBOAT_RESTORE_SHARD_BYTES", "lots")],
                Err("LIFEBOAT_RESTORE_SHARD_BYTES"),
            ),
        ];
        for (vars, expected) in cases {
            let got = ShardSettings::from_lookup(&|name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            });
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected),
                (Err(err), Err(variable)) => {
                    assert!(err.to_string().contains(variable), "{err}")
                }
                (got, expected) => panic!("{vars:?}: {got:?} vs {expected:?}"),
            }
        }
    }

    #[test]
    fn messages_and_keys() {
        let message: ShardMessage =
            serde_json::from_str(r#"{"restore_id": "20260101T000000Z-abcdef01", "shard": 7}"#)
                .unwrap();
        assert_eq!(message.shard, 7);
        assert!(serde_json::from_str::<ShardMessage>(r#"{"Records": []}"#).is_err());
        assert_eq!(
            Layout::restore_key("r1", &shard_name("done", 7)),
            "_lifeboat/state/restores/r1/done/000007.json"
        );
    }
}
