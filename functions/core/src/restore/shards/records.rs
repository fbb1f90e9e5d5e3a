//! The sharded restore's messages, its work queue, and the records it keeps in the backup.

#[allow(unused_imports)]
use super::*;

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
    pub(super) fn plan_with(&self, copies: Vec<PlannedCopy>) -> RestorePlan {
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

pub(crate) fn shard_name(kind: &str, shard: u32) -> String {
    format!("{kind}/{shard:06}.json")
}

pub(super) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new restore id: its start time and a digest of what it restores, sortable by time.
pub(super) fn new_id(plan: &RestorePlan) -> String {
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
