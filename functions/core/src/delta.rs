//! Delta log reading over the backup (or any) bucket: which log files exist, the live files of a
//! version, and, for every version, whether everything it needs is there.
//!
//! Snapshots at checkpoints and at restore points come from `delta_kernel` (classic, multi-part
//! and V2 checkpoints with sidecars, deletion vectors, column mapping). Between anchors, the
//! verifier walks commit JSON files forward itself, one GET per commit, so that checking every
//! version of a 10,000-version table costs one read per log file rather than one replay per
//! version.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use delta_kernel::actions::deletion_vector::DeletionVectorDescriptor;
use delta_kernel::arrow::array::{Array, ArrayRef, AsArray, MapArray, StructArray};
use delta_kernel::arrow::compute::cast;
use delta_kernel::arrow::datatypes::DataType;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::object_store::aws::AmazonS3Builder;
use delta_kernel::Snapshot;
use delta_kernel_default_engine::executor::tokio::TokioBackgroundExecutor;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder};
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::keys::S3Location;

/// The kind of a file under `_delta_log/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFileKind {
    Commit,
    /// A classic single-file checkpoint.
    Checkpoint,
    /// Part `part` of `parts` of a multi-part checkpoint.
    CheckpointPart {
        part: u32,
        parts: u32,
    },
    /// A V2 checkpoint (`N.checkpoint.<uuid>.json|parquet`).
    CheckpointV2,
    /// `N.M.compacted.json`.
    Compacted {
        to: u64,
    },
    Crc,
    LastCheckpoint,
    Sidecar,
    Other,
}

/// Classifies a name relative to `_delta_log/`; returns the version it belongs to, if any.
pub fn classify_log_file(name: &str) -> (LogFileKind, Option<u64>) {
    if name == "_last_checkpoint" {
        return (LogFileKind::LastCheckpoint, None);
    }
    if name.starts_with("_sidecars/") {
        return (LogFileKind::Sidecar, None);
    }
    let parts: Vec<&str> = name.split('.').collect();
    let version = parts
        .first()
        .filter(|p| p.len() == 20 && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u64>().ok());
    let Some(version) = version else {
        return (LogFileKind::Other, None);
    };
    let kind = match parts.as_slice() {
        [_, "json"] => LogFileKind::Commit,
        [_, "crc"] => LogFileKind::Crc,
        [_, "checkpoint", "parquet"] => LogFileKind::Checkpoint,
        [_, "checkpoint", part, parts, "parquet"] => match (part.parse(), parts.parse()) {
            (Ok(part), Ok(parts)) => LogFileKind::CheckpointPart { part, parts },
            _ => LogFileKind::Other,
        },
        [_, "checkpoint", _uuid, "json" | "parquet"] => LogFileKind::CheckpointV2,
        [_, to, "compacted", "json"] => match to.parse() {
            Ok(to) => LogFileKind::Compacted { to },
            Err(_) => LogFileKind::Other,
        },
        _ => LogFileKind::Other,
    };
    (kind, Some(version))
}

pub use crate::listing::TableListing;

/// The path of commit `version`, relative to the table root.
pub fn commit_path(version: u64) -> String {
    format!("_delta_log/{version:020}.json")
}

impl TableListing {
    /// The log files, by version, with their kinds.
    pub fn log(&self) -> LogFiles {
        let mut log = LogFiles::default();
        for (relative, _) in self.iter() {
            let Some(name) = relative.strip_prefix("_delta_log/") else {
                continue;
            };
            let (kind, version) = classify_log_file(name);
            match (kind, version) {
                (LogFileKind::Commit, Some(v)) => {
                    log.commits.insert(v);
                }
                (
                    kind @ (LogFileKind::Checkpoint
                    | LogFileKind::CheckpointPart { .. }
                    | LogFileKind::CheckpointV2),
                    Some(v),
                ) => {
                    log.checkpoints
                        .entry(v)
                        .or_default()
                        .push((kind, relative.into()));
                }
                _ => {}
            }
            log.all.push(relative.into());
        }
        log
    }
}

/// The log of one table, as listed.
#[derive(Debug, Default, Clone)]
pub struct LogFiles {
    /// The versions with a commit file (`_delta_log/<version:020>.json`).
    pub commits: BTreeSet<u64>,
    /// Checkpoint files by version, with their paths relative to the table root.
    pub checkpoints: BTreeMap<u64, Vec<(LogFileKind, Box<str>)>>,
    /// Every path under `_delta_log/`, relative to the table root, sorted.
    pub all: Vec<Box<str>>,
}

impl LogFiles {
    pub fn latest_version(&self) -> Option<u64> {
        let commit = self.commits.last().copied();
        let checkpoint = self.checkpoints.keys().next_back().copied();
        commit.max(checkpoint)
    }

    pub fn earliest_version(&self) -> Option<u64> {
        let commit = self.commits.first().copied();
        let checkpoint = self.checkpoints.keys().next().copied();
        match (commit, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the checkpoint at `version` has all its files (every part of a multi-part
    /// checkpoint; sidecars of V2 checkpoints are checked when the kernel reads it).
    pub fn checkpoint_complete(&self, version: u64) -> bool {
        let Some(files) = self.checkpoints.get(&version) else {
            return false;
        };
        if files
            .iter()
            .any(|(k, _)| matches!(k, LogFileKind::Checkpoint | LogFileKind::CheckpointV2))
        {
            return true;
        }
        // Multi-part: some writer's complete set of parts 1..=n.
        let mut by_parts: HashMap<u32, Vec<u32>> = HashMap::new();
        for (kind, _) in files {
            if let LogFileKind::CheckpointPart { part, parts } = kind {
                by_parts.entry(*parts).or_default().push(*part);
            }
        }
        by_parts.into_iter().any(|(n, mut seen)| {
            seen.sort_unstable();
            seen.dedup();
            seen.len() as u32 == n && seen.first() == Some(&1) && seen.last() == Some(&n)
        })
    }

    /// Log paths (relative to the table root) that belong to versions up to `version`.
    pub fn paths_up_to(&self, version: u64) -> Vec<String> {
        self.all
            .iter()
            .filter(|p| {
                let name = &p["_delta_log/".len()..];
                match classify_log_file(name) {
                    (LogFileKind::Compacted { to }, _) => to <= version,
                    (_, Some(v)) => v <= version,
                    // Sidecars are referenced by V2 checkpoints; keep them all.
                    (LogFileKind::Sidecar, None) => true,
                    _ => false,
                }
            })
            .map(|p| p.to_string())
            .collect()
    }
}

/// A deletion vector file a live file needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DvFile {
    /// Path relative to the table root (decoded), or an absolute `s3://` URL outside it.
    pub path: String,
    /// The file must be at least this large (offset + size of the vector).
    pub min_size: u64,
}

/// A file live in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Path relative to the table root (decoded), or an absolute URL outside it.
    pub path: String,
    pub size: u64,
    pub dv: Option<DvFile>,
}

/// The table root as a URL (`s3://bucket/prefix/`), as the kernel and Delta paths use it.
pub fn table_url(table: &S3Location) -> Result<Url> {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'=');
    let mut text = format!("s3://{}/", table.bucket);
    for segment in table.prefix.split('/').filter(|s| !s.is_empty()) {
        text.push_str(&percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string());
        text.push('/');
    }
    Url::parse(&text).map_err(|e| Error::BadLocation {
        location: table.to_string(),
        reason: e.to_string(),
    })
}

/// Turns a path from an `add`/`remove` action (URL-encoded, relative or absolute) into a path
/// relative to the table root, or keeps an absolute URL for files outside it.
pub fn resolve_action_path(root: &Url, path: &str) -> String {
    if path.contains("://") {
        if let Some(rest) = path.strip_prefix(root.as_str()) {
            return decode(rest);
        }
        return path.to_string();
    }
    decode(path)
}

fn decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The file a deletion-vector descriptor (as JSON) points at, if it is not inline.
pub fn dv_file(root: &Url, descriptor: &Value) -> Result<Option<DvFile>> {
    let dv: DeletionVectorDescriptor = serde_json::from_value(descriptor.clone()).map_err(|e| {
        Error::delta(
            root.as_str(),
            format!("bad deletion vector descriptor {descriptor}: {e}"),
        )
    })?;
    dv_file_of(root, &dv)
}

fn dv_file_of(root: &Url, dv: &DeletionVectorDescriptor) -> Result<Option<DvFile>> {
    let url = dv
        .absolute_path(root)
        .map_err(|e| Error::delta(root.as_str(), format!("deletion vector path: {e}")))?;
    Ok(url.map(|url| DvFile {
        path: resolve_action_path(root, url.as_str()),
        min_size: (dv.offset.unwrap_or(0).max(0) as u64) + dv.size_in_bytes.max(0) as u64,
    }))
}

/// Reads snapshots with `delta_kernel` over S3 (the SDK's usual environment: region, endpoint,
/// credentials).
pub struct KernelReader {
    engine: Arc<DefaultEngine<TokioBackgroundExecutor>>,
    bucket: String,
}

impl KernelReader {
    pub fn for_bucket(bucket: &str) -> Result<Self> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok();
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        if let Ok(region) = std::env::var("AWS_REGION") {
            builder = builder.with_region(region);
        }
        let store = builder
            .build()
            .map_err(|e| Error::delta(format!("s3://{bucket}"), format!("object store: {e}")))?;
        Ok(KernelReader {
            engine: Arc::new(DefaultEngineBuilder::new(Arc::new(store)).build()),
            bucket: bucket.to_string(),
        })
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

    /// The snapshot of `table` at `version` (latest when `None`): its metadata and protocol
    /// actions and every live file with the fields its `add` action carried. Blocking.
    pub fn snapshot(&self, table: &S3Location, version: Option<u64>) -> Result<SnapshotDetail> {
        debug_assert_eq!(table.bucket, self.bucket);
        let root = table_url(table)?;
        let kernel = |e: delta_kernel::KernelError| Error::delta(table.to_string(), e.to_string());
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
    pub files: Vec<FileEntry>,
}

/// A live file with what its `add` action said.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    /// The path as the log has it (URL-encoded, relative or absolute).
    pub raw_path: String,
    /// Relative to the table root, decoded (or an absolute URL outside it).
    pub path: String,
    pub size: u64,
    pub modification_time: i64,
    pub partition_values: serde_json::Map<String, Value>,
    pub stats: Option<String>,
    /// The deletion-vector descriptor, as JSON.
    pub deletion_vector: Option<Value>,
    pub dv_file: Option<DvFile>,
    pub tags: Option<serde_json::Map<String, Value>>,
    pub base_row_id: Option<i64>,
    pub default_row_commit_version: Option<i64>,
}

impl FileEntry {
    /// The logical file: its path and deletion vector (a file whose vector changed is another
    /// logical file).
    pub fn identity(&self) -> (String, Option<String>) {
        (
            self.raw_path.clone(),
            self.deletion_vector.as_ref().map(|d| {
                format!(
                    "{}{}@{}",
                    d["storageType"], d["pathOrInlineDv"], d["offset"]
                )
            }),
        )
    }

    /// The `add` action that puts this file back (dataChange, as a RESTORE does).
    pub fn add_action(&self) -> Value {
        let mut add = serde_json::json!({
            "path": self.raw_path,
            "partitionValues": self.partition_values,
            "size": self.size,
            "modificationTime": self.modification_time,
            "dataChange": true,
        });
        let object = add.as_object_mut().expect("object");
        if let Some(stats) = &self.stats {
            object.insert("stats".into(), Value::String(stats.clone()));
        }
        if let Some(dv) = &self.deletion_vector {
            object.insert("deletionVector".into(), dv.clone());
        }
        if let Some(tags) = &self.tags {
            object.insert("tags".into(), Value::Object(tags.clone()));
        }
        if let Some(id) = self.base_row_id {
            object.insert("baseRowId".into(), id.into());
        }
        if let Some(v) = self.default_row_commit_version {
            object.insert("defaultRowCommitVersion".into(), v.into());
        }
        serde_json::json!({ "add": add })
    }

    /// The `remove` action that takes this file out of the table.
    pub fn remove_action(&self, deletion_timestamp: i64) -> Value {
        let mut remove = serde_json::json!({
            "path": self.raw_path,
            "deletionTimestamp": deletion_timestamp,
            "dataChange": true,
            "extendedFileMetadata": true,
            "partitionValues": self.partition_values,
            "size": self.size,
        });
        let object = remove.as_object_mut().expect("object");
        if let Some(dv) = &self.deletion_vector {
            object.insert("deletionVector".into(), dv.clone());
        }
        if let Some(id) = self.base_row_id {
            object.insert("baseRowId".into(), id.into());
        }
        if let Some(v) = self.default_row_commit_version {
            object.insert("defaultRowCommitVersion".into(), v.into());
        }
        serde_json::json!({ "remove": remove })
    }
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

/// The actions of one commit that matter for backup and restore.
#[derive(Debug, Default, Clone)]
pub struct Commit {
    pub adds: Vec<LiveFile>,
    /// Paths (relative, decoded) of removed files.
    pub removes: Vec<String>,
    /// In-commit timestamp when present, else `commitInfo.timestamp` (milliseconds).
    pub timestamp_ms: Option<i64>,
    pub operation: Option<String>,
}

/// Parses a commit JSON file (one action per line).
pub fn parse_commit(root: &Url, version: u64, body: &[u8]) -> Result<Commit> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::delta(root.as_str(), format!("commit {version} is not UTF-8")))?;
    let mut commit = Commit::default();
    let mut actions = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let action: Value = serde_json::from_str(line).map_err(|e| {
            Error::delta(
                root.as_str(),
                format!("commit {version} line {}: not JSON ({e})", n + 1),
            )
        })?;
        let Some(object) = action.as_object() else {
            return Err(Error::delta(
                root.as_str(),
                format!("commit {version} line {}: not an action", n + 1),
            ));
        };
        actions += 1;
        if let Some(add) = object.get("add") {
            let path = add["path"].as_str().ok_or_else(|| {
                Error::delta(root.as_str(), format!("commit {version}: add without path"))
            })?;
            let dv = match add.get("deletionVector") {
                Some(d) if !d.is_null() => dv_file(root, d)?,
                _ => None,
            };
            commit.adds.push(LiveFile {
                path: resolve_action_path(root, path),
                size: add["size"].as_u64().unwrap_or(0),
                dv,
            });
        } else if let Some(remove) = object.get("remove") {
            if let Some(path) = remove["path"].as_str() {
                commit.removes.push(resolve_action_path(root, path));
            }
        } else if let Some(info) = object.get("commitInfo") {
            commit.timestamp_ms = info["inCommitTimestamp"]
                .as_i64()
                .or(info["timestamp"].as_i64())
                .or(commit.timestamp_ms);
            commit.operation = info["operation"].as_str().map(str::to_string);
        }
    }
    if actions == 0 {
        return Err(Error::delta(
            root.as_str(),
            format!("commit {version} is empty"),
        ));
    }
    Ok(commit)
}
