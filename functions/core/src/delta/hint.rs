//! An object store that hides `_delta_log/_last_checkpoint` from the Delta reader.
//!
//! `_last_checkpoint` is the one Delta file rewritten in place: a stale or forged one (a bad
//! sync, a hand edit, a backup that kept an older copy) points at a checkpoint that is not
//! there, and `delta_kernel` then refuses every read at or above its version ("had a
//! _last_checkpoint hint but didn't find any checkpoints"). Lifeboat's reads do without the
//! hint: the reader lists the log and finds the checkpoints itself, which is what the hint only
//! speeds up. Everything else passes through unchanged.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use delta_kernel::object_store::path::Path;
use delta_kernel::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use futures::stream::{BoxStream, StreamExt};

const HINT: &str = "_last_checkpoint";

/// `inner`, without `_delta_log/_last_checkpoint`.
#[derive(Debug)]
pub struct WithoutCheckpointHint<T> {
    inner: T,
}

impl<T> WithoutCheckpointHint<T> {
    pub fn new(inner: T) -> Self {
        WithoutCheckpointHint { inner }
    }
}

/// Whether `path` is a table's `_delta_log/_last_checkpoint`.
pub fn is_hint(path: &Path) -> bool {
    let text = path.as_ref();
    text == "_delta_log/_last_checkpoint" || text.ends_with("/_delta_log/_last_checkpoint")
}

fn not_found(path: &Path) -> delta_kernel::object_store::Error {
    delta_kernel::object_store::Error::NotFound {
        path: path.to_string(),
        source: format!("{HINT} is not read: Lifeboat finds checkpoints by listing the log").into(),
    }
}

impl<T: fmt::Display> fmt::Display for WithoutCheckpointHint<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (without {HINT})", self.inner)
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for WithoutCheckpointHint<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if is_hint(location) {
            return Err(not_found(location));
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if is_hint(location) {
            return Err(not_found(location));
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner
            .list(prefix)
            .filter(|m| futures::future::ready(!matches!(m, Ok(meta) if is_hint(&meta.location))))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner
            .list_with_offset(prefix, offset)
            .filter(|m| futures::future::ready(!matches!(m, Ok(meta) if is_hint(&meta.location))))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|m| !is_hint(&m.location));
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use delta_kernel::object_store::memory::InMemory;
    use delta_kernel::object_store::ObjectStoreExt;
    use futures::TryStreamExt;

    #[test]
    fn the_hint_is_hidden_and_nothing_else() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store = WithoutCheckpointHint::new(InMemory::new());
            for key in [
                "t/_delta_log/_last_checkpoint",
                "t/_delta_log/00000000000000000000.json",
                "t/part-0.parquet",
                "_delta_log/_last_checkpoint",
            ] {
                store
                    .put(&Path::from(key), PutPayload::from_static(b"{}"))
                    .await
                    .unwrap();
            }
            let listed: Vec<String> = store
                .list(None)
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap();
            assert_eq!(
                listed.len(),
                2,
                "only the commit and the data file: {listed:?}"
            );
            let err = store
                .get(&Path::from("t/_delta_log/_last_checkpoint"))
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                delta_kernel::object_store::Error::NotFound { .. }
            ));
            assert!(store
                .get(&Path::from("t/_delta_log/00000000000000000000.json"))
                .await
                .is_ok());
        });
    }
}
