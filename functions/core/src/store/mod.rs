//! The small storage trait the logic talks to, and the types it exchanges.
//!
//! The production adapter is [`crate::s3::S3Store`] over `aws-sdk-s3`; [`memory::MemoryStore`]
//! keeps objects in memory, with S3's versioning and conditional writes, for tests that need
//! no server.

pub mod memory;

use std::collections::HashMap;
use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::Result;

/// What a HEAD or a listing says about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// The ETag as S3 returns it, without surrounding quotes.
    pub etag: String,
    pub version_id: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    /// User metadata (HEAD only; empty from listings).
    pub metadata: HashMap<String, String>,
    /// The checksum S3 keeps for the object (HEAD with checksum mode only).
    pub checksum: Option<Checksum>,
}

/// A checksum S3 keeps for an object: since December 2024 every new object has one
/// (CRC64NVME unless the writer chose another algorithm), and a copy keeps its algorithm.
/// Only a full-object checksum identifies the content whatever the part layout; a composite
/// one (`value-N`) depends on how the object was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// `CRC64NVME`, `CRC32`, `CRC32C`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// Base64, as S3 returns it.
    pub value: String,
    pub full_object: bool,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    pub next: Option<String>,
}

/// One page of the "folders" directly under a prefix (S3 common prefixes with delimiter `/`).
#[derive(Debug, Default)]
pub struct FolderPage {
    /// Full prefixes, each ending in `/`.
    pub folders: Vec<String>,
    pub next: Option<String>,
}

/// Settings for an object Lifeboat writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub metadata: HashMap<String, String>,
    pub storage_class: Option<String>,
    pub kms_key_id: Option<String>,
    pub content_type: Option<String>,
    /// Copies and multipart completions only when the key does not exist yet
    /// (`If-None-Match: *`): a duplicate or a retried copy whose first answer was lost then
    /// fails with a precondition error instead of writing a second version.
    pub if_absent: bool,
}

/// What the copy source must be, so a copy never takes content other than the event's.
#[derive(Debug, Clone, Default)]
pub struct SourcePin {
    pub version_id: Option<String>,
    pub if_match_etag: Option<String>,
}

/// The result of a pinned copy (or of completing a multipart copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyResult {
    Copied {
        etag: String,
    },
    /// The source (or the pinned version) no longer exists.
    SourceGone,
    /// S3 answered 412 Precondition Failed: the source is no longer what was pinned
    /// (`CopySourceIfMatch`), or, with `if_absent`, the destination already exists
    /// (`If-None-Match: *`). S3 does not say which; the caller looks.
    PreconditionFailed,
}

/// The result of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutResult {
    Written {
        etag: String,
    },
    /// S3 answered 412 Precondition Failed to a put with `if_absent`: the key exists.
    PreconditionFailed,
}

/// The S3 operations Lifeboat needs, and nothing else (in particular, no delete).
pub trait Store: Send + Sync {
    fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<ObjectInfo>>> + Send;

    fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Writes `body`; with `options.if_absent`, only when the key does not exist yet
    /// (put-if-absent).
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<PutResult>> + Send;

    /// Lists one page of keys under `prefix`.
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<ListPage>> + Send;

    /// Lists one page of keys under `prefix` that sort after `start_after` (S3 lists in
    /// lexicographic order: a log is listed from a known commit on, `start-after`). The
    /// default lists every key under `prefix` and keeps the later ones; real stores override it.
    fn list_page_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<ListPage>> + Send {
        async move {
            let _ = continuation;
            let objects = list_all(self, bucket, prefix)
                .await?
                .into_iter()
                .filter(|o| o.key.as_str() > start_after)
                .collect();
            Ok(ListPage {
                objects,
                next: None,
            })
        }
    }

    /// Lists one page of the folders directly under `prefix` (a delimiter listing), so a walk
    /// over a bucket's folders does not list every object. The default lists every key under
    /// `prefix` in one go and derives the folders; real stores override it.
    fn list_folders(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<FolderPage>> + Send {
        async move {
            let _ = continuation;
            let mut folders: Vec<String> = list_all(self, bucket, prefix)
                .await?
                .into_iter()
                .filter_map(|o| {
                    let rest = o.key.strip_prefix(prefix)?;
                    let end = rest.find('/')?;
                    Some(format!("{prefix}{}", &rest[..=end]))
                })
                .collect();
            folders.sort();
            folders.dedup();
            Ok(FolderPage {
                folders,
                next: None,
            })
        }
    }

    /// Server-side CopyObject of a whole object, replacing its metadata with `options`.
    fn copy_object(
        &self,
        source_bucket: &str,
        source_key: &str,
        pin: &SourcePin,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<CopyResult>> + Send;

    fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<String>> + Send;

    /// UploadPartCopy of the inclusive byte range `first..=last`; `None` when the pinned source
    /// is gone or changed.
    #[allow(clippy::too_many_arguments)]
    fn upload_part_copy(
        &self,
        source_bucket: &str,
        source_key: &str,
        pin: &SourcePin,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        first: u64,
        last: u64,
    ) -> impl Future<Output = Result<std::result::Result<String, CopyResult>>> + Send;

    /// Completes an upload; with `options.if_absent`, only when the key does not exist yet
    /// ([`CopyResult::PreconditionFailed`] when it does).
    fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<CopyResult>> + Send;

    /// A Delta snapshot reader over `bucket`, reading through this store's client (endpoint,
    /// region, retries, expected bucket owner). Stores without one say so.
    fn delta_reader(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<crate::delta::KernelReader>> + Send {
        let bucket = bucket.to_string();
        async move {
            Err(crate::Error::delta(
                format!("s3://{bucket}"),
                "this store has no Delta reader (an in-memory store); read snapshots over S3",
            ))
        }
    }

    /// Abandons an upload that was not completed (frees its parts; deletes no object).
    fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Lists every object under `prefix`, page by page.
pub async fn list_all<S: Store + ?Sized>(
    store: &S,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectInfo>> {
    let mut all = Vec::new();
    let mut continuation = None;
    loop {
        let page = store.list_page(bucket, prefix, continuation).await?;
        all.extend(page.objects);
        match page.next {
            Some(next) => continuation = Some(next),
            None => return Ok(all),
        }
    }
}

/// Lists every object under `prefix` whose key sorts after `start_after`, page by page.
pub async fn list_all_after<S: Store + ?Sized>(
    store: &S,
    bucket: &str,
    prefix: &str,
    start_after: &str,
) -> Result<Vec<ObjectInfo>> {
    let mut all = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .list_page_after(bucket, prefix, start_after, continuation)
            .await?;
        all.extend(page.objects);
        match page.next {
            Some(next) => continuation = Some(next),
            None => return Ok(all),
        }
    }
}

/// Strips the quotes S3 puts around ETags.
pub fn bare_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}
