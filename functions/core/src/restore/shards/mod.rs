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

mod local;
mod records;
mod run;

pub use local::*;
pub use records::*;

#[cfg(test)]
mod tests;
