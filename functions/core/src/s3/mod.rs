//! The production [`Store`]: `aws-sdk-s3`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, MetadataDirective,
    ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::keys::encode_copy_source;
use crate::store::{
    bare_etag, Checksum, CopyResult, FolderPage, ListPage, ObjectInfo, PutResult, SourcePin, Store,
    WriteOptions,
};

mod clients;
mod kernel_store;

pub use clients::{ClientSettings, Clients, DEFAULT_MAX_ATTEMPTS};
pub use kernel_store::SdkObjectStore;

/// [`Store`] over an `aws-sdk-s3` client.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    settings: ClientSettings,
}

impl S3Store {
    /// A store over `client`, which was built from the process environment (the Delta reader
    /// reads through it too).
    pub fn new(client: Client) -> Self {
        S3Store {
            client,
            settings: ClientSettings::from_env(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This store with the expected owner of each bucket
    /// ([`crate::Config::bucket_owners`]) sent on every request.
    pub fn with_bucket_owners(mut self, owners: BTreeMap<String, String>) -> Self {
        self.settings.bucket_owners = owners;
        self
    }

    /// The account expected to own `bucket`, if configured.
    fn owner(&self, bucket: &str) -> Option<String> {
        self.settings.bucket_owners.get(bucket).cloned()
    }

    /// One ListObjectsV2 page under `prefix`, after `start_after` when given.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        continuation: Option<String>,
    ) -> Result<ListPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|err| s3_error("ListObjectsV2", bucket, prefix, err))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: bare_etag(o.e_tag().unwrap_or_default()),
                    version_id: None,
                    last_modified: to_chrono(o.last_modified()),
                    metadata: HashMap::new(),
                    checksum: None,
                })
            })
            .collect();
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

pub(crate) fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

pub(crate) fn s3_error<E>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    err: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = status_of(&err);
    let code = err.code().map(str::to_string);
    let retryable = match &err {
        SdkError::ServiceError(_) => {
            matches!(status, Some(s) if s >= 500 || s == 429)
                || matches!(
                    code.as_deref(),
                    Some("SlowDown" | "Throttling" | "RequestTimeout" | "InternalError")
                )
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    let detail = match (&code, err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        // A HEAD response has no body to carry a code.
        (None, _) if status == Some(403) => "Forbidden".to_string(),
        _ => format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
    };
    let mut message = match status {
        Some(status) => format!("HTTP {status} {detail}"),
        None => detail,
    };
    if status == Some(403) {
        // S3 answers a wrong ExpectedBucketOwner exactly as it answers a missing permission.
        message.push_str(" (the role may not do this, or the bucket is owned by another account than the one expected: LIFEBOAT_BACKUP_ACCOUNT_ID / LIFEBOAT_SOURCE_ACCOUNT_ID)");
    }
    Error::S3 {
        operation,
        bucket: bucket.to_string(),
        key: key.to_string(),
        message,
        retryable,
        source: Some(Box::new(err)),
    }
}

fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    status_of(err) == Some(404)
        || matches!(err.code(), Some("NoSuchKey" | "NotFound" | "NoSuchVersion"))
}

fn is_precondition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    status_of(err) == Some(412) || err.code() == Some("PreconditionFailed")
}

fn to_chrono(time: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    time.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl Store for S3Store {
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectInfo>> {
        let result = self
            .client
            .head_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match result {
            Ok(out) => {
                let full_object = out.checksum_type() != Some(&ChecksumType::Composite);
                let checksum = [
                    ("CRC64NVME", out.checksum_crc64_nvme()),
                    ("CRC32", out.checksum_crc32()),
                    ("CRC32C", out.checksum_crc32_c()),
                    ("SHA256", out.checksum_sha256()),
                    ("SHA1", out.checksum_sha1()),
                ]
                .into_iter()
                .find_map(|(algorithm, value)| {
                    value.map(|v| Checksum {
                        algorithm: algorithm.to_string(),
                        value: v.to_string(),
                        // A composite checksum carries its part count (`value-N`).
                        full_object: full_object && !v.contains('-'),
                    })
                });
                Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: out.content_length().unwrap_or(0).max(0) as u64,
                    etag: bare_etag(out.e_tag().unwrap_or_default()),
                    version_id: out.version_id().map(str::to_string),
                    last_modified: to_chrono(out.last_modified()),
                    metadata: out.metadata().cloned().unwrap_or_default(),
                    checksum,
                }))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(s3_error("HeadObject", bucket, key, err)),
        }
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<Bytes>> {
        let result = self
            .client
            .get_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| Error::S3 {
                    operation: "GetObject",
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    message: format!("reading the body: {e}"),
                    retryable: true,
                    source: Some(Box::new(e)),
                })?;
                Ok(Some(body.into_bytes()))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(s3_error("GetObject", bucket, key, err)),
        }
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
    ) -> Result<PutResult> {
        let if_absent = options.if_absent;
        // A Content-MD5 lets the put through buckets with Object Lock default retention.
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .content_md5(md5)
            .set_metadata(Some(options.metadata.clone()))
            .set_content_type(options.content_type.clone())
            .body(ByteStream::from(body));
        if if_absent {
            request = request.if_none_match("*");
        }
        request = apply_storage(
            request,
            options,
            |r, class| r.storage_class(class),
            |r, kms| {
                r.server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms)
            },
        );
        match request.send().await {
            Ok(out) => Ok(PutResult::Written {
                etag: bare_etag(out.e_tag().unwrap_or_default()),
            }),
            Err(err)
                if if_absent && (is_precondition_failed(&err) || status_of(&err) == Some(409)) =>
            {
                Ok(PutResult::PreconditionFailed)
            }
            Err(err) => Err(s3_error("PutObject", bucket, key, err)),
        }
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ListPage> {
        self.list_objects(bucket, prefix, None, continuation).await
    }

    async fn list_page_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        continuation: Option<String>,
    ) -> Result<ListPage> {
        self.list_objects(bucket, prefix, Some(start_after), continuation)
            .await
    }

    async fn list_folders(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<FolderPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .prefix(prefix)
            .delimiter("/")
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|err| s3_error("ListObjectsV2", bucket, prefix, err))?;
        let folders = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_string))
            .collect();
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok(FolderPage { folders, next })
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
        let mut request = self
            .client
            .copy_object()
            .copy_source(encode_copy_source(
                source_bucket,
                source_key,
                pin.version_id.as_deref(),
            ))
            .set_copy_source_if_match(pin.if_match_etag.as_ref().map(|e| format!("\"{e}\"")))
            .set_expected_source_bucket_owner(self.owner(source_bucket))
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(options.metadata.clone()))
            .set_content_type(options.content_type.clone())
            .set_if_none_match(options.if_absent.then(|| "*".to_string()));
        request = apply_storage(
            request,
            options,
            |r, class| r.storage_class(class),
            |r, kms| {
                r.server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms)
            },
        );
        match request.send().await {
            Ok(out) => Ok(CopyResult::Copied {
                etag: bare_etag(
                    out.copy_object_result()
                        .and_then(|r| r.e_tag())
                        .unwrap_or_default(),
                ),
            }),
            Err(err) if is_precondition_failed(&err) => Ok(CopyResult::PreconditionFailed),
            Err(err) if is_not_found(&err) => Ok(CopyResult::SourceGone),
            Err(err) => Err(s3_error("CopyObject", bucket, key, err)),
        }
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> Result<String> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .set_metadata(Some(options.metadata.clone()))
            .set_content_type(options.content_type.clone());
        request = apply_storage(
            request,
            options,
            |r, class| r.storage_class(class),
            |r, kms| {
                r.server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms)
            },
        );
        let out = request
            .send()
            .await
            .map_err(|err| s3_error("CreateMultipartUpload", bucket, key, err))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| Error::S3 {
                operation: "CreateMultipartUpload",
                bucket: bucket.to_string(),
                key: key.to_string(),
                message: "the response has no upload id".into(),
                retryable: true,
                source: None,
            })
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
        let result = self
            .client
            .upload_part_copy()
            .copy_source(encode_copy_source(
                source_bucket,
                source_key,
                pin.version_id.as_deref(),
            ))
            .set_copy_source_if_match(pin.if_match_etag.as_ref().map(|e| format!("\"{e}\"")))
            .copy_source_range(format!("bytes={first}-{last}"))
            .set_expected_source_bucket_owner(self.owner(source_bucket))
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Ok(bare_etag(
                out.copy_part_result()
                    .and_then(|r| r.e_tag())
                    .unwrap_or_default(),
            ))),
            Err(err) if is_precondition_failed(&err) => Ok(Err(CopyResult::PreconditionFailed)),
            Err(err) if is_not_found(&err) && err.code() != Some("NoSuchUpload") => {
                Ok(Err(CopyResult::SourceGone))
            }
            Err(err) => Err(s3_error("UploadPartCopy", bucket, key, err)),
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
        let if_absent = options.if_absent;
        let parts = parts
            .into_iter()
            .map(|(n, etag)| {
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(format!("\"{etag}\""))
                    .build()
            })
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_none_match(if_absent.then(|| "*".to_string()))
            .send()
            .await;
        match out {
            Ok(out) => Ok(CopyResult::Copied {
                etag: bare_etag(out.e_tag().unwrap_or_default()),
            }),
            Err(err) if if_absent && is_precondition_failed(&err) => {
                Ok(CopyResult::PreconditionFailed)
            }
            Err(err) => Err(s3_error("CompleteMultipartUpload", bucket, key, err)),
        }
    }

    /// The reader reads through this store's client ([`SdkObjectStore`]): its requests carry
    /// the bucket's expected owner like every other request of this store.
    async fn delta_reader(&self, bucket: &str) -> Result<crate::delta::KernelReader> {
        let store = SdkObjectStore::new(self.client.clone(), bucket, self.owner(bucket));
        Ok(crate::delta::KernelReader::new(bucket, store))
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .set_expected_bucket_owner(self.owner(bucket))
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|err| s3_error("AbortMultipartUpload", bucket, key, err))?;
        Ok(())
    }
}

/// Applies the storage class and KMS key to any request builder that has them.
fn apply_storage<B>(
    mut request: B,
    options: &WriteOptions,
    with_class: impl Fn(B, StorageClass) -> B,
    with_kms: impl Fn(B, String) -> B,
) -> B {
    if let Some(class) = &options.storage_class {
        request = with_class(request, StorageClass::from(class.as_str()));
    }
    if let Some(kms) = &options.kms_key_id {
        request = with_kms(request, kms.clone());
    }
    request
}
