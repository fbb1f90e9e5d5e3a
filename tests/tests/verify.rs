//! The verifier against the local S3 server: real Delta tables written by `deltalake`,
//! replicated by draining the source bucket's notification queue into the replicator, then
//! damaged in the backup or in the source.

use std::collections::HashMap;
use std::process::Command;

use lifeboat::delta::{parse_commit, table_url};
use lifeboat::keys::{decode_event_key, S3Location};
use lifeboat::s3::S3Store;
use lifeboat::verify::{Report, TableReport, Verifier, VerifySettings};
use lifeboat::Config;
use lifeboat_tests::{fixture, repo_root, Lab};
use serde_json::{json, Value};

const SRC: &str = Lab::SRC;
const BACKUP: &str = Lab::BACKUP;

/// A verifier with a grace period of 0; with the replicator's queue when `queue` is set.
fn verifier(lab: &Lab, queue: bool) -> Verifier<S3Store> {
    let mut vars: HashMap<String, String> = lab.vars.clone();
    vars.insert("LIFEBOAT_GRACE_SECONDS".into(), "0".into());
    if !queue {
        vars.remove("LIFEBOAT_QUEUE_URL");
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let settings = VerifySettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    assert_eq!(settings.grace_seconds, 0);
    Verifier::new(lab.store(), Some(lab.aws.sqs().clone()), config, settings)
}

async fn verify_one(lab: &Lab, path: &str, queue: bool) -> TableReport {
    let table = S3Location::parse(&Lab::table(path)).unwrap();
    let report = verifier(lab, queue).run(Some(vec![table])).await.unwrap();
    assert_eq!(report.tables.len(), 1);
    let table = report.tables.into_iter().next().unwrap();
    println!("{}", serde_json::to_string_pretty(&table).unwrap());
    table
}

/// The decoded source key an S3 notification message names.
fn message_key(message: &aws_sdk_sqs::types::Message) -> String {
    let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    decode_event_key(body["Records"][0]["s3"]["object"]["key"].as_str().unwrap()).unwrap()
}

/// Replicates everything in the queue except the objects `skip` selects, whose messages are
/// dropped (as if the events were lost). Returns the skipped keys.
async fn replicate_except(lab: &Lab, skip: impl Fn(&str) -> bool) -> Vec<String> {
    let messages = lab.aws.receive_all(&lab.queue).await.unwrap();
    let mut skipped = Vec::new();
    let mut dropped = Vec::new();
    for m in &messages {
        let key = message_key(m);
        if skip(&key) {
            skipped.push(key);
            dropped.push(m.receipt_handle().unwrap().to_string());
        }
    }
    lab.aws.delete_messages(&lab.queue, &dropped).await.unwrap();
    // The remaining messages became invisible when received; make them visible again.
    for m in &messages {
        if !skip(&message_key(m)) {
            lab.aws
                .sqs()
                .change_message_visibility()
                .queue_url(&lab.queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }
    assert!(lab.drain().await.unwrap().is_empty());
    skipped.sort();
    skipped
}

/// The data files (source keys) commit `version` of table `path` adds.
async fn added_keys(lab: &Lab, path: &str, version: u64) -> Vec<String> {
    let table = S3Location::parse(&Lab::table(path)).unwrap();
    let body = lab
        .aws
        .get(SRC, &table.key(&format!("_delta_log/{version:020}.json")))
        .await
        .unwrap();
    let commit = parse_commit(&table_url(&table).unwrap(), version, &body).unwrap();
    commit.adds.iter().map(|a| table.key(&a.path)).collect()
}

fn commit_key(path: &str, version: u64) -> String {
    format!("{path}/_delta_log/{version:020}.json")
}

fn kinds(report: &TableReport) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| {
            serde_json::to_value(f.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn finding(report: &TableReport, kind: &str) -> Value {
    let f = report
        .findings
        .iter()
        .find(|f| serde_json::to_value(f.kind).unwrap() == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {:?}", kinds(report)));
    serde_json::to_value(f).unwrap()
}

fn ranges(report: &TableReport) -> Vec<(u64, u64)> {
    report
        .unrestorable_versions
        .iter()
        .map(|r| (r.first, r.last))
        .collect()
}

#[tokio::test]
async fn healthy_tables_are_discovered_and_every_version_is_restorable() {
    let lab = Lab::start(&[]).await.unwrap();
    lab.aws
        .delta(&["write", &Lab::table("healthy"), "history"])
        .unwrap();
    lab.aws
        .delta(&["write", &Lab::table("db/sales/orders"), "small"])
        .unwrap();
    lab.aws
        .put(SRC, "not-a-table/readme.txt", b"x".to_vec())
        .await
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());

    let v = verifier(&lab, true);
    let before = chrono::Utc::now();
    let response = v
        .handle(&serde_json::from_str(&fixture("eventbridge-scheduled.json")).unwrap())
        .await
        .unwrap();
    let report: Report = serde_json::from_value(response.clone()).unwrap();
    let names: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(
        names,
        [
            "s3://source-bucket/db/sales/orders",
            "s3://source-bucket/healthy"
        ]
    );
    for (t, latest) in report.tables.iter().zip([2, 6]) {
        assert_eq!(t.latest_backup_version, Some(latest), "{t:?}");
        assert_eq!(t.oldest_restorable_version, Some(0));
        assert_eq!(t.newest_restorable_version, Some(latest));
        assert_eq!(t.lag_versions, Some(0));
        assert!(t.unrestorable_versions.is_empty());
        assert!(t.findings.is_empty(), "{:?}", t.findings);
        let rpo = t.rpo_seconds.unwrap();
        assert!((0..120).contains(&rpo), "rpo {rpo}");
        for time in [
            &t.oldest_restorable_commit_time,
            &t.newest_restorable_commit_time,
        ] {
            let time = chrono::DateTime::parse_from_rfc3339(time.as_deref().unwrap()).unwrap();
            assert!(time <= chrono::Utc::now() && time > before - chrono::Duration::minutes(5));
        }
        assert!(t.oldest_restorable_commit_time <= t.newest_restorable_commit_time);
    }
    let summary = &response["summary"];
    assert_eq!(summary["tables_verified"], 2);
    assert_eq!(summary["unrestorable_tables"], 0);
    assert_eq!(summary["critical_findings"], 0);
    assert!(response["generated_at"].is_string());
    // Exactly the fields the design names, per table.
    let mut fields: Vec<&str> = response["tables"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "findings",
            "lag_versions",
            "latest_backup_version",
            "newest_restorable_commit_time",
            "newest_restorable_version",
            "oldest_restorable_commit_time",
            "oldest_restorable_version",
            "rpo_seconds",
            "table",
            "unrestorable_versions"
        ]
    );

    // The report is in the backup bucket, with each table's proven state (#17), and nothing
    // else was written there.
    let written = lab.aws.list_keys(BACKUP, "_lifeboat/").await.unwrap();
    let (reports, states): (Vec<String>, Vec<String>) = written
        .into_iter()
        .partition(|k| k.starts_with("_lifeboat/reports/"));
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states
        .iter()
        .all(|k| k.starts_with("_lifeboat/state/tables/")));
    assert!(reports.contains(&"_lifeboat/reports/latest.json".to_string()));
    let latest: Value = serde_json::from_slice(
        &lab.aws
            .get(BACKUP, "_lifeboat/reports/latest.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(latest, response);
    let backed_up = lab.aws.list_keys(BACKUP, &format!("{SRC}/")).await.unwrap();
    let source = lab.aws.list_keys(SRC, "").await.unwrap();
    assert_eq!(backed_up.len(), source.len());
    // Nothing was missing, so nothing was sent to the queue.
    assert!(lab.aws.receive_all(&lab.queue).await.unwrap().is_empty());

    // The same tables named in the input; a table outside the source buckets is bad input.
    let response = v
        .handle(&json!({"tables": [Lab::table("healthy")]}))
        .await
        .unwrap();
    assert_eq!(response["tables"].as_array().unwrap().len(), 1);
    let err = v
        .handle(&json!({"tables": ["s3://elsewhere/t"]}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "Lifeboat.BadInput");
    assert!(err.to_string().contains("LIFEBOAT_SOURCE_BUCKETS"), "{err}");
    let err = v.handle(&json!({"table": "s3://x"})).await.unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[tokio::test]
async fn backup_missing_one_data_file_makes_exactly_the_versions_needing_it_unrestorable() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    lab.aws.delta(&["write", &t, "small"]).unwrap(); // v0..v2, appends
    lab.aws.delta(&["overwrite", &t, "100", "6"]).unwrap(); // v3 removes them all
    lab.aws.delta(&["append", &t, "200", "6"]).unwrap(); // v4
    let lost = added_keys(&lab, "t", 1).await[0].clone();
    let skipped = replicate_except(&lab, |k| k == lost).await;
    assert_eq!(skipped, std::slice::from_ref(&lost));

    let report = verify_one(&lab, "t", false).await;
    assert_eq!(ranges(&report), [(1, 2)]);
    assert_eq!(report.oldest_restorable_version, Some(0));
    assert_eq!(report.newest_restorable_version, Some(4));
    assert_eq!(report.latest_backup_version, Some(4));
    assert_eq!(report.lag_versions, Some(0));
    let f = finding(&report, "missing_files_in_backup");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["count"], 1);
    assert_eq!(f["versions"], json!([{"first": 1, "last": 2}]));
    assert_eq!(
        f["files"][0]["path"].as_str().unwrap(),
        lost.strip_prefix("t/").unwrap()
    );
    assert!(f["files"][0]["found_size"].is_null());
    // The source still has it: it is missing from the backup, and no queue is configured.
    let m = finding(&report, "missing_in_backup");
    assert_eq!(m["count"], 1);
    assert_eq!(m["resent"], 0);
    assert!(m["detail"].as_str().unwrap().contains("lifeboat backfill"));
}

#[tokio::test]
async fn a_gap_in_the_backed_up_log_is_reported() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    lab.aws.delta(&["write", &t, "small"]).unwrap();
    lab.aws.delta(&["append", &t, "50", "3"]).unwrap();
    lab.aws.delta(&["append", &t, "60", "3"]).unwrap(); // v4
    replicate_except(&lab, |k| k == commit_key("t", 2)).await;

    let report = verify_one(&lab, "t", false).await;
    assert_eq!(report.latest_backup_version, Some(4));
    assert_eq!(report.oldest_restorable_version, Some(0));
    assert_eq!(report.newest_restorable_version, Some(1));
    assert_eq!(ranges(&report), [(2, 4)]);
    assert_eq!(report.lag_versions, Some(3));
    let gap = finding(&report, "log_gap");
    assert_eq!(gap["severity"], "critical");
    assert_eq!(gap["missing_commits"], json!({"first": 2, "last": 2}));
    assert_eq!(gap["unrestorable"], json!({"first": 2, "last": 4}));
    assert_eq!(
        report.findings[0].severity,
        lifeboat::verify::Severity::Critical
    );
    assert_eq!(finding(&report, "missing_in_backup")["count"], 1);
}

#[tokio::test]
async fn checkpointed_table_without_its_early_commits_is_restorable_from_the_checkpoint_on() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    // v0..v6; a checkpoint at v4.
    lab.aws.delta(&["write", &t, "history"]).unwrap();
    let early: Vec<String> = (0..4).map(|v| commit_key("t", v)).collect();
    let skipped = replicate_except(&lab, |k| early.iter().any(|e| e == k)).await;
    assert_eq!(skipped.len(), 4);
    assert!(lab
        .aws
        .get(
            BACKUP,
            &format!("{SRC}/t/_delta_log/00000000000000000004.checkpoint.parquet")
        )
        .await
        .is_ok());

    let report = verify_one(&lab, "t", false).await;
    assert_eq!(report.oldest_restorable_version, Some(4));
    assert_eq!(report.newest_restorable_version, Some(6));
    assert_eq!(report.latest_backup_version, Some(6));
    assert_eq!(ranges(&report), [(0, 3)]);
    assert!(report.oldest_restorable_commit_time.is_some());
    let gap = finding(&report, "log_gap");
    assert_eq!(gap["severity"], "warning");
    assert_eq!(gap["missing_commits"], json!({"first": 0, "last": 3}));
    assert_eq!(finding(&report, "missing_in_backup")["count"], 4);
    assert!(!kinds(&report).contains(&"no_restorable_version".to_string()));
}

#[tokio::test]
async fn a_dropped_table_is_reported_and_still_restorable() {
    let lab = Lab::start(&[]).await.unwrap();
    lab.aws
        .delta(&["write", &Lab::table("t"), "small"])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    assert!(lab.purge("t/").await.unwrap() > 10);
    assert!(lab.drain().await.unwrap().is_empty());

    let report = verify_one(&lab, "t", true).await;
    assert_eq!(kinds(&report), ["table_dropped"]);
    assert_eq!(finding(&report, "table_dropped")["severity"], "critical");
    assert_eq!(report.oldest_restorable_version, Some(0));
    assert_eq!(report.newest_restorable_version, Some(2));
    assert_eq!(report.lag_versions, None);
    assert!(lab.aws.receive_all(&lab.queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_early_vacuum_is_reported_as_source_files_missing() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    lab.aws.delta(&["write", &t, "small"]).unwrap();
    lab.aws.delta(&["overwrite", &t, "100", "6"]).unwrap(); // v3
    assert!(lab.drain().await.unwrap().is_empty());
    let removed = lab.aws.delta(&["vacuum", &t]).unwrap()["removed"]
        .as_u64()
        .unwrap();
    assert!(removed > 0);
    assert!(lab.drain().await.unwrap().is_empty());

    let report = verify_one(&lab, "t", true).await;
    assert_eq!(kinds(&report), ["source_files_missing"]);
    let f = finding(&report, "source_files_missing");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["latest_version_broken"], false);
    assert_eq!(f["count"], removed);
    assert_eq!(f["versions"], json!([{"first": 0, "last": 2}]));
    assert!(f["detail"].as_str().unwrap().contains("--mode repair"));
    // The backup is whole.
    assert!(report.unrestorable_versions.is_empty());
    assert_eq!(report.oldest_restorable_version, Some(0));
    assert_eq!(report.lag_versions, Some(0));
}

#[tokio::test]
async fn a_corrupted_commit_is_reported_and_never_resent() {
    let lab = Lab::start(&[]).await.unwrap();
    lab.aws
        .delta(&["write", &Lab::table("t"), "small"])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    lab.aws
        .put(SRC, &commit_key("t", 1), b"{garbage".to_vec())
        .await
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty()); // the replicator keeps it aside

    let report = verify_one(&lab, "t", true).await;
    let f = finding(&report, "log_corrupted");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["count"], 1);
    assert_eq!(
        f["files"][0]["path"],
        "_delta_log/00000000000000000001.json"
    );
    assert_eq!(f["files"][0]["source_size"], 8);
    assert_eq!(finding(&report, "backup_conflict")["count"], 1);
    assert!(!kinds(&report).contains(&"missing_in_backup".to_string()));
    assert!(lab.aws.receive_all(&lab.queue).await.unwrap().is_empty());
    // The backup keeps the original: every version is restorable.
    assert!(report.unrestorable_versions.is_empty());
    assert_eq!(report.newest_restorable_version, Some(2));

    // Same size, other content, written after the copy: the listing shows the later write,
    // and the content identity (checksums, then the bytes) tells it differs. Listings show
    // seconds: a rewrite in the very second of the copy is the replicator's to catch.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let original = lab.aws.get(SRC, &commit_key("t", 2)).await.unwrap();
    let mut flipped = original.clone();
    let at = flipped.iter().position(|b| *b == b'0').unwrap();
    flipped[at] = b'1';
    lab.aws
        .put(SRC, &commit_key("t", 2), flipped)
        .await
        .unwrap();
    let report = verify_one(&lab, "t", false).await;
    let f = finding(&report, "log_corrupted");
    assert_eq!(f["count"], 2);
    assert_eq!(
        f["files"][1]["path"],
        "_delta_log/00000000000000000002.json"
    );
}

#[tokio::test]
async fn newest_commits_deleted_from_the_source_are_reported_as_a_regressed_log() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    lab.aws.delta(&["write", &t, "small"]).unwrap();
    lab.aws.delta(&["append", &t, "100", "6"]).unwrap(); // v3
    lab.aws.delta(&["append", &t, "200", "6"]).unwrap(); // v4
    assert!(lab.drain().await.unwrap().is_empty());
    // `aws s3 rm` of the two newest commits: readers now see version 2, silently.
    for v in [3, 4] {
        let key = format!("t/_delta_log/{v:020}.json");
        lab.aws.delete(SRC, &key).await.unwrap();
    }
    assert!(lab.drain().await.unwrap().is_empty());

    let report = verify_one(&lab, "t", true).await;
    assert_eq!(kinds(&report), ["source_log_regressed"]);
    let f = finding(&report, "source_log_regressed");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["lost_versions"], json!({"first": 3, "last": 4}));
    assert_eq!(f["source_latest_version"], 2);
    assert!(f["detail"].as_str().unwrap().contains("--mode repair"));
    assert_eq!(report.lag_versions, Some(-2));
    assert_eq!(report.newest_restorable_version, Some(4));
}

#[tokio::test]
async fn a_deleted_data_file_is_reported_as_source_files_missing() {
    let lab = Lab::start(&[]).await.unwrap();
    lab.aws
        .delta(&["write", &Lab::table("t"), "small"])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let victim = added_keys(&lab, "t", 1).await[0].clone();
    lab.aws.delete(SRC, &victim).await.unwrap();
    assert!(lab.drain().await.unwrap().is_empty());

    let report = verify_one(&lab, "t", true).await;
    assert_eq!(kinds(&report), ["source_files_missing"]);
    let f = finding(&report, "source_files_missing");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["latest_version_broken"], true);
    assert_eq!(f["count"], 1);
    assert_eq!(
        f["files"][0]["path"].as_str().unwrap(),
        victim.strip_prefix("t/").unwrap()
    );
    assert_eq!(f["versions"], json!([{"first": 2, "last": 2}]));
    assert!(report.unrestorable_versions.is_empty());
}

#[tokio::test]
async fn missing_objects_are_resent_and_the_replicator_heals_the_backup() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    lab.aws.delta(&["write", &t, "small"]).unwrap();
    // v1's files sit in partitions whose keys hold spaces, '+', '%' and non-ASCII.
    let mut lost = added_keys(&lab, "t", 1).await;
    lost.push(commit_key("t", 2));
    lost.sort();
    assert!(lost.iter().any(|k| k.contains('%')), "{lost:?}");
    let skipped = replicate_except(&lab, |k| lost.iter().any(|l| l == k)).await;
    assert_eq!(skipped, lost);

    let report = verify_one(&lab, "t", true).await;
    assert_eq!(report.newest_restorable_version, Some(0));
    let m = finding(&report, "missing_in_backup");
    assert_eq!(m["count"], lost.len());
    assert_eq!(m["resent"], lost.len());
    assert_eq!(m["log_files"], 1);

    // The resent messages are S3 notifications the replicator copies from.
    assert!(lab.drain().await.unwrap().is_empty());
    for key in &lost {
        assert_eq!(
            lab.aws.get(BACKUP, &format!("{SRC}/{key}")).await.unwrap(),
            lab.aws.get(SRC, key).await.unwrap(),
            "{key}"
        );
    }
    let report = verify_one(&lab, "t", true).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(report.unrestorable_versions.is_empty());
    assert_eq!(report.newest_restorable_version, Some(2));
    assert!(lab.aws.receive_all(&lab.queue).await.unwrap().is_empty());
}

/// Builds the `lifeboat` binary (a no-op when it is up to date) and returns its path.
fn lifeboat_binary() -> std::path::PathBuf {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "lifeboat-cli",
            "--bin",
            "lifeboat",
            "--message-format=json",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["target"]["name"] == "lifeboat")
        .find_map(|m| m["executable"].as_str().map(Into::into))
        .expect("cargo names the lifeboat executable")
}

#[tokio::test]
async fn cli_prints_restore_points_and_exits_3_when_a_table_has_no_restorable_version() {
    let lab = Lab::start(&[]).await.unwrap();
    lab.aws
        .delta(&["write", &Lab::table("ok"), "small"])
        .unwrap();
    lab.aws
        .delta(&["write", &Lab::table("broken"), "small"])
        .unwrap();
    // Commit 0 never reached the backup: no version of "broken" can be rebuilt.
    replicate_except(&lab, |k| k == commit_key("broken", 0)).await;
    let binary = lifeboat_binary();
    let run = |args: &[&str]| {
        let out = Command::new(&binary)
            .arg("verify")
            .args(args)
            .env("LIFEBOAT_BACKUP_BUCKET", BACKUP)
            .env("LIFEBOAT_SOURCE_BUCKETS", SRC)
            .env("LIFEBOAT_GRACE_SECONDS", "0")
            .env_remove("LIFEBOAT_QUEUE_URL")
            .env_remove("LIFEBOAT_TABLES")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, text, err) = run(&["--table", &Lab::table("ok")]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(text.contains("NEWEST RESTORABLE"), "{text}");
    assert!(text.contains("s3://source-bucket/ok  v2"), "{text}");

    let (code, json_text, err) = run(&["--table", &Lab::table("broken"), "--json"]);
    assert_eq!(code, Some(3), "{json_text}{err}");
    let report: Report = serde_json::from_str(&json_text).unwrap();
    let t = &report.tables[0];
    assert_eq!(t.newest_restorable_version, None);
    assert_eq!(t.latest_backup_version, Some(2));
    assert_eq!(ranges(t), [(0, 2)]);
    assert!(kinds(t).contains(&"no_restorable_version".to_string()));

    // Discovery finds both; the readable output names the problem.
    let (code, text, err) = run(&[]);
    assert_eq!(code, Some(3), "{text}{err}");
    assert!(text.contains("s3://source-bucket/broken"), "{text}");
    assert!(text.contains("CRITICAL no_restorable_version"), "{text}");
    assert!(text.contains("unrestorable: v0..v2"), "{text}");

    // Bad usage exits 2; a table outside the source buckets is a failure (1).
    let (code, _, err) = run(&["--table", "source-bucket/ok"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("expected s3://"), "{err}");
    let (code, _, err) = run(&["--table", "s3://elsewhere/t"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("LIFEBOAT_SOURCE_BUCKETS"), "{err}");
}

#[tokio::test]
async fn a_commit_deleted_in_the_middle_of_the_source_log_is_reported_as_a_broken_log() {
    let lab = Lab::start(&[]).await.unwrap();
    let t = Lab::table("t");
    lab.aws.delta(&["write", &t, "small"]).unwrap();
    lab.aws.delta(&["append", &t, "100", "6"]).unwrap(); // v3
    assert!(lab.drain().await.unwrap().is_empty());
    // One commit deleted between two others, no checkpoint after it: readers fail with
    // "expected contiguous commit files".
    lab.aws.delete(SRC, &commit_key("t", 1)).await.unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let unreadable = lab.aws.delta(&["read", &t]);
    assert!(unreadable.is_err(), "readers fail: {unreadable:?}");

    let report = verify_one(&lab, "t", true).await;
    assert!(
        kinds(&report).contains(&"source_log_broken".to_string()),
        "{report:?}"
    );
    let f = finding(&report, "source_log_broken");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["missing_versions"], json!([{"first": 1, "last": 1}]));
    assert_eq!(f["unreadable_versions"], json!([{"first": 1, "last": 3}]));
    assert_eq!(f["latest_version_unreadable"], true);
    assert!(f["detail"].as_str().unwrap().contains("--mode repair"));
    assert_eq!(report.newest_restorable_version, Some(3));
}

#[tokio::test]
async fn a_prefix_whose_commits_are_all_gone_is_dropped_whatever_else_sits_in_the_log() {
    let lab = Lab::start(&[]).await.unwrap();
    lab.aws
        .delta(&["write", &Lab::table("t"), "small"])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    assert!(lab.purge("t/").await.unwrap() > 10);
    // What Databricks leaves behind in a log it has emptied.
    lab.aws
        .put(SRC, "t/_delta_log/.s3-optimization-0", Vec::new())
        .await
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());

    let report = verify_one(&lab, "t", true).await;
    assert!(
        kinds(&report).contains(&"table_dropped".to_string()),
        "{report:?}"
    );
    assert_eq!(finding(&report, "table_dropped")["severity"], "critical");
    assert_eq!(report.lag_versions, None);
    assert_eq!(report.newest_restorable_version, Some(2));
}
