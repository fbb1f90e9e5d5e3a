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
//! - what Lifeboat cannot commit correctly (an unknown writer feature, an append-only table that
//!   would lose files) is refused, saying why.

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
    let current_ids: HashMap<(String, Option<String>), &FileEntry> =
        current.files.iter().map(|f| (f.identity(), f)).collect();
    let wanted_ids: HashSet<(String, Option<String>)> =
        restore_point.files.iter().map(|f| f.identity()).collect();
    let adds: Vec<&FileEntry> = restore_point
        .files
        .iter()
        .filter(|f| !current_ids.contains_key(&f.identity()))
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
    let metadata_restored = restore_point.metadata != current.metadata;
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
    let mut actions = vec![json!({ "commitInfo": commit_info })];
    if metadata_restored {
        let mut metadata = restore_point.metadata.clone();
        // The table keeps its identity and the properties that govern how it is written.
        metadata["id"] = current.metadata["id"].clone();
        if current.in_commit_timestamps {
            for key in [
                "delta.enableInCommitTimestamps",
                "delta.inCommitTimestampEnablementVersion",
                "delta.inCommitTimestampEnablementTimestamp",
            ] {
                if let Some(value) = current.metadata["configuration"].get(key) {
                    metadata["configuration"][key] = value.clone();
                }
            }
        }
        actions.push(json!({ "metaData": metadata }));
    }
    actions.extend(removes.iter().map(|f| f.remove_action(now_ms)));
    actions.extend(adds.iter().map(|f| f.add_action()));
    Ok(PlannedCommit {
        version: current.version + 1,
        read_version: current.version,
        files_to_add: adds.len() as u64,
        files_to_remove: removes.len() as u64,
        metadata_restored,
        preview: actions.iter().take(PREVIEW_ACTIONS).cloned().collect(),
        actions,
    })
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
mod tests {
    use super::*;

    fn file(path: &str, dv: Option<&str>) -> FileEntry {
        FileEntry {
            raw_path: path.to_string(),
            path: path.to_string(),
            size: 100,
            modification_time: 1,
            partition_values: Default::default(),
            stats: None,
            deletion_vector: dv.map(|d| {
                json!({"storageType": "u", "pathOrInlineDv": d, "offset": 1, "sizeInBytes": 10, "cardinality": 2})
            }),
            dv_file: None,
            tags: None,
            base_row_id: None,
            default_row_commit_version: None,
        }
    }

    fn snapshot(version: u64, files: Vec<FileEntry>, configuration: Value) -> SnapshotDetail {
        SnapshotDetail {
            version,
            metadata: json!({"id": format!("id-{version}"), "configuration": configuration}),
            protocol: json!({"minReaderVersion": 1, "minWriterVersion": 2}),
            in_commit_timestamps: configuration["delta.enableInCommitTimestamps"] == "true",
            files,
        }
    }

    fn kinds(commit: &PlannedCommit) -> Vec<String> {
        commit
            .actions
            .iter()
            .map(|a| {
                let (kind, body) = a.as_object().unwrap().iter().next().unwrap();
                match body.get("path") {
                    Some(path) => format!("{kind} {}", path.as_str().unwrap()),
                    None => kind.clone(),
                }
            })
            .collect()
    }

    #[test]
    fn commit_table() {
        let cfg = json!({});
        // (name, restore point files, current files, expected actions after commitInfo)
        type Case = (
            &'static str,
            Vec<FileEntry>,
            Vec<FileEntry>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing changed",
                vec![file("a", None)],
                vec![file("a", None)],
                vec![],
            ),
            (
                "rows appended since",
                vec![file("a", None)],
                vec![file("a", None), file("b", None)],
                vec!["remove b"],
            ),
            (
                "overwritten since",
                vec![file("a", None)],
                vec![file("c", None)],
                vec!["remove c", "add a"],
            ),
            (
                "table emptied since",
                vec![file("a", None), file("b", None)],
                vec![],
                vec!["add a", "add b"],
            ),
            (
                "deletion vector changed",
                vec![file("a", Some("x"))],
                vec![file("a", Some("y"))],
                vec!["remove a", "add a"],
            ),
            (
                "deletion vector added",
                vec![file("a", None)],
                vec![file("a", Some("y"))],
                vec!["remove a", "add a"],
            ),
        ];
        let table = S3Location::parse("s3://src/t").unwrap();
        for (name, wanted, now, expected) in cases {
            let point = snapshot(3, wanted, cfg.clone());
            let mut current = snapshot(7, now, cfg.clone());
            current.metadata = point.metadata.clone();
            let commit = restore_commit(&table, &point, &current, 1_000, None).unwrap();
            let mut want = vec!["commitInfo".to_string()];
            want.extend(expected.iter().map(|s| s.to_string()));
            assert_eq!(kinds(&commit), want, "{name}");
            assert_eq!((commit.version, commit.read_version), (8, 7), "{name}");
            assert!(!commit.metadata_restored, "{name}");
            let info = &commit.actions[0]["commitInfo"];
            assert_eq!(info["operation"], "RESTORE");
            assert_eq!(info["operationParameters"]["version"], 3);
            assert_eq!(info["readVersion"], 7);
            assert!(commit.body().ends_with('\n'));
        }
    }

    #[test]
    fn metadata_comes_back_with_the_table_identity() {
        let table = S3Location::parse("s3://src/t").unwrap();
        let point = snapshot(1, vec![], json!({"p": "old"}));
        let current = snapshot(2, vec![], json!({"p": "new"}));
        let commit = restore_commit(&table, &point, &current, 5, None).unwrap();
        assert!(commit.metadata_restored);
        let metadata = &commit.actions[1]["metaData"];
        assert_eq!(metadata["configuration"]["p"], "old");
        assert_eq!(metadata["id"], "id-2", "the table keeps its id");
    }

    #[test]
    fn in_commit_timestamps_never_go_back() {
        let table = S3Location::parse("s3://src/t").unwrap();
        let ict = json!({"delta.enableInCommitTimestamps": "true", "delta.inCommitTimestampEnablementVersion": "0"});
        let point = snapshot(1, vec![], json!({}));
        let current = snapshot(2, vec![], ict.clone());
        let cases = [
            (10_000, Some(5_000), 10_000),
            (10_000, Some(20_000), 20_001),
            (10_000, None, 10_000),
        ];
        for (now, previous, expected) in cases {
            let commit = restore_commit(&table, &point, &current, now, previous).unwrap();
            assert_eq!(
                commit.actions[0]["commitInfo"]["inCommitTimestamp"],
                expected
            );
            // The restored metadata keeps ICT switched on as it is now.
            assert_eq!(
                commit.actions[1]["metaData"]["configuration"]["delta.enableInCommitTimestamps"],
                "true"
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        let table = S3Location::parse("s3://src/t").unwrap();
        let cases: Vec<(&str, SnapshotDetail, SnapshotDetail, &str, &str)> = vec![
            (
                "source behind the restore point",
                snapshot(5, vec![], json!({})),
                snapshot(3, vec![], json!({})),
                "Lifeboat.RestoreError",
                "older than the restore point",
            ),
            (
                "append-only table losing files",
                snapshot(1, vec![], json!({"delta.appendOnly": "true"})),
                snapshot(
                    2,
                    vec![file("a", None)],
                    json!({"delta.appendOnly": "true"}),
                ),
                "Lifeboat.UnsupportedTable",
                "append-only",
            ),
            (
                "unknown writer feature",
                snapshot(1, vec![], json!({})),
                SnapshotDetail {
                    protocol: json!({"minReaderVersion": 3, "minWriterVersion": 7, "writerFeatures": ["futureFeature"]}),
                    ..snapshot(2, vec![], json!({}))
                },
                "Lifeboat.UnsupportedTable",
                "futureFeature",
            ),
            (
                "writer version past 7",
                snapshot(1, vec![], json!({})),
                SnapshotDetail {
                    protocol: json!({"minReaderVersion": 3, "minWriterVersion": 8}),
                    ..snapshot(2, vec![], json!({}))
                },
                "Lifeboat.UnsupportedTable",
                "writer version 8",
            ),
        ];
        for (name, point, current, kind, says) in cases {
            let err = restore_commit(&table, &point, &current, 1, None).unwrap_err();
            assert_eq!(err.kind(), kind, "{name}: {err}");
            assert!(err.to_string().contains(says), "{name}: {err}");
        }
        // Appending to an append-only table is fine.
        let point = snapshot(
            1,
            vec![file("a", None)],
            json!({"delta.appendOnly": "true"}),
        );
        let current = snapshot(2, vec![], json!({"delta.appendOnly": "true"}));
        assert!(restore_commit(&table, &point, &current, 1, None).is_ok());
    }
}
