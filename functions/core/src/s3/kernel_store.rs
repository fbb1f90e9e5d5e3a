//! The Delta reader's object store: `delta_kernel` reads S3 through the store's own
//! `aws-sdk-s3` client, so its requests carry what every other request of [`super::S3Store`]
//! carries: `ExpectedBucketOwner` (a bucket deleted and re-created by another account is never
//! read as if it were the table's), the retry settings, and the function's credentials and
//! endpoint.
//!
//! Read-only: the reader never writes (Lifeboat writes through [`crate::store::Store`]), so
//! writes, deletes and copies are refused with `NotImplemented`.
//!
//! The kernel runs its futures on its own background runtime; every SDK call here is spawned
//! on the runtime that built the store (where the client's connections live) and its whole
//! answer collected there.

use std::fmt;
use std::future::Future;
use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};
use delta_kernel::object_store::path::Path;
use delta_kernel::object_store::{
    Attributes, CopyOptions, Error, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::runtime::Handle;

const STORE: &str = "S3 (aws-sdk-s3)";

/// One bucket, read with `client`, every request naming `owner` as the expected bucket owner.
#[derive(Clone)]
pub struct SdkObjectStore {
    client: Client,
    bucket: String,
    owner: Option<String>,
    runtime: Handle,
}

impl fmt::Debug for SdkObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkObjectStore")
            .field("bucket", &self.bucket)
            .field("owner", &self.owner)
            .finish()
    }
}

impl fmt::Display for SdkObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(owner) => write!(f, "s3://{} (owner {owner})", self.bucket),
            None => write!(f, "s3://{}", self.bucket),
        }
    }
}

/// The `Range` header of a ranged GET.
pub fn range_header(range: &GetRange) -> String {
    match range {
        GetRange::Bounded(r) => format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
        GetRange::Offset(o) => format!("bytes={o}-"),
        GetRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// The bytes a GET returned and the object's whole size, from its `Content-Range`
/// (`bytes START-END/SIZE`), or the whole object when there is none.
pub fn returned_range(content_range: Option<&str>, length: u64) -> Option<(Range<u64>, u64)> {
    let Some(value) = content_range else {
        return Some((0..length, length));
    };
    let (span, size) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    let size = match size {
        "*" => end + 1,
        s => s.parse().ok()?,
    };
    Some((start..end + 1, size))
}

/// An SDK error as the kernel understands it: missing is `NotFound` (the kernel's
/// "no such file"), a failed condition `Precondition` / `NotModified`, a refusal
/// `PermissionDenied` (also what S3 answers when the bucket's owner is not the expected one).
/// The source is the store's own error, which names the request and what to check.
fn store_error<E>(operation: &'static str, bucket: &str, key: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = super::status_of(&err);
    let missing = matches!(err.code(), Some("NoSuchKey" | "NotFound"));
    let path = key.to_string();
    let source: Box<dyn std::error::Error + Send + Sync> =
        Box::new(super::s3_error(operation, bucket, key, err));
    match status {
        Some(404) => Error::NotFound { path, source },
        _ if missing => Error::NotFound { path, source },
        Some(412) => Error::Precondition { path, source },
        Some(304) => Error::NotModified { path, source },
        Some(403) => Error::PermissionDenied { path, source },
        _ => Error::Generic {
            store: STORE,
            source,
        },
    }
}

fn time(value: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    value
        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

fn smithy_time(t: &DateTime<Utc>) -> aws_sdk_s3::primitives::DateTime {
    aws_sdk_s3::primitives::DateTime::from_secs(t.timestamp())
}

fn not_implemented(operation: &str) -> Error {
    Error::NotImplemented {
        operation: operation.to_string(),
        implementer: "Lifeboat's Delta reader (read-only)".to_string(),
    }
}

/// A listing prefix in object_store's sense: whole path segments.
fn list_prefix(prefix: Option<&Path>) -> String {
    match prefix.map(Path::as_ref) {
        None | Some("") => String::new(),
        Some(p) => format!("{p}/"),
    }
}

impl SdkObjectStore {
    /// Reads `bucket` with `client`; SDK calls run on the current Tokio runtime.
    pub fn new(client: Client, bucket: &str, owner: Option<String>) -> Self {
        SdkObjectStore {
            client,
            bucket: bucket.to_string(),
            owner,
            runtime: Handle::current(),
        }
    }

    /// Runs `task` on the store's runtime and waits for it from wherever the kernel is.
    async fn on_runtime<T: Send + 'static>(
        &self,
        task: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.runtime.spawn(task).await.map_err(|e| Error::Generic {
            store: STORE,
            source: Box::new(e),
        })?
    }

    /// One ListObjectsV2 page: the objects, the common prefixes (with `delimiter`) and the
    /// token of the next page.
    async fn page(
        &self,
        prefix: String,
        start_after: Option<String>,
        delimiter: bool,
        token: Option<String>,
    ) -> Result<(Vec<ObjectMeta>, Vec<Path>, Option<String>)> {
        let request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_expected_bucket_owner(self.owner.clone())
            .prefix(&prefix)
            .set_start_after(start_after)
            .set_delimiter(delimiter.then(|| "/".to_string()))
            .set_continuation_token(token);
        let bucket = self.bucket.clone();
        self.on_runtime(async move {
            let out = request
                .send()
                .await
                .map_err(|e| store_error("ListObjectsV2", &bucket, &prefix, e))?;
            let objects = out
                .contents()
                .iter()
                .map(|o| {
                    Ok(ObjectMeta {
                        location: Path::parse(o.key().unwrap_or_default())?,
                        last_modified: time(o.last_modified()),
                        size: o.size().unwrap_or_default().max(0) as u64,
                        e_tag: o.e_tag().map(str::to_string),
                        version: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let prefixes = out
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .map(|p| Ok(Path::parse(p)?))
                .collect::<Result<Vec<_>>>()?;
            let next = out
                .is_truncated()
                .unwrap_or(false)
                .then(|| out.next_continuation_token().map(str::to_string))
                .flatten();
            Ok((objects, prefixes, next))
        })
        .await
    }

    /// Every object under `prefix` (after `offset`), page by page.
    fn list_after(
        &self,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = list_prefix(prefix);
        let offset = offset.map(|o| o.to_string());
        // (continuation token, first page?) → one page of objects.
        stream::unfold(Some((None::<String>, true)), move |state| {
            let (store, prefix, offset) = (store.clone(), prefix.clone(), offset.clone());
            async move {
                let (token, first) = state?;
                let start_after = if first { offset } else { None };
                match store.page(prefix, start_after, false, token).await {
                    Ok((objects, _, next)) => {
                        Some((Ok(objects), next.map(|token| (Some(token), false))))
                    }
                    Err(err) => Some((Err(err), None)),
                }
            }
        })
        .flat_map(|page: Result<Vec<ObjectMeta>>| match page {
            Ok(objects) => stream::iter(objects.into_iter().map(Ok)).boxed(),
            Err(err) => stream::once(async { Err(err) }).boxed(),
        })
        .boxed()
    }
}

#[async_trait]
impl ObjectStore for SdkObjectStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(not_implemented("put"))
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(not_implemented("put_multipart"))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let key = location.as_ref().to_string();
        let meta = |size: u64, modified, e_tag: Option<&str>, version: Option<&str>| ObjectMeta {
            location: location.clone(),
            last_modified: modified,
            size,
            e_tag: e_tag.map(str::to_string),
            version: version.map(str::to_string),
        };
        if options.head {
            let request = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .set_expected_bucket_owner(self.owner.clone())
                .set_if_match(options.if_match.clone())
                .set_if_none_match(options.if_none_match.clone())
                .set_if_modified_since(options.if_modified_since.as_ref().map(smithy_time))
                .set_if_unmodified_since(options.if_unmodified_since.as_ref().map(smithy_time))
                .set_version_id(options.version.clone());
            let bucket = self.bucket.clone();
            let out = self
                .on_runtime(async move {
                    request
                        .send()
                        .await
                        .map_err(|e| store_error("HeadObject", &bucket, &key, e))
                })
                .await?;
            let size = out.content_length().unwrap_or_default().max(0) as u64;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                meta: meta(
                    size,
                    time(out.last_modified()),
                    out.e_tag(),
                    out.version_id(),
                ),
                range: 0..size,
                attributes: Attributes::default(),
                extensions: Default::default(),
            });
        }
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .set_expected_bucket_owner(self.owner.clone())
            .set_range(options.range.as_ref().map(range_header))
            .set_if_match(options.if_match.clone())
            .set_if_none_match(options.if_none_match.clone())
            .set_if_modified_since(options.if_modified_since.as_ref().map(smithy_time))
            .set_if_unmodified_since(options.if_unmodified_since.as_ref().map(smithy_time))
            .set_version_id(options.version.clone());
        let (task_bucket, task_key) = (self.bucket.clone(), key.clone());
        let (out, body) = self
            .on_runtime(async move {
                let mut out = request
                    .send()
                    .await
                    .map_err(|e| store_error("GetObject", &task_bucket, &task_key, e))?;
                let body = std::mem::take(&mut out.body);
                let bytes = body.collect().await.map_err(|e| Error::Generic {
                    store: STORE,
                    source: Box::new(e),
                })?;
                Ok((out, bytes.into_bytes()))
            })
            .await?;
        let (range, size) =
            returned_range(out.content_range(), body.len() as u64).ok_or_else(|| {
                Error::Generic {
                    store: STORE,
                    source: format!(
                        "s3://{}/{key}: unreadable Content-Range {:?}",
                        self.bucket,
                        out.content_range()
                    )
                    .into(),
                }
            })?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(body) }).boxed()),
            meta: meta(
                size,
                time(out.last_modified()),
                out.e_tag(),
                out.version_id(),
            ),
            range,
            attributes: Attributes::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations.map(|_| Err(not_implemented("delete"))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_after(prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_after(prefix, Some(offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let prefix = list_prefix(prefix);
        let mut listed = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
            extensions: Default::default(),
        };
        let mut token = None;
        loop {
            let (objects, prefixes, next) = self.page(prefix.clone(), None, true, token).await?;
            listed.objects.extend(objects);
            listed.common_prefixes.extend(prefixes);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(listed),
            }
        }
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(not_implemented("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_asked_and_read_back_as_s3_writes_them() {
        let asked = [
            (GetRange::Bounded(0..10), "bytes=0-9"),
            (GetRange::Bounded(100..101), "bytes=100-100"),
            (GetRange::Offset(7), "bytes=7-"),
            (GetRange::Suffix(8), "bytes=-8"),
        ];
        for (range, header) in asked {
            assert_eq!(range_header(&range), header, "{range:?}");
        }
        // (Content-Range, bytes returned) → (the range returned, the object's size)
        type Answer = (Option<&'static str>, u64, Option<(Range<u64>, u64)>);
        let answered: [Answer; 6] = [
            (None, 42, Some((0..42, 42))),
            (Some("bytes 0-9/1000"), 10, Some((0..10, 1000))),
            (Some("bytes 992-999/1000"), 8, Some((992..1000, 1000))),
            (Some("bytes 5-9/*"), 5, Some((5..10, 10))),
            (Some("bytes */1000"), 0, None),
            (Some("items 0-9/10"), 10, None),
        ];
        for (header, length, expected) in answered {
            assert_eq!(returned_range(header, length), expected, "{header:?}");
        }
    }

    #[test]
    fn listings_are_by_whole_segments() {
        assert_eq!(list_prefix(None), "");
        assert_eq!(list_prefix(Some(&Path::from(""))), "");
        assert_eq!(
            list_prefix(Some(&Path::from("sales/orders/_delta_log"))),
            "sales/orders/_delta_log/"
        );
    }
}
