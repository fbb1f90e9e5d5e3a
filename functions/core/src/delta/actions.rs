//! Commit files, and the `add`/`remove` actions Lifeboat reads from them and writes into a
//! RESTORE commit.

use delta_kernel::actions::deletion_vector::DeletionVectorDescriptor;
use serde_json::Value;
use url::Url;

use super::resolve_action_path;
use crate::error::{Error, Result};

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

/// The actions of one commit that matter for backup and restore.
#[derive(Debug, Default, Clone)]
pub struct Commit {
    pub adds: Vec<LiveFile>,
    /// Change data files (`cdc` actions) this commit wrote: the change data feed of its
    /// version reads them.
    pub cdc: Vec<LiveFile>,
    /// Paths (relative, decoded) of removed files.
    pub removes: Vec<String>,
    /// In-commit timestamp when present, else `commitInfo.timestamp` (milliseconds).
    pub timestamp_ms: Option<i64>,
    /// The in-commit timestamp, when the commit carries one.
    pub ict_ms: Option<i64>,
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
        } else if let Some(cdc) = object.get("cdc") {
            if let Some(path) = cdc["path"].as_str() {
                commit.cdc.push(LiveFile {
                    path: resolve_action_path(root, path),
                    size: cdc["size"].as_u64().unwrap_or(0),
                    dv: None,
                });
            }
        } else if let Some(remove) = object.get("remove") {
            if let Some(path) = remove["path"].as_str() {
                commit.removes.push(resolve_action_path(root, path));
            }
        } else if let Some(info) = object.get("commitInfo") {
            commit.timestamp_ms = info["inCommitTimestamp"]
                .as_i64()
                .or(info["timestamp"].as_i64())
                .or(commit.timestamp_ms);
            commit.ict_ms = info["inCommitTimestamp"].as_i64().or(commit.ict_ms);
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
