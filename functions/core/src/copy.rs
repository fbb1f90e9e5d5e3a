//! The copy engine: server-side copies pinned to the content an event described, with CopyObject
//! below a threshold and parallel UploadPartCopy above it.

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::config::Config;
use crate::error::Result;
use crate::store::{CopyResult, SourcePin, Store, WriteOptions};

/// How the engine copies.
#[derive(Debug, Clone)]
pub struct CopySettings {
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
    pub concurrency: usize,
}

impl From<&Config> for CopySettings {
    fn from(config: &Config) -> Self {
        CopySettings {
            multipart_threshold_bytes: config.multipart_threshold_bytes,
            part_size_bytes: config.part_size_bytes,
            concurrency: config.copy_concurrency,
        }
    }
}

/// One object to copy, server-side.
#[derive(Debug, Clone)]
pub struct CopyRequest<'a> {
    pub source_bucket: &'a str,
    pub source_key: &'a str,
    pub size: u64,
    pub pin: SourcePin,
    pub bucket: &'a str,
    pub key: &'a str,
    pub options: WriteOptions,
}

/// Copies one object; objects above the threshold go through a multipart copy whose parts are
/// copied in parallel. Nothing is left behind on failure: an unfinished upload is aborted.
pub async fn copy_object_pinned<S: Store>(
    store: &S,
    settings: &CopySettings,
    request: &CopyRequest<'_>,
) -> Result<CopyResult> {
    if request.size <= settings.multipart_threshold_bytes {
        return store
            .copy_object(
                request.source_bucket,
                request.source_key,
                &request.pin,
                request.bucket,
                request.key,
                &request.options,
            )
            .await;
    }
    let upload_id = store
        .create_multipart(request.bucket, request.key, &request.options)
        .await?;
    match copy_parts(store, settings, request, &upload_id).await {
        Ok(Ok(parts)) => {
            let completed = store
                .complete_multipart(
                    request.bucket,
                    request.key,
                    &upload_id,
                    parts,
                    &request.options,
                )
                .await?;
            if !matches!(completed, CopyResult::Copied { .. }) {
                abort_quietly(store, request, &upload_id).await;
            }
            Ok(completed)
        }
        Ok(Err(outcome)) => {
            abort_quietly(store, request, &upload_id).await;
            Ok(outcome)
        }
        Err(err) => {
            abort_quietly(store, request, &upload_id).await;
            Err(err)
        }
    }
}

/// The inclusive byte ranges of the parts of an object of `size` bytes.
pub fn part_ranges(size: u64, part_size: u64) -> Vec<(i32, u64, u64)> {
    let mut ranges = Vec::new();
    let mut first = 0;
    let mut number = 1;
    while first < size {
        let last = (first + part_size).min(size) - 1;
        ranges.push((number, first, last));
        first = last + 1;
        number += 1;
    }
    ranges
}

async fn copy_parts<S: Store>(
    store: &S,
    settings: &CopySettings,
    request: &CopyRequest<'_>,
    upload_id: &str,
) -> Result<std::result::Result<Vec<(i32, String)>, CopyResult>> {
    let results: Vec<std::result::Result<(i32, String), CopyResult>> =
        stream::iter(part_ranges(request.size, settings.part_size_bytes))
            .map(|(number, first, last)| async move {
                let part = store
                    .upload_part_copy(
                        request.source_bucket,
                        request.source_key,
                        &request.pin,
                        request.bucket,
                        request.key,
                        upload_id,
                        number,
                        first,
                        last,
                    )
                    .await?;
                Ok::<_, crate::Error>(part.map(|etag| (number, etag)))
            })
            .buffer_unordered(settings.concurrency.max(1))
            .try_collect()
            .await?;
    let mut parts = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(part) => parts.push(part),
            Err(outcome) => return Ok(Err(outcome)),
        }
    }
    parts.sort_by_key(|(number, _)| *number);
    Ok(Ok(parts))
}

async fn abort_quietly<S: Store>(store: &S, request: &CopyRequest<'_>, upload_id: &str) {
    if let Err(err) = store
        .abort_multipart(request.bucket, request.key, upload_id)
        .await
    {
        tracing::warn!(bucket = request.bucket, key = request.key, upload_id, error = %err,
            "could not abort an unfinished multipart copy; the bucket's lifecycle rule for incomplete uploads will clean it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_object() {
        assert_eq!(part_ranges(10, 4), vec![(1, 0, 3), (2, 4, 7), (3, 8, 9)]);
        assert_eq!(part_ranges(8, 4), vec![(1, 0, 3), (2, 4, 7)]);
        assert!(part_ranges(0, 4).is_empty());
    }
}
