//! The RESTORE commit a rollback writes, as a plain function of two snapshots: the table as
//! it is now and as it was at the restore point. Like Delta's own RESTORE: `remove` every file
//! live now that the restore point lacks, `add` every file the restore point has that is not
//! live now, restore the metadata (keeping the table's id), and record the operation.
//!
//! Invariants:
//! - a logical file is its path and its deletion vector: a file whose vector changed is removed
//!   and re-added;
//! - the commit never goes backwards in time where in-commit timestamps are on: its timestamp
//!   is after the previous commit's;
//! - the protocol never goes down: the commit carries the union of the current and the restore
//!   point's protocols (a rollback to before `DROP FEATURE deletionVectors` brings back files
//!   with deletion vectors, which readers apply only under a protocol that has the feature);
//! - the restore point's `domainMetadata` comes back (clustering columns, user domains), and a
//!   domain it lacks is removed; the row-tracking high-water mark never goes down;
//! - in-commit timestamps stay as they are now (on with an `inCommitTimestamp` in the commit, or
//!   off): the restore point's ICT properties are never written back;
//! - identity-column high-water marks and `delta.columnMapping.maxColumnId` never go down;
//! - files re-added to a table with row tracking that carry no `baseRowId` get fresh row ids;
//! - what Lifeboat cannot commit correctly (an unknown writer feature, an append-only table that
//!   would lose files, a protocol past reader 3 / writer 7) is refused, saying why.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::delta::{FileEntry, SnapshotDetail};
use crate::error::{Error, Result};
use crate::keys::S3Location;

/// The commit a rollback writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlannedCommit {
    pub version: u64,
    pub read_version: u64,
    pub files_to_add: u64,
    pub files_to_remove: u64,
    pub metadata_restored: bool,
    /// The commit carries a `protocol` action (the union of the current and the restore
    /// point's protocols, when it differs from the current one).
    #[serde(default)]
    pub protocol_upgraded: bool,
    /// Domains the commit sets or removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains_changed: Vec<String>,
    /// The first actions, as a person checks them in a dry run.
    pub preview: Vec<Value>,
    /// The actions, one JSON object per line of the commit file.
    #[serde(skip)]
    pub actions: Vec<Value>,
}

impl PlannedCommit {
    /// The commit file's content.
    pub fn body(&self) -> String {
        self.actions.iter().map(|a| format!("{a}\n")).collect()
    }
}

/// How many actions the preview shows.
const PREVIEW_ACTIONS: usize = 12;

/// The RESTORE commit that makes `current` equal to `restore_point`, committed at `now_ms`.
/// `previous_commit_ms` is the time of `current`'s own commit, needed where in-commit
/// timestamps are on.
pub fn restore_commit(
    table: &S3Location,
    restore_point: &SnapshotDetail,
    current: &SnapshotDetail,
    now_ms: i64,
    previous_commit_ms: Option<i64>,
) -> Result<PlannedCommit> {
    let version = restore_point.version;
    if current.version < version {
        return Err(Error::Restore(format!(
            "the source's latest version is {}, older than the restore point {version}: its newest log files are gone. Use mode repair to put them back",
            current.version
        )));
    }
    check_writable(&current.protocol, &current.metadata)?;
    let protocol = union_protocol(&current.protocol, &restore_point.protocol)?;
    check_writable(&protocol, &current.metadata)?;
    let current_ids: HashMap<(String, Option<String>), &FileEntry> =
        current.files.iter().map(|f| (f.identity(), f)).collect();
    let wanted_ids: HashSet<(String, Option<String>)> =
        restore_point.files.iter().map(|f| f.identity()).collect();
    let mut adds: Vec<FileEntry> = restore_point
        .files
        .iter()
        .filter(|f| !current_ids.contains_key(&f.identity()))
        .cloned()
        .collect();
    let removes: Vec<&FileEntry> = current
        .files
        .iter()
        .filter(|f| !wanted_ids.contains(&f.identity()))
        .collect();
    if !removes.is_empty() && current.metadata["configuration"]["delta.appendOnly"] == "true" {
        return Err(Error::UnsupportedTable(format!(
            "{table} is append-only (delta.appendOnly=true): a rollback would remove {} file(s). Clone the restore point elsewhere instead",
            removes.len()
        )));
    }
    let commit_version = current.version + 1;
    let mut domains = restored_domains(restore_point, current)?;
    if has_writer_feature(&protocol, "rowTracking") {
        if let Some(mark) = fresh_row_ids(&mut adds, &domains.row_tracking, commit_version)? {
            domains.set_row_tracking(mark);
        }
    }
    let metadata = restored_metadata(restore_point, current)?;
    let metadata_restored = metadata != current.metadata;
    let protocol_upgraded = protocol != current.protocol;
    if !domains.actions.is_empty() && !has_writer_feature(&protocol, "domainMetadata") {
        return Err(Error::UnsupportedTable(format!(
            "{table}: the rollback must change domain metadata ({}) but neither protocol supports the domainMetadata feature",
            domains.names().join(", ")
        )));
    }
    let mut commit_info = json!({
        "timestamp": now_ms,
        "operation": "RESTORE",
        "operationParameters": {"version": version, "timestamp": null},
        "readVersion": current.version,
        "isolationLevel": "Serializable",
        "isBlindAppend": false,
        "operationMetrics": {
            "numRestoredFiles": adds.len().to_string(),
            "restoredFilesSize": adds.iter().map(|f| f.size).sum::<u64>().to_string(),
            "numRemovedFiles": removes.len().to_string(),
            "removedFilesSize": removes.iter().map(|f| f.size).sum::<u64>().to_string(),
        },
        "engineInfo": format!("Lifeboat/{}", env!("CARGO_PKG_VERSION")),
    });
    if current.in_commit_timestamps {
        commit_info["inCommitTimestamp"] = json!(now_ms.max(previous_commit_ms.unwrap_or(0) + 1));
    }
    // commitInfo first: with in-commit timestamps on, readers take the time from the first
    // action.
    let mut actions = vec![json!({ "commitInfo": commit_info })];
    if protocol_upgraded {
        actions.push(json!({ "protocol": protocol }));
    }
    if metadata_restored {
        actions.push(json!({ "metaData": metadata }));
    }
    let domains_changed = domains.names();
    actions.extend(domains.actions);
    actions.extend(removes.iter().map(|f| f.remove_action(now_ms)));
    actions.extend(adds.iter().map(|f| f.add_action()));
    Ok(PlannedCommit {
        version: commit_version,
        read_version: current.version,
        files_to_add: adds.len() as u64,
        files_to_remove: removes.len() as u64,
        metadata_restored,
        protocol_upgraded,
        domains_changed,
        preview: actions.iter().take(PREVIEW_ACTIONS).cloned().collect(),
        actions,
    })
}

/// Table features a legacy writer version stands for.
fn legacy_writer_features(version: i64) -> Vec<&'static str> {
    let ladder: [(i64, &[&str]); 5] = [
        (2, &["appendOnly", "invariants"]),
        (3, &["checkConstraints"]),
        (4, &["changeDataFeed", "generatedColumns"]),
        (5, &["columnMapping"]),
        (6, &["identityColumns"]),
    ];
    ladder
        .iter()
        .filter(|(v, _)| version >= *v)
        .flat_map(|(_, features)| features.iter().copied())
        .collect()
}

/// Table features a legacy reader version stands for.
fn legacy_reader_features(version: i64) -> Vec<&'static str> {
    if version >= 2 {
        vec!["columnMapping"]
    } else {
        Vec::new()
    }
}

fn versions_of(protocol: &Value) -> (i64, i64) {
    (
        protocol["minReaderVersion"].as_i64().unwrap_or(1),
        protocol["minWriterVersion"].as_i64().unwrap_or(2),
    )
}

/// The features a protocol supports, explicit (table-features form) or implied (legacy).
fn features_of(protocol: &Value, key: &str) -> Vec<String> {
    let (reader, writer) = versions_of(protocol);
    let (explicit, implied) = match key {
        "readerFeatures" => (reader >= 3, legacy_reader_features(reader)),
        _ => (writer >= 7, legacy_writer_features(writer)),
    };
    if explicit {
        protocol[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        implied.into_iter().map(str::to_string).collect()
    }
}

fn has_writer_feature(protocol: &Value, feature: &str) -> bool {
    features_of(protocol, "writerFeatures")
        .iter()
        .any(|f| f == feature)
}

/// The union of two protocols: the higher reader and writer versions, and every feature
/// either supports, in the table-features form when either uses it (legacy versions are turned
/// into the features they stand for, so nothing either supported is lost). Current features
/// come first, in their order.
pub fn union_protocol(current: &Value, restore_point: &Value) -> Result<Value> {
    let (cr, cw) = versions_of(current);
    let (pr, pw) = versions_of(restore_point);
    let (reader, writer) = (cr.max(pr), cw.max(pw));
    if reader > 3 {
        return Err(Error::UnsupportedTable(format!(
            "the table needs reader version {reader}; Lifeboat knows readers up to 3. Use clone"
        )));
    }
    if reader < 3 && writer < 7 {
        return Ok(json!({"minReaderVersion": reader, "minWriterVersion": writer}));
    }
    let union = |key: &str| {
        let mut all = features_of(current, key);
        for f in features_of(restore_point, key) {
            if !all.contains(&f) {
                all.push(f);
            }
        }
        all
    };
    let mut writer_features = union("writerFeatures");
    if reader < 3 {
        // Writer 7 with a legacy reader: readers need no features beyond the legacy ones.
        for f in legacy_reader_features(reader) {
            if !writer_features.iter().any(|w| w == f) {
                writer_features.push(f.to_string());
            }
        }
        return Ok(json!({
            "minReaderVersion": reader,
            "minWriterVersion": 7,
            "writerFeatures": writer_features,
        }));
    }
    let reader_features = union("readerFeatures");
    // Every reader feature is a writer feature too.
    for f in &reader_features {
        if !writer_features.contains(f) {
            writer_features.push(f.clone());
        }
    }
    Ok(json!({
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": reader_features,
        "writerFeatures": writer_features,
    }))
}

/// Properties that record when in-commit timestamps were switched on: always as the table has
/// them now (ICT is never switched back on, nor off, by a rollback).
const ICT_PROPERTIES: [&str; 3] = [
    "delta.enableInCommitTimestamps",
    "delta.inCommitTimestampEnablementVersion",
    "delta.inCommitTimestampEnablementTimestamp",
];

/// The restore point's `metaData`, keeping what must not go back: the table's id, the ICT
/// properties, `delta.columnMapping.maxColumnId` and identity-column high-water marks.
fn restored_metadata(restore_point: &SnapshotDetail, current: &SnapshotDetail) -> Result<Value> {
    let mut metadata = restore_point.metadata.clone();
    if restore_point.metadata == current.metadata {
        return Ok(metadata);
    }
    metadata["id"] = current.metadata["id"].clone();
    let now = &current.metadata["configuration"];
    if !metadata["configuration"].is_object() {
        metadata["configuration"] = json!({});
    }
    let configuration = metadata["configuration"]
        .as_object_mut()
        .expect("an object");
    for key in ICT_PROPERTIES {
        match now.get(key) {
            Some(value) => configuration.insert(key.to_string(), value.clone()),
            None => configuration.remove(key),
        };
    }
    const MAX_COLUMN_ID: &str = "delta.columnMapping.maxColumnId";
    let id = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
    };
    if let Some(highest) = id(now.get(MAX_COLUMN_ID)) {
        if id(configuration.get(MAX_COLUMN_ID)).is_none_or(|then| then < highest) {
            configuration.insert(MAX_COLUMN_ID.into(), Value::String(highest.to_string()));
        }
    }
    if let (Some(then), Some(now)) = (
        metadata["schemaString"].as_str(),
        current.metadata["schemaString"].as_str(),
    ) {
        if let Some(schema) = keep_identity_high_water_marks(then, now)? {
            metadata["schemaString"] = Value::String(schema);
        }
    }
    Ok(metadata)
}

const IDENTITY_HIGH_WATER_MARK: &str = "delta.identity.highWaterMark";

/// The restore point's schema with each identity column's high-water mark kept where the
/// current one is further along (in the column's step direction), so that values the table
/// has handed out are never handed out again. `None` when nothing changes.
fn keep_identity_high_water_marks(then: &str, now: &str) -> Result<Option<String>> {
    if !now.contains(IDENTITY_HIGH_WATER_MARK) {
        return Ok(None);
    }
    let parse = |s: &str| {
        serde_json::from_str::<Value>(s).map_err(|e| {
            Error::UnsupportedTable(format!(
                "the table's schemaString is not JSON ({e}): Lifeboat cannot carry its identity columns over"
            ))
        })
    };
    let (mut restored, current) = (parse(then)?, parse(now)?);
    let key_of = |field: &Value| {
        field["metadata"]["delta.columnMapping.id"]
            .as_i64()
            .map(|id| format!("#{id}"))
            .or_else(|| field["name"].as_str().map(str::to_string))
    };
    let marks: HashMap<String, (i64, i64)> = current["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let mark = f["metadata"][IDENTITY_HIGH_WATER_MARK].as_i64()?;
            let step = f["metadata"]["delta.identity.step"].as_i64().unwrap_or(1);
            Some((key_of(f)?, (mark, step)))
        })
        .collect();
    let mut changed = false;
    for field in restored["fields"].as_array_mut().into_iter().flatten() {
        let Some((mark, step)) = key_of(field).and_then(|k| marks.get(&k).copied()) else {
            continue;
        };
        let meta = &mut field["metadata"];
        if meta.get("delta.identity.start").is_none() {
            continue; // not an identity column at the restore point
        }
        let further = match meta[IDENTITY_HIGH_WATER_MARK].as_i64() {
            None => true,
            Some(then) if step >= 0 => mark > then,
            Some(then) => mark < then,
        };
        if further {
            meta[IDENTITY_HIGH_WATER_MARK] = json!(mark);
            changed = true;
        }
    }
    Ok(changed.then(|| restored.to_string()))
}

const ROW_TRACKING_DOMAIN: &str = "delta.rowTracking";

/// The `domainMetadata` actions of the commit.
struct Domains {
    actions: Vec<Value>,
    /// The row-tracking domain's configuration the table ends with.
    row_tracking: Option<String>,
}

impl Domains {
    fn names(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| a["domainMetadata"]["domain"].as_str().map(str::to_string))
            .collect()
    }

    /// Sets the row-tracking high-water mark (replacing any action for the domain).
    fn set_row_tracking(&mut self, mark: i64) {
        self.actions
            .retain(|a| a["domainMetadata"]["domain"] != ROW_TRACKING_DOMAIN);
        let configuration = json!({"rowIdHighWaterMark": mark}).to_string();
        self.actions.push(json!({"domainMetadata": {
            "domain": ROW_TRACKING_DOMAIN, "configuration": configuration, "removed": false,
        }}));
        self.row_tracking = Some(configuration);
    }
}

fn row_id_high_water_mark(configuration: Option<&String>) -> Option<i64> {
    serde_json::from_str::<Value>(configuration?).ok()?["rowIdHighWaterMark"].as_i64()
}

/// The domains as the restore point has them: set where they differ, removed where the
/// restore point lacks them; the row-tracking high-water mark is the higher of the two (row
/// ids are never handed out twice).
fn restored_domains(restore_point: &SnapshotDetail, current: &SnapshotDetail) -> Result<Domains> {
    let mut actions = Vec::new();
    let names: std::collections::BTreeSet<&String> = restore_point
        .domains
        .keys()
        .chain(current.domains.keys())
        .collect();
    let mut row_tracking = current.domains.get(ROW_TRACKING_DOMAIN).cloned();
    for name in names {
        let (then, now) = (restore_point.domains.get(name), current.domains.get(name));
        if name == ROW_TRACKING_DOMAIN {
            let (t, n) = (row_id_high_water_mark(then), row_id_high_water_mark(now));
            if t.is_some_and(|t| n.is_none_or(|n| t > n)) {
                row_tracking = then.cloned();
                actions.push(json!({"domainMetadata": {
                    "domain": name, "configuration": then, "removed": false,
                }}));
            }
            continue;
        }
        match (then, now) {
            (Some(t), Some(n)) if t == n => {}
            (Some(t), _) => actions.push(json!({"domainMetadata": {
                "domain": name, "configuration": t, "removed": false,
            }})),
            (None, Some(n)) => actions.push(json!({"domainMetadata": {
                "domain": name, "configuration": n, "removed": true,
            }})),
            (None, None) => {}
        }
    }
    Ok(Domains {
        actions,
        row_tracking,
    })
}

/// Gives fresh row ids to re-added files without a `baseRowId` (a table with row tracking
/// whose restore point predates it): each file's rows take the ids after the high-water mark,
/// which moves on. Returns the new mark when it moved. A file whose stats do not say how many
/// rows it holds cannot be given ids: refused.
fn fresh_row_ids(
    adds: &mut [FileEntry],
    row_tracking: &Option<String>,
    commit_version: u64,
) -> Result<Option<i64>> {
    let mut mark = row_id_high_water_mark(row_tracking.as_ref()).unwrap_or(-1);
    let mut moved = false;
    for add in adds.iter_mut().filter(|a| a.base_row_id.is_none()) {
        let records = add
            .stats
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|s| s["numRecords"].as_i64())
            .ok_or_else(|| {
                Error::UnsupportedTable(format!(
                    "the table has row tracking and {} needs fresh row ids, but its stats do not give numRecords: Lifeboat cannot assign them. Clone the restore point elsewhere instead",
                    add.path
                ))
            })?;
        add.base_row_id = Some(mark + 1);
        add.default_row_commit_version = Some(commit_version as i64);
        mark += records;
        moved = true;
    }
    Ok(moved.then_some(mark))
}

/// Writer features a RESTORE commit written by Lifeboat is correct for.
const SUPPORTED_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "generatedColumns",
    "columnMapping",
    "identityColumns",
    "deletionVectors",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "inCommitTimestamp",
    "domainMetadata",
    "typeWidening",
    "typeWidening-preview",
    "rowTracking",
    "clustering",
];

fn check_writable(protocol: &Value, _metadata: &Value) -> Result<()> {
    let version = protocol["minWriterVersion"].as_i64().unwrap_or(0);
    if version > 7 {
        return Err(Error::UnsupportedTable(format!(
            "the table needs writer version {version}; Lifeboat writes up to 7. Use clone"
        )));
    }
    if let Some(features) = protocol["writerFeatures"].as_array() {
        let unsupported: Vec<&str> = features
            .iter()
            .filter_map(Value::as_str)
            .filter(|f| !SUPPORTED_WRITER_FEATURES.contains(f))
            .collect();
        if !unsupported.is_empty() {
            return Err(Error::UnsupportedTable(format!(
                "the table uses writer features Lifeboat cannot commit for ({}); restore with clone (or repair) instead",
                unsupported.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
