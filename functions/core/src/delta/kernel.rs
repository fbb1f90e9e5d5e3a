//! Snapshots read with `delta_kernel` over S3, and the Arrow rows of its scan decoded into
//! [`FileEntry`]s.

use std::sync::Arc;

use delta_kernel::arrow::array::{Array, ArrayRef, AsArray, MapArray, StructArray};
use delta_kernel::arrow::compute::cast;
use delta_kernel::arrow::datatypes::DataType;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::object_store::ObjectStore;
use delta_kernel::Snapshot;
use delta_kernel_default_engine::executor::tokio::TokioBackgroundExecutor;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder};
use serde_json::Value;
use url::Url;

use super::actions::{dv_file, FileEntry, LiveFile};
use super::hint::WithoutCheckpointHint;
use super::{resolve_action_path, table_url};
use crate::error::{Error, Result};
use crate::keys::S3Location;

/// Reads snapshots with `delta_kernel` over one bucket's object store (in production the
/// store's own SDK client: [`crate::s3::SdkObjectStore`]).
pub struct KernelReader {
    engine: Arc<DefaultEngine<TokioBackgroundExecutor>>,
    bucket: String,
}

impl KernelReader {
    /// A reader over `bucket`, reading it through `store`.
    pub fn new(bucket: &str, store: impl ObjectStore) -> Self {
        // Reads find checkpoints by listing the log: a stale or forged `_last_checkpoint`
        // must not make a restorable version unreadable.
        let store = WithoutCheckpointHint::new(store);
        KernelReader {
            engine: Arc::new(DefaultEngineBuilder::new(Arc::new(store)).build()),
            bucket: bucket.to_string(),
        }
    }

    /// The live files of `table` at `version` (latest when `None`), with the version read.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn snapshot_files(
        &self,
        table: &S3Location,
        version: Option<u64>,
    ) -> Result<(u64, Vec<LiveFile>)> {
        let detail = self.snapshot(table, version)?;
        let files = detail
            .files
            .into_iter()
            .map(|f| LiveFile {
                path: f.path,
                size: f.size,
                dv: f.dv_file,
            })
            .collect();
        Ok((detail.version, files))
    }

    /// The `metaData` action (as JSON) of `table` at `version` (latest when `None`), with the
    /// version read; no files are listed. Blocking.
    pub fn metadata(&self, table: &S3Location, version: Option<u64>) -> Result<(u64, Value)> {
        let root = table_url(table)?;
        let kernel = |e: delta_kernel::KernelError| Error::kernel(table.to_string(), e);
        let mut builder = Snapshot::builder_for(root.as_str());
        if let Some(v) = version {
            builder = builder.at_version(v);
        }
        let snapshot = builder.build(self.engine.as_ref()).map_err(kernel)?;
        let metadata = serde_json::to_value(snapshot.table_configuration().metadata())?;
        Ok((snapshot.version(), metadata))
    }

    /// The snapshot of `table` at `version` (latest when `None`): its metadata and protocol
    /// actions and every live file with the fields its `add` action carried. Blocking.
    pub fn snapshot(&self, table: &S3Location, version: Option<u64>) -> Result<SnapshotDetail> {
        debug_assert_eq!(table.bucket, self.bucket);
        let root = table_url(table)?;
        let kernel = |e: delta_kernel::KernelError| Error::kernel(table.to_string(), e);
        let mut builder = Snapshot::builder_for(root.as_str());
        if let Some(v) = version {
            builder = builder.at_version(v);
        }
        let snapshot = builder.build(self.engine.as_ref()).map_err(kernel)?;
        let configuration = snapshot.table_configuration();
        let metadata = serde_json::to_value(configuration.metadata())?;
        let protocol = serde_json::to_value(configuration.protocol())?;
        let in_commit_timestamps = snapshot
            .table_properties()
            .enable_in_commit_timestamps
            .unwrap_or(false);
        let read_version = snapshot.version();
        let domains = snapshot
            .get_domain_metadatas_internal(self.engine.as_ref(), None)
            .map_err(kernel)?
            .into_values()
            .filter(|d| !d.is_removed())
            .map(|d| (d.domain().to_string(), d.configuration().to_string()))
            .collect();
        let scan = snapshot.scan_builder().build().map_err(kernel)?;
        let mut files = Vec::new();
        for metadata in scan.scan_metadata(self.engine.as_ref()).map_err(kernel)? {
            let (data, selection) = metadata.map_err(kernel)?.scan_files.into_parts();
            let data = ArrowEngineData::try_from_engine_data(data).map_err(kernel)?;
            read_scan_rows(&root, data.record_batch(), &selection, &mut files)
                .map_err(|reason| Error::delta(table.to_string(), reason))?;
        }
        Ok(SnapshotDetail {
            version: read_version,
            metadata,
            protocol,
            in_commit_timestamps,
            domains,
            files,
        })
    }
}

/// A snapshot as a restore needs it.
#[derive(Debug, Clone)]
pub struct SnapshotDetail {
    pub version: u64,
    /// The `metaData` action (as JSON).
    pub metadata: Value,
    /// The `protocol` action (as JSON).
    pub protocol: Value,
    pub in_commit_timestamps: bool,
    /// The active `domainMetadata` of the snapshot: domain -> configuration.
    pub domains: std::collections::BTreeMap<String, String>,
    pub files: Vec<FileEntry>,
}

fn strings(array: &dyn Array) -> std::result::Result<Vec<Option<String>>, String> {
    let array = cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
    let array = array.as_string::<i32>();
    Ok((0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i).to_string()))
        .collect())
}

fn integers(array: &dyn Array) -> std::result::Result<Vec<Option<i64>>, String> {
    let array = cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
    let array = array.as_primitive::<delta_kernel::arrow::datatypes::Int64Type>();
    Ok((0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i)))
        .collect())
}

/// A `map<string, string>` column as JSON objects, one per row (None where null).
fn string_maps(
    array: Option<&ArrayRef>,
) -> std::result::Result<Vec<Option<serde_json::Map<String, Value>>>, String> {
    let Some(array) = array else {
        return Ok(Vec::new());
    };
    let Some(map) = array.as_any().downcast_ref::<MapArray>() else {
        return Err("expected a map column".into());
    };
    let keys = strings(map.keys().as_ref())?;
    let values = strings(map.values().as_ref())?;
    let offsets = map.value_offsets();
    Ok((0..map.len())
        .map(|row| {
            (!map.is_null(row)).then(|| {
                (offsets[row] as usize..offsets[row + 1] as usize)
                    .filter_map(|i| {
                        let key = keys[i].clone()?;
                        Some((
                            key,
                            values[i].clone().map(Value::String).unwrap_or(Value::Null),
                        ))
                    })
                    .collect()
            })
        })
        .collect())
}

fn read_scan_rows(
    root: &Url,
    batch: &delta_kernel::arrow::array::RecordBatch,
    selection: &[bool],
    files: &mut Vec<FileEntry>,
) -> std::result::Result<(), String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| format!("scan rows lack the {name} column"))
    };
    let paths = strings(column("path")?.as_ref())?;
    let sizes = integers(column("size")?.as_ref())?;
    let times = integers(column("modificationTime")?.as_ref())?;
    let stats = strings(column("stats")?.as_ref())?;
    let dv_column = column("deletionVector")?;
    let dv = dv_column
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or("deletionVector is not a struct")?;
    let dv_field = |name: &str| {
        dv.column_by_name(name)
            .cloned()
            .ok_or_else(|| format!("deletionVector lacks {name}"))
    };
    let storage = strings(dv_field("storageType")?.as_ref())?;
    let path_or_inline = strings(dv_field("pathOrInlineDv")?.as_ref())?;
    let offsets = integers(dv_field("offset")?.as_ref())?;
    let dv_sizes = integers(dv_field("sizeInBytes")?.as_ref())?;
    let cardinality = integers(dv_field("cardinality")?.as_ref())?;
    let constants_column = column("fileConstantValues")?;
    let constants = constants_column
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or("fileConstantValues is not a struct")?;
    let partition_values = string_maps(constants.column_by_name("partitionValues"))?;
    let tags = string_maps(constants.column_by_name("tags"))?;
    let base_row_ids = match constants.column_by_name("baseRowId") {
        Some(c) => integers(c.as_ref())?,
        None => Vec::new(),
    };
    let row_commit_versions = match constants.column_by_name("defaultRowCommitVersion") {
        Some(c) => integers(c.as_ref())?,
        None => Vec::new(),
    };
    for row in 0..batch.num_rows() {
        if !selection.get(row).copied().unwrap_or(true) {
            continue;
        }
        let Some(path) = &paths[row] else { continue };
        let (deletion_vector, dv_file_needed) =
            match (dv.is_null(row), &storage[row], &path_or_inline[row]) {
                (false, Some(storage), Some(inline)) => {
                    let mut descriptor = serde_json::json!({
                        "storageType": storage,
                        "pathOrInlineDv": inline,
                        "sizeInBytes": dv_sizes[row].unwrap_or(0),
                        "cardinality": cardinality[row].unwrap_or(0),
                    });
                    if let Some(offset) = offsets[row] {
                        descriptor["offset"] = offset.into();
                    }
                    let file = dv_file(root, &descriptor).map_err(|e| e.to_string())?;
                    (Some(descriptor), file)
                }
                _ => (None, None),
            };
        files.push(FileEntry {
            raw_path: path.clone(),
            path: resolve_action_path(root, path),
            size: sizes[row].unwrap_or(0).max(0) as u64,
            modification_time: times[row].unwrap_or(0),
            partition_values: partition_values
                .get(row)
                .cloned()
                .flatten()
                .unwrap_or_default(),
            stats: stats[row].clone(),
            deletion_vector,
            dv_file: dv_file_needed,
            tags: tags.get(row).cloned().flatten(),
            base_row_id: base_row_ids.get(row).copied().flatten(),
            default_row_commit_version: row_commit_versions.get(row).copied().flatten(),
        });
    }
    Ok(())
}
