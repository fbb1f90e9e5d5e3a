//! The verifier over every table in ../shared/delta-test-data, uploaded into the local S3 as
//! both the source and its backup: discovery finds each one, its version range and restorable
//! versions agree with an independent reader (the Python `deltalake` package), and a source
//! identical to its backup yields no source finding but the files the table really lacks.
//! (Live-file counts per version are checked against deltalake in history_conformance.rs.)

use std::collections::HashMap;

use lifeboat::s3::S3Store;
use lifeboat::verify::{TableReport, Verifier, VerifySettings};
use lifeboat::Config;
use lifeboat_tests::{shared_delta_tables, LocalAws};

const SRC: &str = "source-bucket";
const BACKUP: &str = "backup-bucket";

fn unrestorable(report: &TableReport, version: u64) -> bool {
    report
        .unrestorable_versions
        .iter()
        .any(|r| r.first <= version && version <= r.last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_agrees_with_deltalake_on_every_shared_table() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_bucket(SRC, false).await.unwrap();
    aws.create_bucket(BACKUP, true).await.unwrap();
    let tables = shared_delta_tables();
    let mut expected = HashMap::new();
    for (name, dir) in &tables {
        let dir = dir.to_str().unwrap();
        aws.delta(&["upload", dir, &format!("s3://{SRC}/{name}")])
            .unwrap();
        aws.delta(&["upload", dir, &format!("s3://{BACKUP}/{SRC}/{name}")])
            .unwrap();
        expected.insert(
            format!("s3://{SRC}/{name}"),
            (name.clone(), aws.delta(&["live-counts", dir]).unwrap()),
        );
    }
    let vars: HashMap<&str, &str> = [
        ("LIFEBOAT_BACKUP_BUCKET", BACKUP),
        ("LIFEBOAT_SOURCE_BUCKETS", SRC),
        ("LIFEBOAT_GRACE_SECONDS", "0"),
    ]
    .into_iter()
    .collect();
    let lookup = |name: &str| vars.get(name).map(|v| v.to_string());
    let verifier = Verifier::<S3Store>::new(
        S3Store::new(aws.s3().clone()),
        None,
        Config::from_lookup(lookup).unwrap(),
        VerifySettings::from_lookup(lookup).unwrap(),
    );
    let report = verifier.run(None).await.unwrap();
    assert_eq!(
        report.tables.len(),
        tables.len(),
        "discovery found every table"
    );

    let mut mismatches = Vec::new();
    let mut lines = Vec::new();
    for t in &report.tables {
        let Some((name, exp)) = expected.get(&t.table) else {
            mismatches.push(format!("{}: discovered, but not a shared table", t.table));
            continue;
        };
        let kinds: Vec<String> = t
            .findings
            .iter()
            .map(|f| {
                serde_json::to_value(f.kind)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        lines.push(format!(
            "{name}: latest {:?}, restorable {:?}..{:?}, unrestorable {:?}, findings {kinds:?}",
            t.latest_backup_version,
            t.oldest_restorable_version,
            t.newest_restorable_version,
            t.unrestorable_versions
        ));
        for kind in [
            "missing_in_backup",
            "log_corrupted",
            "table_dropped",
            "backup_conflict",
            "verification_failed",
            "replication_pending",
        ] {
            if kinds.iter().any(|k| k == kind) {
                mismatches.push(format!("{name}: {kind} although the source is the backup"));
            }
        }
        if exp.get("error").is_some() {
            continue; // deltalake cannot open it: nothing independent to compare with
        }
        let latest = exp["latest"].as_u64().unwrap();
        if t.latest_backup_version != Some(latest) {
            mismatches.push(format!(
                "{name}: latest {latest} by deltalake, {:?} by the verifier",
                t.latest_backup_version
            ));
        }
        if let (Some(_), Some(newest)) = (t.lag_versions, t.newest_restorable_version) {
            let lag = latest as i64 - newest as i64;
            if t.lag_versions != Some(lag) {
                mismatches.push(format!("{name}: lag {:?}, expected {lag}", t.lag_versions));
            }
        }
        for (v, e) in exp["versions"].as_object().unwrap() {
            let v: u64 = v.parse().unwrap();
            let readable = e.get("count").is_some() && e["all_present"] == true;
            if readable && unrestorable(t, v) {
                mismatches.push(format!(
                    "{name}: v{v} is readable by deltalake but reported unrestorable"
                ));
            }
            if e["all_present"] == false && !unrestorable(t, v) {
                mismatches.push(format!(
                    "{name}: v{v} lacks files on disk but is not reported unrestorable"
                ));
            }
        }
        // The source lacks what its latest version needs exactly when the table on disk does.
        let at_latest = &exp["versions"][latest.to_string()];
        let broken = t.findings.iter().any(|f| {
            serde_json::to_value(f.kind).unwrap() == "source_files_missing"
                && f.data["latest_version_broken"] == true
        });
        if at_latest["all_present"] == false && !broken {
            mismatches.push(format!(
                "{name}: its latest version lacks files, not reported"
            ));
        }
        if at_latest["all_present"] == true && broken {
            mismatches.push(format!("{name}: source_files_missing at the latest version, but deltalake finds every file"));
        }
    }
    println!("{}", lines.join("\n"));
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
