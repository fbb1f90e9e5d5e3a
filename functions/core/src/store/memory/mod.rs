//! A [`Store`] in memory, for tests that need no server: versioned buckets, pinned copies,
//! conditional writes and multipart copies behave as S3 documents them (412 on a failed
//! `If-None-Match: *` or `CopySourceIfMatch`, `-N` ETags for multipart uploads, listings in
//! key order, page by page).
//!
//! It has no Delta reader ([`Store::delta_reader`]): snapshot reads are tested against the
//! local AWS.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;
use chrono::Utc;
use md5::{Digest, Md5};

use super::{
    Checksum, CopyResult, ListPage, ObjectInfo, PutResult, SourcePin, Store, WriteOptions,
};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
struct Version {
    id: String,
    body: Bytes,
    info: ObjectInfo,
}

#[derive(Debug, Default)]
struct Upload {
    bucket: String,
    key: String,
    options: WriteOptions,
    parts: BTreeMap<i32, Bytes>,
}

#[derive(Debug, Default)]
struct State {
    /// bucket → key → versions, oldest first.
    buckets: HashMap<String, BTreeMap<String, Vec<Version>>>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
}

/// Objects in memory.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    page_size: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store whose listings return 1,000 keys a page, as S3's do.
    pub fn new() -> Self {
        Self::with_page_size(1000)
    }

    /// An empty store with small listing pages, to exercise pagination.
    pub fn with_page_size(page_size: usize) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            page_size: page_size.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every version of `key`, oldest first (what `ListObjectVersions` would show).
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<ObjectInfo> {
        self.state()
            .buckets
            .get(bucket)
            .and_then(|b| b.get(key))
            .map(|v| v.iter().map(|v| v.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Puts `body` as a plain writer would (no conditions, no metadata).
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) -> ObjectInfo {
        self.state()
            .write(bucket, key, body.into(), &WriteOptions::default(), None)
    }
}

/// S3's default checksum: CRC-64/NVME (reflected polynomial 0x9a6c9329ac4bc9b5), as base64 of
/// its 8 big-endian bytes.
fn crc64nvme_base64(body: &[u8]) -> String {
    use base64::Engine;
    const POLY: u64 = 0x9a6c_9329_ac4b_c9b5;
    let mut crc = !0u64;
    for &byte in body {
        crc ^= byte as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    base64::engine::general_purpose::STANDARD.encode((!crc).to_be_bytes())
}

fn md5_hex(body: &[u8]) -> String {
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl State {
    fn current(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Option<&Version> {
        let versions = self.buckets.get(bucket)?.get(key)?;
        match version_id {
            Some(id) => versions.iter().find(|v| v.id == id),
            None => versions.last(),
        }
    }

    fn write(
        &mut self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
        etag: Option<String>,
    ) -> ObjectInfo {
        self.next_id += 1;
        let id = format!("v{:08}", self.next_id);
        let info = ObjectInfo {
            key: key.to_string(),
            size: body.len() as u64,
            etag: etag.unwrap_or_else(|| md5_hex(&body)),
            version_id: Some(id.clone()),
            last_modified: Some(Utc::now()),
            metadata: options.metadata.clone(),
            checksum: Some(Checksum {
                algorithm: "CRC64NVME".into(),
                value: crc64nvme_base64(&body),
                full_object: true,
            }),
        };
        self.buckets
            .entry(bucket.to_string())
            .or_default()
            .entry(key.to_string())
            .or_default()
            .push(Version {
                id,
                body,
                info: info.clone(),
            });
        info
    }

    /// The source of a copy, or the copy's outcome when the pin does not hold.
    fn pinned(
        &self,
        bucket: &str,
        key: &str,
        pin: &SourcePin,
    ) -> std::result::Result<Bytes, CopyResult> {
        let Some(version) = self.current(bucket, key, pin.version_id.as_deref()) else {
            return Err(CopyResult::SourceGone);
        };
        match &pin.if_match_etag {
            Some(etag) if *etag != version.info.etag => Err(CopyResult::PreconditionFailed),
            _ => Ok(version.body.clone()),
        }
    }
}

impl Store for MemoryStore {
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectInfo>> {
        Ok(self
            .state()
            .current(bucket, key, version_id)
            .map(|v| v.info.clone()))
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<Bytes>> {
        Ok(self
            .state()
            .current(bucket, key, version_id)
            .map(|v| v.body.clone()))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
    ) -> Result<PutResult> {
        let mut state = self.state();
        if options.if_absent && state.current(bucket, key, None).is_some() {
            return Ok(PutResult::PreconditionFailed);
        }
        let info = state.write(bucket, key, body, options, None);
        Ok(PutResult::Written { etag: info.etag })
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ListPage> {
        let state = self.state();
        let Some(keys) = state.buckets.get(bucket) else {
            return Ok(ListPage::default());
        };
        let after = continuation.unwrap_or_default();
        let mut objects = Vec::new();
        let mut next = None;
        for (key, versions) in keys.range::<str, _>((
            std::ops::Bound::Excluded(after.as_str()),
            std::ops::Bound::Unbounded,
        )) {
            if !key.starts_with(prefix) {
                if key.as_str() > prefix {
                    break;
                }
                continue;
            }
            if objects.len() == self.page_size {
                next = objects.last().map(|o: &ObjectInfo| o.key.clone());
                break;
            }
            let mut info = versions.last().expect("a key has a version").info.clone();
            info.version_id = None;
            info.metadata.clear();
            objects.push(info);
        }
        Ok(ListPage { objects, next })
    }

    async fn copy_object(
        &self,
        source_bucket: &str,
        source_key: &str,
        pin: &SourcePin,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> Result<CopyResult> {
        let mut state = self.state();
        let body = match state.pinned(source_bucket, source_key, pin) {
            Ok(body) => body,
            Err(outcome) => return Ok(outcome),
        };
        if options.if_absent && state.current(bucket, key, None).is_some() {
            return Ok(CopyResult::PreconditionFailed);
        }
        let info = state.write(bucket, key, body, options, None);
        Ok(CopyResult::Copied { etag: info.etag })
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> Result<String> {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("upload-{}", state.next_id);
        state.uploads.insert(
            id.clone(),
            Upload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                options: options.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part_copy(
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
    ) -> Result<std::result::Result<String, CopyResult>> {
        let mut state = self.state();
        let body = match state.pinned(source_bucket, source_key, pin) {
            Ok(body) => body,
            Err(outcome) => return Ok(Err(outcome)),
        };
        if last < first || last >= body.len() as u64 {
            return Err(no_such(
                "UploadPartCopy",
                bucket,
                key,
                "the range lies outside the source",
            ));
        }
        let part = body.slice(first as usize..=last as usize);
        let etag = md5_hex(&part);
        match state.uploads.get_mut(upload_id) {
            Some(upload) if upload.bucket == bucket && upload.key == key => {
                upload.parts.insert(part_number, part);
                Ok(Ok(etag))
            }
            _ => Err(no_such("UploadPartCopy", bucket, key, "NoSuchUpload")),
        }
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
        options: &WriteOptions,
    ) -> Result<CopyResult> {
        let mut state = self.state();
        if options.if_absent && state.current(bucket, key, None).is_some() {
            return Ok(CopyResult::PreconditionFailed);
        }
        let Some(upload) = state.uploads.remove(upload_id) else {
            return Err(no_such(
                "CompleteMultipartUpload",
                bucket,
                key,
                "NoSuchUpload",
            ));
        };
        let mut body = Vec::new();
        let mut digests = Vec::new();
        for (number, etag) in &parts {
            let part = upload.parts.get(number).filter(|p| md5_hex(p) == *etag);
            let Some(part) = part else {
                return Err(no_such(
                    "CompleteMultipartUpload",
                    bucket,
                    key,
                    "InvalidPart",
                ));
            };
            body.extend_from_slice(part);
            digests.extend_from_slice(&Md5::digest(part));
        }
        // S3's multipart ETag: the MD5 of the parts' MD5s, and the number of parts.
        let etag = format!("{}-{}", md5_hex(&digests), parts.len());
        let info = state.write(bucket, key, body.into(), &upload.options, Some(etag));
        Ok(CopyResult::Copied { etag: info.etag })
    }

    async fn abort_multipart(&self, _bucket: &str, _key: &str, upload_id: &str) -> Result<()> {
        self.state().uploads.remove(upload_id);
        Ok(())
    }
}

fn no_such(operation: &'static str, bucket: &str, key: &str, message: &str) -> Error {
    Error::S3 {
        operation,
        bucket: bucket.to_string(),
        key: key.to_string(),
        message: message.to_string(),
        retryable: false,
        source: None,
    }
}

#[cfg(test)]
mod tests;
