//! Clone conformance over ../shared/delta-test-data: each table uploaded as a backup, its
//! restorable versions cloned from it into new prefixes, and every version each clone holds
//! read as the original reads that version; on the tables with the change data feed, the feed
//! of each clone (versions 0..V) read as the original's.
//!
//! - The reader is DuckDB's delta extension (deletion vectors, column mapping, V2
//!   checkpoints), through `delta_tool.py reads`; deltalake where DuckDB cannot read a version.
//!   A clone is read with the reader that read the original version. The change data feed is
//!   read with deltalake's `load_cdf` (DuckDB's delta extension has no `table_changes`), and
//!   compared without `_commit_timestamp`, which is the commit file's time on tables without
//!   in-commit timestamps (new on a copy: README, "Time travel by timestamp").
//! - A clone at version V holds the log up to V and the files of every version up to V the
//!   backup has: it is read at each restorable version up to V.
//! - Tables with more than `MOST_CLONES` restorable versions are cloned at a sample of them
//!   (the first, the last, a middle one and evenly spaced others); each clone is still read at
//!   every version it holds.
//! - A version no reader can read in the original has no referee: listed, not compared.
//!
//! The tables are dealt into shards by weight, one test (and one local AWS) per shard
//! (`.config/nextest.toml`: the `shared-table-sweeps` group).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use lifeboat::history::TableHistory;
use lifeboat::keys::S3Location;
use lifeboat::restore::{RestoreRequest, RestoreResponse, Restorer};
use lifeboat::s3::S3Store;
use lifeboat_tests::conformance::{
    has_change_data_feed, read_many, sample, shared_tables_shard, Read, ReadSpec,
};
use lifeboat_tests::Lab;
use serde_json::json;

const SHARDS: usize = 4;

/// At most this many clones of a table (see the module doc).
const MOST_CLONES: usize = 12;

/// Clones known to read back wrong, with why (product bugs not fixed yet): (table, clone
/// version or every clone, reason). A case listed here that passes is reported.
const KNOWN_FAILURES: &[(&str, Option<u64>, &str)] = &[];

#[derive(Default)]
struct Outcome {
    /// Versions of clones read equal to the original's.
    versions: usize,
    /// Change data feeds read equal.
    feeds: usize,
    clones: usize,
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
    let restorer = Restorer::new(lab.store(), lab.config());
    let tables = shared_tables_shard(shard, SHARDS, 1, MOST_CLONES);
    assert!(!tables.is_empty(), "shard {shard} has no table");
    let mut out = Outcome::default();
    for (index, name, dir) in &tables {
        let t = Instant::now();
        clone_table(&lab, &restorer, *index, name, dir, &mut out).await;
        out.notes
            .push(format!("{name}: {:.1} s", t.elapsed().as_secs_f64()));
    }
    println!(
        "shard {shard}: {} tables, {} clones, {} clone versions and {} change data feeds read equal to the original's, in {:.0} s",
        tables.len(),
        out.clones,
        out.versions,
        out.feeds,
        started.elapsed().as_secs_f64()
    );
    for (title, lines) in [
        ("no referee", &out.unrefereed),
        ("known failures", &out.known),
        ("per table", &out.notes),
    ] {
        if !lines.is_empty() {
            println!("{title}:\n  {}", lines.join("\n  "));
        }
    }
    assert!(
        out.failed.is_empty(),
        "{} clone problems:\n{}",
        out.failed.len(),
        out.failed.join("\n")
    );
    assert!(out.versions > 0, "shard {shard}: no clone compared");
}

fn known_failure(name: &str, version: u64) -> Option<&'static str> {
    KNOWN_FAILURES
        .iter()
        .find(|(table, v, _)| *table == name && v.is_none_or(|v| v == version))
        .map(|(_, _, why)| *why)
}

async fn clone_table(
    lab: &Lab,
    restorer: &Restorer<S3Store>,
    index: usize,
    name: &str,
    dir: &Path,
    out: &mut Outcome,
) {
    let local = dir.to_str().unwrap();
    let table = Lab::table(&format!("shared/t{index}"));
    let backup = Lab::backup_table(&format!("shared/t{index}"));
    lab.aws.delta(&["upload", local, &backup]).unwrap();
    let history = TableHistory::analyze(&lab.store(), &S3Location::parse(&backup).unwrap())
        .await
        .unwrap();
    let restorable: Vec<u64> = history
        .versions
        .iter()
        .filter(|s| s.restorable)
        .map(|s| s.version)
        .collect();
    if restorable.is_empty() {
        out.notes.push(format!("{name}: no restorable version"));
        return;
    }
    let cloned_versions = sample(&restorable, MOST_CLONES);
    if cloned_versions.len() < restorable.len() {
        out.notes.push(format!(
            "{name}: cloned at {} of {} restorable versions: {cloned_versions:?}",
            cloned_versions.len(),
            restorable.len()
        ));
    }
    let cdf = has_change_data_feed(dir);
    let feeds: Vec<u64> = if cdf {
        cloned_versions.clone()
    } else {
        Vec::new()
    };
    let expected = read_many(
        &lab.aws,
        &[ReadSpec {
            uri: local.to_string(),
            versions: restorable.clone(),
            cdf: feeds.clone(),
            ..ReadSpec::default()
        }],
    )
    .unwrap()
    .remove(0);

    // A few clones at a time: the local S3 server answers requests in parallel.
    let results: Vec<(u64, String, Result<RestoreResponse, String>)> =
        futures::stream::iter(cloned_versions)
            .map(|version| {
                let table = &table;
                async move {
                    let target = Lab::table(&format!("clones/t{index}/v{version}"));
                    let payload = json!({"table": table, "mode": "clone", "version": version, "target": target, "dry_run": false});
                    let request = RestoreRequest::from_value(&payload).unwrap();
                    let result = restorer
                        .run(&request, None, |_, _| {})
                        .await
                        .map_err(|e| e.to_string());
                    (version, target, result)
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
    let mut clones: BTreeMap<u64, String> = BTreeMap::new();
    for (version, target, result) in results {
        match result {
            Ok(response) if response.result.as_ref().is_some_and(|r| r.complete) => {
                clones.insert(version, target);
            }
            Ok(response) => out
                .failed
                .push(format!("{name} v{version}: incomplete {response:?}")),
            Err(err) => out.failed.push(format!("{name} v{version}: {err}")),
        }
    }
    out.clones += clones.len();
    // Every clone read at every restorable version it holds, in one pass.
    let specs: Vec<ReadSpec> = clones
        .iter()
        .map(|(version, target)| {
            let held: Vec<u64> = restorable
                .iter()
                .copied()
                .filter(|v| v <= version)
                .collect();
            ReadSpec {
                uri: target.clone(),
                readers: held
                    .iter()
                    .filter_map(|v| Some((*v, expected.versions.get(v)?.reader()?.to_string())))
                    .collect(),
                versions: held,
                cdf: if cdf { vec![*version] } else { Vec::new() },
            }
        })
        .collect();
    let actual = read_many(&lab.aws, &specs).unwrap();
    let mut unrefereed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (spec, read) in specs.iter().zip(&actual) {
        let clone_version = *spec.versions.last().unwrap();
        let mut wrong = Vec::new();
        for v in &spec.versions {
            let want = &expected.versions[v];
            let got = read
                .versions
                .get(v)
                .cloned()
                .unwrap_or_else(|| Read::Unreadable("not read".into()));
            match want {
                Read::Unreadable(why) => {
                    if clone_version == *v {
                        unrefereed
                            .entry(format!("no reader reads the original ({why})"))
                            .or_default()
                            .push(*v);
                    }
                }
                _ if want.same_rows(&got) => out.versions += 1,
                _ => wrong.push(format!(
                    "v{v}: expected {}, read {}",
                    want.describe(),
                    got.describe()
                )),
            }
        }
        if cdf {
            let want = &expected.cdf[&clone_version];
            let got = read
                .cdf
                .get(&clone_version)
                .cloned()
                .unwrap_or_else(|| Read::Unreadable("not read".into()));
            match want {
                Read::Unreadable(why) => out.unrefereed.push(format!(
                    "{name} clone of v{clone_version}: deltalake reads no change data feed of the original ({why})"
                )),
                _ if want.same_rows(&got) => out.feeds += 1,
                _ => wrong.push(format!(
                    "change data feed 0..{clone_version}: expected {}, read {}",
                    want.describe(),
                    got.describe()
                )),
            }
        }
        let case = format!("{name} clone of v{clone_version}");
        match (wrong.is_empty(), known_failure(name, clone_version)) {
            (true, Some(_)) => out.notes.push(format!(
                "{case} is a known failure but passes: take it off the list"
            )),
            (true, None) => {}
            (false, Some(why)) => out
                .known
                .push(format!("{case}: {}: {why}", wrong.join("; "))),
            (false, None) => out.failed.push(format!("{case}: {}", wrong.join("; "))),
        }
    }
    for (why, versions) in unrefereed {
        out.unrefereed
            .push(format!("{name} versions {versions:?}: {why}"));
    }
}
