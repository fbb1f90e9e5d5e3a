//! Rollback conformance over ../shared/delta-test-data (issue 14, "Must show"): every shared
//! table with two or more versions is uploaded into the source and replicated; then, for every
//! earlier version the backup reports restorable, the table is rolled back from its latest
//! version to that version (mode rollback, for real) and read back with an independent reader,
//! which must read the rows of that version (count and digest; the version number differs, of
//! course).
//!
//! - The reader is DuckDB's delta extension (delta-kernel-rs inside: deletion vectors, column
//!   mapping, V2 checkpoints), through `delta_tool.py reads`; deltalake where DuckDB cannot read
//!   a version. The rolled-back table is read with the reader that read the original version.
//! - The expected rows of each version are read from the original table (the directory that
//!   was uploaded) before any rollback.
//! - The rollbacks are chained on one copy of the table, each from the table's latest content:
//!   roll back to V, then roll back to the latest version again, then to the next V. Every
//!   RESTORE commit is then one version of the source, read at the end in one pass: the
//!   commit to V must read as V, the commit back to the latest as the latest.
//! - A rollback Lifeboat refuses (`Lifeboat.UnsupportedTable`) is listed with its reason, not
//!   failed, once the test has checked the reason holds (the table really has the writer
//!   feature, append-only property or reader version the refusal names).
//! - A version no reader can read in the original has no referee: listed, not compared.
//!
//! - The shared tables with clustering and row tracking have one version; one of them is given
//!   a second (`clustering_and_row_tracking_table_with_a_second_version`): Lifeboat refuses it,
//!   rightly, for its writer feature `liquid` (Databricks' preview name of clustering).
//! - Tables with more than `MOST_VERSIONS` earlier restorable versions (four of them) are
//!   sampled: the first, the last, a middle one and evenly spaced others.
//!
//! The tables are dealt into shards by weight, one test (and one local AWS) per shard, so
//! nextest runs them side by side (`.config/nextest.toml`: the `shared-table-sweeps` group).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use lifeboat::error::Error;
use lifeboat::history::TableHistory;
use lifeboat::keys::S3Location;
use lifeboat::restore::{RestoreRequest, Restorer};
use lifeboat_tests::conformance::{
    json_actions, read_many, sample, shared_tables_shard, Read, ReadSpec,
};
use lifeboat_tests::Lab;
use serde_json::{json, Value};

const SHARDS: usize = 4;

/// After each rollback to an earlier version, roll back to the latest version again, so that
/// every rollback starts from the table's latest content (and the way back is checked too).
const BACK_TO_LATEST: bool = true;

/// At most this many earlier versions of a table are rolled back to: all of them where they
/// fit (every table but four), else the first, the last, a middle one and evenly spaced others
/// (the sweep's time grows with versions times log length; `sample`).
const MOST_VERSIONS: usize = 12;

/// Rollbacks known to read back wrong, with why (product bugs not fixed yet): (table, version
/// or every version, reason). A case listed here that passes is reported, so the list shrinks.
const KNOWN_FAILURES: &[(&str, Option<u64>, &str)] = &[];

#[derive(Default)]
struct Outcome {
    /// "table vV" lines that read back equal.
    passed: Vec<String>,
    /// Refusals whose reason holds.
    refused: Vec<String>,
    /// Versions with no referee (no reader reads the original).
    unrefereed: Vec<String>,
    known: Vec<String>,
    failed: Vec<String>,
    notes: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_0() {
    sweep(0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_1() {
    sweep(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_2() {
    sweep(2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_3() {
    sweep(3).await
}

async fn sweep(shard: usize) {
    let started = Instant::now();
    let lab = Lab::start(&[("LIFEBOAT_COPY_CONCURRENCY", "16")])
        .await
        .unwrap();
    let tables = shared_tables_shard(shard, SHARDS, 2, MOST_VERSIONS);
    assert!(!tables.is_empty(), "shard {shard} has no table");
    let mut outcome = Outcome::default();
    for (index, name, dir) in &tables {
        let t = Instant::now();
        let rollbacks = rollback_table(&lab, *index, name, dir, &mut outcome).await;
        outcome.notes.push(format!(
            "{name}: {rollbacks} rollbacks in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    let Outcome {
        passed,
        refused,
        unrefereed,
        known,
        failed,
        notes,
    } = outcome;
    println!(
        "shard {shard}: {} tables, {} rollbacks read back equal, in {:.0} s",
        tables.len(),
        passed.len(),
        started.elapsed().as_secs_f64()
    );
    for (title, lines) in [
        ("refused (reason checked)", &refused),
        ("no referee", &unrefereed),
        ("known failures", &known),
        ("per table", &notes),
    ] {
        if !lines.is_empty() {
            println!("{title}:\n  {}", lines.join("\n  "));
        }
    }
    assert!(
        failed.is_empty(),
        "{} rollbacks do not read back as their version:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(!passed.is_empty(), "shard {shard}: no rollback compared");
}

/// The shared tables with clustering and row tracking have one version
/// (`delta-rs/table_with_liquid_clustering`): this one gets a second, as a writer that moves
/// rows would (a file removed, the clustering columns changed, the row-tracking high-water mark
/// raised), and goes through the same sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_and_row_tracking_table_with_a_second_version() {
    let original = lifeboat_tests::shared_tables().join("delta-rs/table_with_liquid_clustering");
    let dir = std::env::temp_dir().join(format!("lifeboat-clustering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&original, &dir);
    let v0 = json_actions(&dir);
    let add = v0.iter().find_map(|a| a.get("add")).unwrap();
    let v1 = [
        json!({"commitInfo": {"timestamp": 1694758300000i64, "operation": "DELETE", "engineInfo": "test"}}),
        json!({"remove": {"path": add["path"], "deletionTimestamp": 1694758300000i64, "dataChange": true,
            "size": add["size"], "partitionValues": {}}}),
        json!({"domainMetadata": {"domain": "delta.liquid", "removed": false,
            "configuration": "{\"clusteringColumns\":[],\"domainName\":\"delta.liquid\"}"}}),
        json!({"domainMetadata": {"domain": "delta.rowTracking", "removed": false,
            "configuration": "{\"rowIdHighWaterMark\":109,\"domainName\":\"delta.rowTracking\"}"}}),
    ];
    std::fs::write(
        dir.join("_delta_log/00000000000000000001.json"),
        v1.iter().map(|a| format!("{a}\n")).collect::<String>(),
    )
    .unwrap();
    let lab = Lab::start(&[]).await.unwrap();
    let mut out = Outcome::default();
    let name = "table_with_liquid_clustering + a DELETE";
    let rollbacks = rollback_table(&lab, 1000, name, &dir, &mut out).await;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{rollbacks} rollbacks; passed {:?}; refused {:?}; no referee {:?}",
        out.passed, out.refused, out.unrefereed
    );
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert!(
        !out.passed.is_empty() || !out.refused.is_empty(),
        "neither rolled back nor refused: {:?}",
        out.notes
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let mut permissions = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            std::fs::set_permissions(&target, permissions).unwrap();
        }
    }
}

fn known_failure(name: &str, version: u64) -> Option<&'static str> {
    KNOWN_FAILURES
        .iter()
        .find(|(table, v, _)| *table == name && v.is_none_or(|v| v == version))
        .map(|(_, _, why)| *why)
}

/// Rolls one table back to each earlier restorable version; returns how many rollbacks ran.
async fn rollback_table(
    lab: &Lab,
    index: usize,
    name: &str,
    dir: &Path,
    out: &mut Outcome,
) -> usize {
    let clock = Instant::now();
    let path = format!("rollback/t{index}");
    let table = Lab::table(&path);
    lab.aws
        .delta(&["upload", dir.to_str().unwrap(), &table])
        .unwrap();
    let failed = lab.drain().await.unwrap();
    assert!(failed.is_empty(), "{name}: replication failed: {failed:?}");
    let backup = S3Location::parse(&Lab::backup_table(&path)).unwrap();
    let history = TableHistory::analyze(&lab.store(), &backup).await.unwrap();
    let Some(latest) = history.latest_version() else {
        out.failed
            .push(format!("{name}: the backup holds no version"));
        return 0;
    };
    let restorable: Vec<u64> = history
        .versions
        .iter()
        .filter(|s| s.restorable)
        .map(|s| s.version)
        .collect();
    let all_earlier: Vec<u64> = restorable.iter().copied().filter(|v| *v < latest).collect();
    let earlier = sample(&all_earlier, MOST_VERSIONS);
    if earlier.len() < all_earlier.len() {
        out.notes.push(format!(
            "{name}: {} of {} earlier restorable versions sampled: {earlier:?}",
            earlier.len(),
            all_earlier.len()
        ));
    }
    if earlier.is_empty() {
        out.notes.push(format!(
            "{name}: no earlier restorable version (restorable {:?})",
            history.ranges(true)
        ));
        return 0;
    }
    let back_to_latest = BACK_TO_LATEST && restorable.contains(&latest);
    // The expected rows, from the original table before any rollback.
    let mut wanted: Vec<u64> = earlier.clone();
    wanted.push(latest);
    let expected = read_many(
        &lab.aws,
        &[ReadSpec {
            uri: dir.to_str().unwrap().to_string(),
            versions: wanted,
            ..ReadSpec::default()
        }],
    )
    .unwrap()
    .remove(0)
    .versions;

    let prepared = clock.elapsed().as_secs_f64();
    let restorer = Restorer::new(lab.store(), lab.config());
    let rollback = |version: u64| {
        let request = RestoreRequest::from_value(&json!({
            "table": table, "mode": "rollback", "version": version, "dry_run": false,
        }))
        .unwrap();
        let restorer = &restorer;
        async move {
            let response = restorer.run(&request, None, |_, _| {}).await?;
            match (&response.plan.commit, &response.result) {
                (Some(commit), Some(result)) if result.complete => Ok(commit.version),
                _ => Err(Error::Restore(format!(
                    "the rollback did not complete: {response:?}"
                ))),
            }
        }
    };
    // RESTORE commit version -> the version its snapshot must equal.
    let mut commits: BTreeMap<u64, u64> = BTreeMap::new();
    // Errors where the original has no referee, and the versions they came from.
    let mut unrefereed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut rollbacks = 0;
    for &version in &earlier {
        rollbacks += 1;
        match rollback(version).await {
            Ok(commit) => {
                commits.insert(commit, version);
                if back_to_latest {
                    rollbacks += 1;
                    match rollback(latest).await {
                        Ok(commit) => {
                            commits.insert(commit, latest);
                        }
                        Err(err) => out.failed.push(format!(
                            "{name}: rollback from v{version} back to the latest v{latest} failed: {err}"
                        )),
                    }
                }
            }
            Err(Error::UnsupportedTable(reason)) => {
                match refusal_holds(dir, &reason) {
                    Ok(why) => out
                        .refused
                        .push(format!("{name} v{version}: {reason} [{why}]")),
                    Err(why) => out.failed.push(format!(
                        "{name} v{version}: refused without cause: {reason} ({why})"
                    )),
                }
                // A refusal for the table's protocol holds for every version: said once.
                if reason.contains("writer features") || reason.contains("reader version") {
                    return rollbacks;
                }
            }
            Err(err) => match expected.get(&version) {
                Some(Read::Unreadable(why)) => unrefereed
                    .entry(format!(
                        "no reader reads the original ({why}); the rollback fails too: {err}"
                    ))
                    .or_default()
                    .push(version),
                _ => out
                    .failed
                    .push(format!("{name} v{version}: rollback failed: {err}")),
            },
        }
    }
    for (why, versions) in unrefereed {
        out.unrefereed
            .push(format!("{name} versions {versions:?}: {why}"));
    }
    if commits.is_empty() {
        return rollbacks;
    }
    let rolled = clock.elapsed().as_secs_f64();
    // Every RESTORE commit, read back in one pass with the reader that read its version.
    let spec = ReadSpec {
        uri: table.clone(),
        versions: commits.keys().copied().collect(),
        readers: commits
            .iter()
            .filter_map(|(c, v)| Some((*c, expected.get(v)?.reader()?.to_string())))
            .collect(),
        cdf: Vec::new(),
    };
    let actual = read_many(&lab.aws, &[spec]).unwrap().remove(0).versions;
    out.notes.push(format!(
        "{name}: upload, replication and expected rows {prepared:.1} s, rollbacks {:.1} s, reading back {:.1} s",
        rolled - prepared,
        clock.elapsed().as_secs_f64() - rolled
    ));
    let mut reported = BTreeSet::new();
    for (commit, version) in &commits {
        let want = &expected[version];
        let got = actual
            .get(commit)
            .cloned()
            .unwrap_or_else(|| Read::Unreadable("not read".into()));
        let case = format!("{name} v{version}");
        if let Read::Unreadable(why) = want {
            if reported.insert(*version) {
                out.unrefereed.push(format!(
                    "{case}: no reader reads the original ({why}); rolled back, reads {}",
                    got.describe()
                ));
            }
            continue;
        }
        let line = format!(
            "{case} (RESTORE commit {commit}): expected {}, read {}",
            want.describe(),
            got.describe()
        );
        match (want.same_rows(&got), known_failure(name, *version)) {
            (true, None) => out.passed.push(case),
            (true, Some(_)) => {
                out.passed.push(case.clone());
                out.notes.push(format!(
                    "{case} is a known failure but passes: take it off the list"
                ));
            }
            (false, Some(why)) => out.known.push(format!("{line}: {why}")),
            (false, None) => out.failed.push(line),
        }
    }
    rollbacks
}

/// Whether a refusal's reason holds for the table: the writer features it names are in one of
/// the table's protocols, the append-only property is set, the reader version is above 3.
/// Returns what was checked.
fn refusal_holds(dir: &Path, reason: &str) -> Result<String, String> {
    let actions = json_actions(dir);
    let protocols: Vec<&Value> = actions.iter().filter_map(|a| a.get("protocol")).collect();
    if let Some(list) = reason
        .split_once("writer features Lifeboat cannot commit for (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list)
    {
        let features: BTreeSet<&str> = protocols
            .iter()
            .flat_map(|p| p["writerFeatures"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        let named: Vec<&str> = list.split(", ").collect();
        let missing: Vec<&&str> = named.iter().filter(|f| !features.contains(**f)).collect();
        return match missing.is_empty() {
            true => Ok(format!(
                "the table's protocol lists writer feature(s) {named:?}"
            )),
            false => Err(format!(
                "the table's protocols do not list {missing:?} (they list {features:?})"
            )),
        };
    }
    if reason.contains("append-only") {
        let set = actions
            .iter()
            .any(|a| a["metaData"]["configuration"]["delta.appendOnly"] == "true");
        return set
            .then(|| "delta.appendOnly=true in the table's metadata".to_string())
            .ok_or_else(|| "no metadata sets delta.appendOnly".to_string());
    }
    if reason.contains("reader version") {
        let above = protocols
            .iter()
            .any(|p| p["minReaderVersion"].as_i64().unwrap_or(0) > 3);
        return above
            .then(|| "a protocol needs a reader above 3".to_string())
            .ok_or_else(|| "no protocol needs a reader above 3".to_string());
    }
    Err("a refusal this test does not know how to check".into())
}
