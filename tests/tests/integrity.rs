//! Backup integrity as S3 really behaves (issue 13), on the local AWS that behaves like S3
//! where this depends on it (`scripts/local_aws.py`): the backup bucket is SSE-KMS (its ETags
//! are not MD5s), the source is versioned, copies get new ETags, and every object has a
//! checksum.
//!
//! Each table file the source overwrites in place (a data file, a deletion vector, a
//! `_change_data/` file, a checkpoint, a commit; with garbage of the same length and of another
//! length): the backup keeps the original, the verifier reports it, repair puts the original
//! bytes back, and after a drop a rollback reads back equal to the table before the poisoning.
//! Tables are read back with DuckDB's delta extension, which applies deletion vectors.

use std::collections::HashMap;
use std::path::PathBuf;

use lifeboat::keys::S3Location;
use lifeboat::restore::{RestoreRequest, RestoreResponse, Restorer};
use lifeboat::s3::S3Store;
use lifeboat::verify::{FindingKind, TableReport, Verifier, VerifySettings};
use lifeboat::Config;
use lifeboat_tests::{shared_tables, Lab};
use serde_json::{json, Value};

fn shared(relative: &str) -> PathBuf {
    shared_tables().join(relative)
}

fn request(payload: Value) -> RestoreRequest {
    RestoreRequest::from_value(&payload).unwrap()
}

async fn restore(lab: &Lab, payload: Value) -> RestoreResponse {
    Restorer::new(lab.store(), lab.config())
        .run(&request(payload), None, |_, _| {})
        .await
        .unwrap()
}

fn verifier(lab: &Lab) -> Verifier<S3Store> {
    let mut vars: HashMap<String, String> = lab.vars.clone();
    vars.insert("LIFEBOAT_GRACE_SECONDS".into(), "0".into());
    vars.remove("LIFEBOAT_QUEUE_URL");
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let settings = VerifySettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    Verifier::new(lab.store(), None, config, settings)
}

async fn verify(lab: &Lab, table: &str) -> TableReport {
    let table = S3Location::parse(table).unwrap();
    let report = verifier(lab).run(Some(vec![table])).await.unwrap();
    report.tables.into_iter().next().unwrap()
}

fn kinds(report: &TableReport) -> Vec<FindingKind> {
    report.findings.iter().map(|f| f.kind).collect()
}

/// Uploads a shared table into the source as its writer would, and replicates it.
async fn table_from(lab: &Lab, shared_table: &str, path: &str) -> String {
    let table = Lab::table(path);
    let dir = shared(shared_table);
    lab.aws
        .delta(&["upload", dir.to_str().unwrap(), &table])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    table
}

/// The table's rows as DuckDB's delta extension reads them.
fn rows(lab: &Lab, table: &str) -> Value {
    lab.aws.delta(&["read", table]).unwrap()
}

/// Overwrites `relative` under `table` in the source with garbage of the same length, or of
/// another length, with the writer's own credentials; then delivers the event.
async fn poison(lab: &Lab, path: &str, relative: &str, same_length: bool) -> Vec<u8> {
    let key = format!("{path}/{relative}");
    let original = lab.aws.get(Lab::SRC, &key).await.unwrap();
    let len = if same_length {
        original.len()
    } else {
        original.len() + 7
    };
    // Listings show seconds: a rewrite in the very second of the copy is the replicator's to
    // catch (it is, below), not the verifier's.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lab.aws.put(Lab::SRC, &key, vec![b'#'; len]).await.unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    original
}

/// The whole story for one file: poison, the backup keeps the original, the finding, repair,
/// poison again, drop, rollback, read back.
async fn poisoned(shared_table: &str, relative: &str, finding: FindingKind) {
    for same_length in [true, false] {
        let lab = Lab::start(&[]).await.unwrap();
        let path = format!("t/poison-{}", same_length);
        let table = table_from(&lab, shared_table, &path).await;
        let before = rows(&lab, &table);
        let backup_key = format!("{}/{path}/{relative}", Lab::SRC);

        let original = poison(&lab, &path, relative, same_length).await;
        let case = format!("{relative} (same length: {same_length})");
        assert_eq!(
            lab.aws.get(Lab::BACKUP, &backup_key).await.unwrap(),
            original,
            "{case}: the backup keeps the original"
        );
        assert_eq!(
            lab.aws
                .version_count(Lab::BACKUP, &backup_key)
                .await
                .unwrap(),
            1,
            "{case}: no second version of the original's key"
        );
        let kept = lab
            .aws
            .list_keys(
                Lab::BACKUP,
                &format!("_lifeboat/conflicts/{}/{path}/", Lab::SRC),
            )
            .await
            .unwrap();
        assert_eq!(
            kept.len(),
            1,
            "{case}: the new content is kept aside: {kept:?}"
        );

        let report = verify(&lab, &table).await;
        assert!(
            kinds(&report).contains(&finding),
            "{case}: {finding:?} expected: {:#?}",
            report.findings
        );
        assert!(
            kinds(&report).contains(&FindingKind::BackupConflict),
            "{case}"
        );
        assert!(
            report.newest_restorable_version.is_some(),
            "{case}: still restorable"
        );

        let repaired = restore(
            &lab,
            json!({"table": table, "mode": "repair", "dry_run": false}),
        )
        .await;
        assert!(repaired.result.as_ref().unwrap().complete, "{case}");
        assert_eq!(
            lab.aws
                .get(Lab::SRC, &format!("{path}/{relative}"))
                .await
                .unwrap(),
            original,
            "{case}: repair puts the original bytes back"
        );
        assert_eq!(rows(&lab, &table), before, "{case}: read back after repair");
        // The repair's own writes are the original content: no new conflict.
        assert!(lab.drain().await.unwrap().is_empty());
        let kept_after = lab
            .aws
            .list_keys(
                Lab::BACKUP,
                &format!("_lifeboat/conflicts/{}/{path}/", Lab::SRC),
            )
            .await
            .unwrap();
        assert_eq!(kept_after, kept, "{case}: the repair raised no conflict");

        // Poisoned again, then the table is dropped: rollback recreates it as it was.
        poison(&lab, &path, relative, same_length).await;
        let removed = lab.purge(&format!("{path}/")).await.unwrap();
        assert!(removed > 0);
        assert!(lab.drain().await.unwrap().is_empty());
        let recreated = restore(
            &lab,
            json!({"table": table, "mode": "rollback", "dry_run": false}),
        )
        .await;
        assert!(recreated.plan.recreate, "{case}");
        assert!(recreated.result.as_ref().unwrap().complete, "{case}");
        assert_eq!(
            rows(&lab, &table),
            before,
            "{case}: read back after the drop"
        );
    }
}

const DV_TABLE: &str = "delta-rs/table_with_deletion_logs";
const CDF_TABLE: &str = "delta-kernel-rs/data/compacted-log-files-table";

#[tokio::test]
async fn an_overwritten_data_file() {
    poisoned(
        DV_TABLE,
        "part-00000-cb251d5e-b665-437a-a9a7-fbfc5137c77d.c000.snappy.parquet",
        FindingKind::SourceObjectOverwritten,
    )
    .await;
}

#[tokio::test]
async fn an_overwritten_deletion_vector() {
    let dv = std::fs::read_dir(shared(DV_TABLE))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("deletion_vector_"))
        .max()
        .unwrap();
    poisoned(DV_TABLE, &dv, FindingKind::SourceObjectOverwritten).await;
}

#[tokio::test]
async fn an_overwritten_change_data_file() {
    let cdc = std::fs::read_dir(shared(CDF_TABLE).join("_change_data"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .min()
        .unwrap();
    poisoned(
        CDF_TABLE,
        &format!("_change_data/{cdc}"),
        FindingKind::SourceObjectOverwritten,
    )
    .await;
}

#[tokio::test]
async fn an_overwritten_checkpoint() {
    poisoned(
        DV_TABLE,
        "_delta_log/00000000000000000020.checkpoint.parquet",
        FindingKind::LogCorrupted,
    )
    .await;
}

#[tokio::test]
async fn an_overwritten_commit() {
    poisoned(
        DV_TABLE,
        "_delta_log/00000000000000000020.json",
        FindingKind::LogCorrupted,
    )
    .await;
}

/// A copy of an object onto itself with another storage class (same bytes, a new version and
/// timestamp) is not a conflict, and the verifier finds nothing wrong.
#[tokio::test]
async fn an_in_place_rewrite_of_the_same_bytes_is_no_conflict() {
    let lab = Lab::start(&[]).await.unwrap();
    let path = "t/rewritten";
    let table = table_from(&lab, DV_TABLE, path).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let keys = lab
        .aws
        .list_keys(Lab::SRC, &format!("{path}/"))
        .await
        .unwrap();
    for key in &keys {
        lab.aws
            .s3()
            .copy_object()
            .bucket(Lab::SRC)
            .key(key)
            .copy_source(format!("{}/{key}", Lab::SRC))
            .storage_class(aws_sdk_s3::types::StorageClass::StandardIa)
            .send()
            .await
            .unwrap();
    }
    assert!(lab.drain().await.unwrap().is_empty());
    let kept = lab
        .aws
        .list_keys(Lab::BACKUP, "_lifeboat/conflicts/")
        .await
        .unwrap();
    assert!(kept.is_empty(), "no conflict: {kept:?}");
    let report = verify(&lab, &table).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// On a versioned source, every file a restore writes back gets a new version id; none of them
/// is a conflict.
#[tokio::test]
async fn a_restore_on_a_versioned_source_raises_no_conflict() {
    let lab = Lab::start(&[]).await.unwrap();
    let path = "t/versioned";
    let table = table_from(&lab, DV_TABLE, path).await;
    let before = rows(&lab, &table);
    // An `rm --recursive` of the data and the newest commits.
    let keys = lab
        .aws
        .list_keys(Lab::SRC, &format!("{path}/"))
        .await
        .unwrap();
    for key in keys
        .iter()
        .filter(|k| !k.contains("/_delta_log/0000000000000000000"))
    {
        lab.aws.delete(Lab::SRC, key).await.unwrap();
    }
    assert!(lab.drain().await.unwrap().is_empty());
    let repaired = restore(
        &lab,
        json!({"table": table, "mode": "repair", "dry_run": false}),
    )
    .await;
    assert!(repaired.result.as_ref().unwrap().copied > 0);
    assert!(lab.drain().await.unwrap().is_empty());
    let kept = lab
        .aws
        .list_keys(Lab::BACKUP, "_lifeboat/conflicts/")
        .await
        .unwrap();
    assert!(kept.is_empty(), "no conflict: {kept:?}");
    let report = verify(&lab, &table).await;
    assert!(
        !kinds(&report).contains(&FindingKind::BackupConflict),
        "{:#?}",
        report.findings
    );
    assert_eq!(rows(&lab, &table), before);
}

/// Under KMS ETags: a repair of a healthy table copies nothing, and a clone that takes three
/// invocations (each stopped after a few copies, as a deadline stops it) completes and reads
/// back equal.
#[tokio::test]
async fn kms_etags_neither_block_nor_repeat_a_restore() {
    let lab = Lab::start(&[]).await.unwrap();
    let path = "t/kms";
    let table = table_from(&lab, DV_TABLE, path).await;
    let before = rows(&lab, &table);

    let healthy = restore(&lab, json!({"table": table, "mode": "repair"})).await;
    assert_eq!(
        healthy.plan.objects_to_copy, 0,
        "a healthy table needs nothing: {:?}",
        healthy.plan.copies_preview
    );

    let target = Lab::table("clones/kms");
    let payload = json!({"table": table, "mode": "clone", "target": target, "dry_run": false});
    let planned = restore(
        &lab,
        json!({"table": table, "mode": "clone", "target": target}),
    )
    .await
    .plan
    .objects_to_copy;
    let per_run = planned / 3 + 1;
    let restorer = Restorer::new(lab.store(), lab.config()).with_copy_limit(per_run);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations <= 5, "the clone does not finish");
        let response = restorer
            .run(&request(payload.clone()), None, |_, _| {})
            .await
            .unwrap_or_else(|e| panic!("invocation {invocations}: {e}"));
        if response.result.as_ref().unwrap().complete {
            break;
        }
    }
    assert!(
        invocations >= 3,
        "{invocations} invocation(s) for {planned} objects"
    );
    assert_eq!(rows(&lab, &target), before);
}

/// A stale or forged `_last_checkpoint` in the backup (pointing at a checkpoint that is not
/// there) neither makes a version unrestorable nor goes into a restored table.
#[tokio::test]
async fn a_forged_last_checkpoint_in_the_backup_is_not_trusted() {
    let lab = Lab::start(&[]).await.unwrap();
    let path = "t/forged";
    let table = table_from(&lab, DV_TABLE, path).await;
    let before = rows(&lab, &table);
    let hint = format!("{}/{path}/_delta_log/_last_checkpoint", Lab::SRC);
    lab.aws
        .put(
            Lab::BACKUP,
            &hint,
            br#"{"version":19,"size":42,"parts":3}"#.to_vec(),
        )
        .await
        .unwrap();

    let target = Lab::table("clones/forged");
    let cloned = restore(
        &lab,
        json!({"table": table, "mode": "clone", "target": target, "dry_run": false}),
    )
    .await;
    assert!(cloned.result.as_ref().unwrap().complete);
    assert_eq!(rows(&lab, &target), before, "the clone reads back equal");

    lab.purge(&format!("{path}/")).await.unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let recreated = restore(
        &lab,
        json!({"table": table, "mode": "rollback", "dry_run": false}),
    )
    .await;
    assert!(recreated.plan.recreate);
    assert_eq!(rows(&lab, &table), before, "the rollback reads back equal");
}

/// On the local AWS that behaves like S3 (SSE-KMS backup: no ETag of the backup equals the
/// source's), verifying a healthy table of 1,000 versions costs at most 1.1 times the request
/// floor: one GET per commit and one LIST per 1,000 keys of each side, with no HEAD for an
/// unchanged object.
#[tokio::test]
async fn verify_requests_stay_near_the_floor_under_kms() {
    use lifeboat::replicate::Replicator;
    use lifeboat_tests::FaultProxy;

    const VERSIONS: u64 = 1000;
    let lab = Lab::start(&[]).await.unwrap();
    let path = "t/thousand";
    // A synthetic log: version v adds one small file (written directly, as a fast writer).
    lab.write_synthetic_versions(path, 0, VERSIONS).await;
    // Into the backup as the replicator copies (the events are not needed: a backfill).
    let table_location = S3Location::parse(&Lab::table(path)).unwrap();
    let replicator = Replicator::new(lab.store(), lab.config());
    let summary = lifeboat::backfill::backfill(&replicator, &table_location, |_, _| {})
        .await
        .unwrap();
    assert_eq!(summary.errors.len(), 0, "{:?}", summary.errors);
    lab.aws.s3().list_buckets().send().await.unwrap();

    let proxy = FaultProxy::start(&lab.aws.endpoint, 0.0, "", 1).unwrap();
    let counted = S3Store::new(proxy.s3_client().await);
    let mut vars: HashMap<String, String> = lab.vars.clone();
    vars.insert("LIFEBOAT_GRACE_SECONDS".into(), "0".into());
    vars.remove("LIFEBOAT_QUEUE_URL");
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let settings = VerifySettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let verifier = Verifier::new(counted, None::<aws_sdk_sqs::Client>, config, settings);
    let report = verifier.run(Some(vec![table_location])).await.unwrap();
    let t = &report.tables[0];
    assert_eq!(t.newest_restorable_version, Some(VERSIONS - 1));
    assert!(t.findings.is_empty(), "{:#?}", t.findings);

    let requests = proxy.stats().unwrap()["requests"].as_u64().unwrap();
    // Per side, 2,000 keys: 2 LIST pages each; the conflicts prefix: 1 LIST; 1,000 GETs.
    let objects = 2 * VERSIONS;
    let floor = VERSIONS + 2 * objects.div_ceil(1000) + 1;
    println!("verify of {VERSIONS} versions: {requests} requests, floor {floor}");
    assert!(
        requests as f64 <= 1.1 * floor as f64,
        "{requests} requests for a floor of {floor}"
    );
}

/// A stale `aws s3 sync --delete` removes the newest commit, and writers carry on: the source
/// now holds another commit 2 and a commit 3 on top of it. The backup keeps its own commit 2;
/// the verifier reports the divergence, never calls the stitched chain restorable, and a repair
/// refuses to overwrite the source's valid commit (its rows 500 and 501 are a legitimate
/// write). Rolling back to before the divergence is offered, and works.
#[tokio::test]
async fn a_diverged_log_is_never_stitched_nor_repaired_over() {
    let lab = Lab::start(&[]).await.unwrap();
    let table = Lab::table("t/diverged");
    lab.aws.delta(&["write", &table, "small"]).unwrap(); // versions 0..=2
    assert!(lab.drain().await.unwrap().is_empty());
    // The other branch arrives seconds after the backup's copies (listings show seconds).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lab.aws
        .delete(Lab::SRC, "t/diverged/_delta_log/00000000000000000002.json")
        .await
        .unwrap();
    lab.aws.delta(&["append", &table, "500", "2"]).unwrap(); // another commit 2
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lab.aws.delta(&["append", &table, "600", "2"]).unwrap(); // commit 3 on top of it
    assert!(lab.drain().await.unwrap().is_empty());
    let source_rows = rows(&lab, &table);

    let report = verify(&lab, &table).await;
    let diverged = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::LogDiverged)
        .unwrap_or_else(|| panic!("log_diverged expected: {:#?}", report.findings));
    assert_eq!(diverged.data["version"], 2, "{diverged:?}");
    assert_eq!(diverged.data["stitched_from"], 3, "{diverged:?}");
    assert!(
        !kinds(&report).contains(&FindingKind::LogCorrupted),
        "another branch is not corruption: {:#?}",
        report.findings
    );
    assert_eq!(
        report.newest_restorable_version,
        Some(2),
        "the stitched version 3 is not restorable"
    );

    let refused = Restorer::new(lab.store(), lab.config())
        .plan(&request(json!({"table": table, "mode": "repair"})))
        .await
        .expect_err("a repair over a valid commit is refused");
    assert_eq!(refused.kind(), "Lifeboat.NotRestorable");
    assert!(refused.to_string().contains("diverged"), "{refused}");
    assert_eq!(
        rows(&lab, &table),
        source_rows,
        "the source's branch is untouched"
    );

    // Rolling back to before the divergence: the table equals version 1 of either branch.
    let target = Lab::table("clones/v1");
    restore(
        &lab,
        json!({"table": table, "mode": "clone", "version": 1, "target": target, "dry_run": false}),
    )
    .await;
    let rolled = restore(
        &lab,
        json!({"table": table, "mode": "rollback", "version": 1, "dry_run": false}),
    )
    .await;
    assert!(rolled.result.as_ref().unwrap().commit_written.is_some());
    let (now, then) = (rows(&lab, &table), rows(&lab, &target));
    assert_eq!(
        (&now["rows"], &now["sha256"]),
        (&then["rows"], &then["sha256"])
    );
}

/// A V2 checkpoint whose sidecar the backup lacks cannot be used by a reader: the verifier says
/// so (`bad_checkpoint`), and a clone leaves that checkpoint out, so readers of the clone replay
/// the commits and read the table as it was.
#[tokio::test]
async fn a_checkpoint_missing_its_sidecar_is_reported_and_left_out() {
    let lab = Lab::start(&[]).await.unwrap();
    let path = "t/sidecars";
    let table = table_from(
        &lab,
        "delta-kernel-rs/data/v2-json-sidecars-struct-stats-only",
        path,
    )
    .await;
    let before = rows(&lab, &table);
    let sidecars = lab
        .aws
        .list_keys(
            Lab::BACKUP,
            &format!("{}/{path}/_delta_log/_sidecars/", Lab::SRC),
        )
        .await
        .unwrap();
    assert!(!sidecars.is_empty());
    for key in &sidecars {
        lab.aws.delete(Lab::BACKUP, key).await.unwrap();
    }
    let report = verify(&lab, &table).await;
    assert!(
        kinds(&report).contains(&FindingKind::BadCheckpoint),
        "{:#?}",
        report.findings
    );
    assert_eq!(
        report.newest_restorable_version,
        Some(5),
        "the commits still reach it"
    );

    let target = Lab::table("clones/sidecars");
    let cloned = restore(
        &lab,
        json!({"table": table, "mode": "clone", "target": target, "dry_run": false}),
    )
    .await;
    assert!(cloned.result.as_ref().unwrap().complete);
    let copied = lab
        .aws
        .list_keys(Lab::SRC, "clones/sidecars/_delta_log/")
        .await
        .unwrap();
    assert!(
        !copied.iter().any(|k| k.contains(".checkpoint.")),
        "the unusable checkpoint is left out: {copied:?}"
    );
    let (now, then) = (rows(&lab, &target), before);
    assert_eq!(
        (&now["rows"], &now["sha256"]),
        (&then["rows"], &then["sha256"])
    );
}

/// A writer that commits while a repair puts lost commits back is never overwritten: the
/// repair writes the data first, then the commits one at a time put-if-absent, and stops at the
/// version the writer took, saying so; the writer's commit stays as it wrote it.
#[tokio::test]
async fn a_writer_committing_during_a_repair_is_never_overwritten() {
    let lab = Lab::start(&[]).await.unwrap();
    let table = Lab::table("t/live");
    lab.aws.delta(&["write", &table, "small"]).unwrap(); // versions 0..=2
    assert!(lab.drain().await.unwrap().is_empty());
    // `rm` of the two newest commits.
    for v in [1u64, 2] {
        let key = format!("t/live/_delta_log/{v:020}.json");
        lab.aws.delete(Lab::SRC, &key).await.unwrap();
    }
    let restorer = Restorer::new(lab.store(), lab.config());
    let payload = json!({"table": table, "mode": "repair", "dry_run": false});
    let plan = restorer.plan(&request(payload)).await.unwrap();
    assert_eq!(plan.objects_to_copy, 2, "{:?}", plan.copies_preview);
    // A writer commits version 2 between the plan and its execution.
    let theirs = b"{\"commitInfo\":{\"timestamp\":1,\"operation\":\"WRITE\"}}\n".to_vec();
    let key = "t/live/_delta_log/00000000000000000002.json";
    lab.aws.put(Lab::SRC, key, theirs.clone()).await.unwrap();
    let err = restorer
        .execute(&plan, None, |_, _| {})
        .await
        .expect_err("the writer's commit is not overwritten");
    assert_eq!(err.kind(), "Lifeboat.ConcurrentCommit", "{err}");
    assert_eq!(lab.aws.get(Lab::SRC, key).await.unwrap(), theirs);
    // The commit before it went back, in order.
    assert!(lab
        .aws
        .get(Lab::SRC, "t/live/_delta_log/00000000000000000001.json")
        .await
        .is_ok());
}
