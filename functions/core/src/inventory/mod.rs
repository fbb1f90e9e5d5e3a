//! S3 Inventory reports: what a bucket held, listed by S3 itself, so that a backfill of
//! millions of objects starts from one report instead of a listing of the whole bucket.
//!
//! - [`manifest`]: the report's `manifest.json` (`sourceBucket`, `destinationBucket`,
//!   `fileFormat` CSV | Parquet | ORC, `fileSchema`, `files[{key, size, MD5checksum}]`).
//! - [`data`]: its data files: gzipped CSV with the columns `fileSchema` names (keys
//!   URL-encoded, as the documentation says of the CSV format), or Parquet (read with the
//!   parquet reader `delta_kernel` brings). ORC is refused with a clear error.
//! - [`generate`]: writes reports in the same format (moto has no S3 Inventory), for the
//!   tests and the benchmarks.
//! - [`backfill`]: copy exactly what the report lists that the backup lacks, fanned out
//!   through the replicator's queue or copied in-process.

pub mod backfill;
pub mod data;
pub mod generate;
pub mod manifest;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::store::Store;

pub use backfill::{backfill_from_inventory, InventoryBackfillSummary};
pub use manifest::{FileFormat, InventoryManifest};

/// One line of an inventory list: one object (or, in a report of all versions, one version
/// or delete marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    pub bucket: String,
    /// Decoded.
    pub key: String,
    pub version_id: Option<String>,
    /// Only in reports of all versions.
    pub is_latest: Option<bool>,
    pub is_delete_marker: Option<bool>,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// A report read whole: its manifest and every row of its data files.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub manifest: InventoryManifest,
    pub rows: Vec<InventoryRow>,
}

/// Reads the report whose `manifest.json` is `s3://bucket/key`: the manifest, then each data
/// file from the destination bucket, checked against the manifest's size and MD5.
pub async fn read<S: Store>(store: &S, bucket: &str, key: &str) -> Result<Inventory> {
    let body = store
        .get(bucket, key, None)
        .await?
        .ok_or_else(|| Error::bad_input(format!("no inventory manifest at s3://{bucket}/{key}")))?;
    let manifest = InventoryManifest::parse(&body)?;
    let columns = manifest.columns()?;
    let files_bucket = manifest.destination_bucket_name().to_string();
    let mut rows = Vec::new();
    for file in &manifest.files {
        let data = store
            .get(&files_bucket, &file.key, None)
            .await?
            .ok_or_else(|| {
                Error::bad_input(format!(
                    "inventory data file s3://{files_bucket}/{} is missing",
                    file.key
                ))
            })?;
        let md5: String = Md5::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if data.len() as u64 != file.size || !md5.eq_ignore_ascii_case(&file.md5_checksum) {
            return Err(Error::bad_input(format!(
                "inventory data file s3://{files_bucket}/{} is not what the manifest lists \
                 ({} bytes, MD5 {md5}; the manifest says {} bytes, MD5 {})",
                file.key,
                data.len(),
                file.size,
                file.md5_checksum
            )));
        }
        rows.extend(data::read_file(manifest.file_format, &columns, data)?);
    }
    Ok(Inventory { manifest, rows })
}
