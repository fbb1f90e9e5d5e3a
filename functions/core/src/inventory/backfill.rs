//! Backfill from an S3 Inventory report: copy exactly what the report lists that the backup
//! lacks. The objects go to the replicator's queue as the S3 notifications it would have
//! received (the verifier's [`crate::verify::queue`]), so that as many replicator invocations
//! as the queue's concurrency allows copy them; without a queue they are copied here, with the
//! same copy path as `lifeboat backfill s3://bucket/prefix`.

use std::collections::HashMap;

use serde::Serialize;

use super::InventoryRow;
use crate::backfill::{copy_all, BackfillSummary};
use crate::error::{Error, Result};
use crate::events::ObjectRef;
use crate::keys::S3Location;
use crate::layout::Layout;
use crate::replicate::Replicator;
use crate::store::{list_all, ObjectInfo, Store};
use crate::verify::queue::{send_all, Queue, Resend};

/// What the backup lacks of a report, decided from the report and a listing of the backup.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Each object to copy, and whether its backup key is absent altogether (else it is
    /// there with another size: the copy looks first).
    pub copy: Vec<(InventoryRow, bool)>,
    pub already_backed_up: u64,
    /// Noncurrent versions and delete markers (reports of all versions): the backup copies
    /// what the source holds now.
    pub not_current: u64,
    /// Rows of another bucket than the report's source bucket.
    pub other_bucket: u64,
}

/// The plan for `rows` of `source_bucket`, given the backup's keys and sizes (`backup`, full
/// backup keys).
pub fn plan(
    source_bucket: &str,
    rows: Vec<InventoryRow>,
    backup: &HashMap<String, u64>,
    layout: &Layout,
) -> Plan {
    let mut plan = Plan::default();
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        if row.bucket != source_bucket {
            plan.other_bucket += 1;
            continue;
        }
        if row.is_delete_marker == Some(true) || row.is_latest == Some(false) {
            plan.not_current += 1;
            continue;
        }
        if !seen.insert(row.key.clone()) {
            continue; // listed twice: copied once
        }
        match (backup.get(&layout.key(source_bucket, &row.key)), row.size) {
            (Some(held), Some(size)) if *held == size => plan.already_backed_up += 1,
            (Some(_), None) => plan.already_backed_up += 1,
            (held, _) => {
                let absent = held.is_none();
                plan.copy.push((row, absent));
            }
        }
    }
    plan
}

/// The prefix to list the backup under: the folder all the keys share ("" for none), so that
/// a report of one table does not list the whole backup.
pub fn listing_prefix<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut keys = keys.into_iter();
    let Some(first) = keys.next() else {
        return String::new();
    };
    let mut common = first.len();
    for key in keys {
        common = first
            .bytes()
            .zip(key.bytes())
            .take(common)
            .take_while(|(a, b)| a == b)
            .count();
    }
    // Bytes, not characters: keys that share part of a multi-byte character share no folder
    // there, and a '/' is always a character boundary.
    match first.as_bytes()[..common].iter().rposition(|b| *b == b'/') {
        Some(i) => first[..=i].to_string(),
        None => String::new(),
    }
}

/// How the objects were copied.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum FanOut {
    /// Sent to the replicator's queue; the replicator copies them.
    Queue {
        queue_url: String,
        sent: u64,
        failed: u64,
    },
    /// Copied by this process.
    InProcess(BackfillSummary),
}

#[derive(Debug, Clone, Serialize)]
pub struct InventoryBackfillSummary {
    pub manifest: String,
    pub source_bucket: String,
    pub data_files: usize,
    /// Rows in the report.
    pub listed: u64,
    pub not_current: u64,
    pub other_bucket: u64,
    pub already_backed_up: u64,
    pub to_copy: u64,
    pub fan_out: FanOut,
}

impl InventoryBackfillSummary {
    /// Objects that were neither copied nor handed to the queue.
    pub fn failed(&self) -> u64 {
        match &self.fan_out {
            FanOut::Queue { failed, .. } => *failed,
            FanOut::InProcess(summary) => summary.failed,
        }
    }
}

/// `s3://bucket/path/manifest.json`, or the folder holding it.
pub fn manifest_key(location: &S3Location) -> String {
    if location.prefix.ends_with(".json") {
        location.prefix.clone()
    } else {
        location.key("manifest.json")
    }
}

/// Backfills what the report at `manifest` lists and the backup lacks: through `queue` when
/// one is given and `LIFEBOAT_QUEUE_URL` is set, else in this process (`progress` is called
/// after each object).
pub async fn backfill_from_inventory<S: Store, Q: Queue>(
    replicator: &Replicator<S>,
    queue: Option<&Q>,
    manifest: &S3Location,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<InventoryBackfillSummary> {
    let config = replicator.config();
    let store = replicator.store();
    let manifest_key = manifest_key(manifest);
    let inventory = super::read(store, &manifest.bucket, &manifest_key).await?;
    let source_bucket = inventory.manifest.source_bucket.clone();
    if !config.is_source_bucket(&source_bucket) {
        return Err(Error::bad_input(format!(
            "the inventory lists bucket {source_bucket:?}, which is not in LIFEBOAT_SOURCE_BUCKETS ({})",
            config.source_buckets.join(",")
        )));
    }
    let listed = inventory.rows.len() as u64;
    let prefix = listing_prefix(
        inventory
            .rows
            .iter()
            .filter(|r| r.bucket == source_bucket)
            .map(|r| r.key.as_str()),
    );
    let backup: HashMap<String, u64> = list_all(
        store,
        &config.backup_bucket,
        &config.layout().key(&source_bucket, &prefix),
    )
    .await?
    .into_iter()
    .map(|o| (o.key, o.size))
    .collect();
    let plan = plan(&source_bucket, inventory.rows, &backup, config.layout());
    tracing::info!(manifest = %manifest, listed, to_copy = plan.copy.len(),
        already = plan.already_backed_up, "inventory backfill planned");

    let fan_out = match (queue, &config.queue_url) {
        (Some(queue), Some(url)) => {
            let resend: Vec<Resend> = plan
                .copy
                .iter()
                .map(|(row, _)| Resend {
                    bucket: row.bucket.clone(),
                    object: ObjectInfo {
                        key: row.key.clone(),
                        size: row.size.unwrap_or(0),
                        etag: row.etag.clone().unwrap_or_default(),
                        version_id: None,
                        last_modified: row.last_modified,
                        metadata: HashMap::new(),
                        checksum: None,
                    },
                })
                .collect();
            let (sent, failed) = send_all(queue, url, &resend).await;
            FanOut::Queue {
                queue_url: url.clone(),
                sent,
                failed,
            }
        }
        _ => {
            let todo = plan
                .copy
                .iter()
                .map(|(row, absent)| {
                    let object = ObjectRef {
                        bucket: row.bucket.clone(),
                        key: row.key.clone(),
                        size: row.size,
                        etag: row.etag.clone(),
                        version_id: None,
                        event_time: row.last_modified,
                        event_name: "ObjectCreated:Backfill".into(),
                    };
                    (object, *absent)
                })
                .collect();
            let mut summary = BackfillSummary {
                listed,
                already_backed_up: plan.already_backed_up,
                ..Default::default()
            };
            copy_all(replicator, todo, &mut summary, progress).await;
            FanOut::InProcess(summary)
        }
    };
    Ok(InventoryBackfillSummary {
        manifest: format!("s3://{}/{manifest_key}", manifest.bucket),
        source_bucket,
        data_files: inventory.manifest.files.len(),
        listed,
        not_current: plan.not_current,
        other_bucket: plan.other_bucket,
        already_backed_up: plan.already_backed_up,
        to_copy: plan.copy.len() as u64,
        fan_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        bucket: &str,
        key: &str,
        size: Option<u64>,
        latest: Option<bool>,
        marker: Option<bool>,
    ) -> InventoryRow {
        InventoryRow {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
            is_latest: latest,
            is_delete_marker: marker,
            size,
            etag: None,
            last_modified: None,
        }
    }

    #[test]
    fn plan_copies_exactly_what_the_backup_lacks() {
        let layout = Layout::new("backup", "{bucket}/").unwrap();
        let backup: HashMap<String, u64> = [
            ("src/t/held".to_string(), 10),
            ("src/t/other-size".to_string(), 10),
            ("src/t/held-no-size".to_string(), 3),
        ]
        .into();
        // (row, expected: "copy absent" / "copy present" / "already" / "not current" / "other")
        let cases = [
            (row("src", "t/new", Some(5), None, None), "copy absent"),
            (row("src", "t/held", Some(10), None, None), "already"),
            (
                row("src", "t/other-size", Some(11), None, None),
                "copy present",
            ),
            (row("src", "t/held-no-size", None, None, None), "already"),
            (row("src", "t/new-no-size", None, None, None), "copy absent"),
            (
                row("src", "t/old-version", Some(1), Some(false), Some(false)),
                "not current",
            ),
            (
                row("src", "t/deleted", None, Some(true), Some(true)),
                "not current",
            ),
            (
                row("src", "t/latest", Some(1), Some(true), Some(false)),
                "copy absent",
            ),
            (row("other", "t/new", Some(1), None, None), "other"),
        ];
        for (r, expected) in &cases {
            let p = plan("src", vec![r.clone()], &backup, &layout);
            let got = match (
                &p.copy[..],
                p.already_backed_up,
                p.not_current,
                p.other_bucket,
            ) {
                ([(_, true)], 0, 0, 0) => "copy absent",
                ([(_, false)], 0, 0, 0) => "copy present",
                ([], 1, 0, 0) => "already",
                ([], 0, 1, 0) => "not current",
                ([], 0, 0, 1) => "other",
                _ => "?",
            };
            assert_eq!(got, *expected, "{r:?}");
        }
        let all = plan(
            "src",
            cases.iter().map(|(r, _)| r.clone()).collect(),
            &backup,
            &layout,
        );
        assert_eq!(all.copy.len(), 4);
        let twice = plan(
            "src",
            vec![row("src", "t/new", Some(5), None, None); 2],
            &backup,
            &layout,
        );
        assert_eq!(twice.copy.len(), 1);
    }

    #[test]
    fn listing_prefix_is_the_shared_folder() {
        let cases: &[(&[&str], &str)] = &[
            (&[], ""),
            (&["t/a"], "t/"),
            (&["a"], ""),
            (&["db/t1/a", "db/t1/_delta_log/0.json"], "db/t1/"),
            (&["db/t1/a", "db/t2/a"], "db/"),
            (&["db/ta/x", "db/tb/x"], "db/"),
            (&["x/a", "y/a"], ""),
            (&["é/a", "é/b"], "é/"),
            (&["d/é", "d/è"], "d/"),
        ];
        for (keys, expected) in cases {
            assert_eq!(listing_prefix(keys.iter().copied()), *expected, "{keys:?}");
        }
    }

    #[test]
    fn manifest_location() {
        for (location, key) in [
            (
                "s3://inv/src/config/2024-01-01T00-00Z/manifest.json",
                "src/config/2024-01-01T00-00Z/manifest.json",
            ),
            (
                "s3://inv/src/config/2024-01-01T00-00Z/",
                "src/config/2024-01-01T00-00Z/manifest.json",
            ),
            ("s3://inv", "manifest.json"),
        ] {
            assert_eq!(manifest_key(&S3Location::parse(location).unwrap()), key);
        }
    }
}
