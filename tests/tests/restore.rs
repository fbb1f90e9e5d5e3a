//! The restorer against the local S3 server: real Delta tables written by `deltalake`,
//! replicated through the bucket's notification queue, damaged, restored, and read back with
//! `deltalake` row for row.

use lifeboat::restore::{RestoreRequest, Restorer};
use lifeboat::s3::S3Store;
use lifeboat_tests::Lab;
use serde_json::{json, Value};

async fn lab() -> Lab {
    Lab::start(&[]).await.unwrap()
}

fn restorer(lab: &Lab) -> Restorer<S3Store> {
    Restorer::new(lab.store(), lab.config())
}

fn request(payload: Value) -> RestoreRequest {
    RestoreRequest::from_value(&payload).unwrap()
}

/// Writes versions 0..=2 (three appends) and replicates them.
async fn three_versions(lab: &Lab, path: &str) -> String {
    let table = Lab::table(path);
    lab.aws.delta(&["write", &table, "small"]).unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    table
}

fn same(lab: &Lab, a: &str, va: &str, b: &str, vb: &str) -> Value {
    lab.aws.delta(&["same", a, va, b, vb]).unwrap()
}

#[tokio::test]
async fn rollback_after_an_erroneous_overwrite() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/orders").await;
    assert_eq!(
        lab.aws.delta(&["overwrite", &table, "900", "5"]).unwrap()["version"],
        3
    );
    assert!(lab.drain().await.unwrap().is_empty());
    let before: Vec<String> = lab.aws.list_keys(Lab::SRC, "t/orders/").await.unwrap();

    let r = restorer(&lab);
    let dry = r
        .run(
            &request(json!({"table": table, "mode": "rollback", "version": 2})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.plan.restore_point.version, 2);
    assert_eq!(dry.plan.commit.as_ref().unwrap().version, 4);
    assert_eq!(
        dry.plan.commit.as_ref().unwrap().files_to_remove,
        5,
        "the bad job's five files: {dry:?}"
    );
    assert!(
        dry.plan.commit.as_ref().unwrap().files_to_add >= 3,
        "{dry:?}"
    );
    assert_eq!(
        dry.plan.objects_to_copy, 0,
        "overwrite does not delete files: {dry:?}"
    );
    assert_eq!(
        lab.aws.list_keys(Lab::SRC, "t/orders/").await.unwrap(),
        before,
        "a dry run writes nothing"
    );

    let done = r
        .run(
            &request(json!({"table": table, "mode": "rollback", "version": 2, "dry_run": false})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(
        done.result.as_ref().unwrap().commit_written,
        Some(4),
        "{done:?}"
    );
    assert_eq!(same(&lab, &table, "2", &table, "latest")["equal"], true);
    let history = lab.aws.delta(&["history", &table]).unwrap();
    assert_eq!(history["version"], 4);
    let restore = &history["history"].as_array().unwrap()[0];
    assert_eq!(restore["operation"], "RESTORE", "{history}");
    // The bad version is still there for forensics: history is never rewritten.
    assert_eq!(same(&lab, &table, "3", &table, "3")["a_rows"], 5);
}

#[tokio::test]
async fn rollback_recreates_a_dropped_table_with_its_history() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/dropped").await;
    let original = Lab::backup_table("t/dropped");
    assert!(lab.purge("t/dropped/").await.unwrap() > 5);
    assert!(
        lab.drain().await.unwrap().is_empty(),
        "deletions are only recorded"
    );

    let r = restorer(&lab);
    let dry = r
        .run(
            &request(json!({"table": table, "mode": "rollback"})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(dry.plan.recreate);
    assert_eq!(dry.plan.restore_point.version, 2);
    assert!(dry.plan.commit.is_none());
    let done = r
        .run(
            &request(json!({"table": table, "mode": "rollback", "dry_run": false})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(done.result.as_ref().unwrap().complete);
    for v in ["0", "1", "2"] {
        assert_eq!(
            same(&lab, &original, v, &table, v)["equal"],
            true,
            "version {v}"
        );
    }
}

#[tokio::test]
async fn repair_after_vacuum_brings_time_travel_back() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/vacuumed").await;
    lab.aws.delta(&["overwrite", &table, "500", "4"]).unwrap();
    assert!(
        lab.aws.delta(&["vacuum", &table]).unwrap()["removed"]
            .as_u64()
            .unwrap()
            >= 3
    );
    assert!(lab.drain().await.unwrap().is_empty());
    assert_eq!(
        same(&lab, &Lab::backup_table("t/vacuumed"), "0", &table, "0")["equal"],
        false,
        "time travel is broken"
    );

    let r = restorer(&lab);
    let done = r
        .run(
            &request(json!({"table": table, "mode": "repair", "dry_run": false})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(done.result.as_ref().unwrap().copied >= 3, "{done:?}");
    assert!(done.plan.commit.is_none());
    for v in ["0", "1", "2", "3"] {
        assert_eq!(
            same(&lab, &Lab::backup_table("t/vacuumed"), v, &table, v)["equal"],
            true,
            "version {v}"
        );
    }
}

#[tokio::test]
async fn repair_of_a_commit_overwritten_with_garbage() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/garbled").await;
    let key = "t/garbled/_delta_log/00000000000000000001.json";
    let original = lab.aws.get(Lab::SRC, key).await.unwrap();
    lab.aws
        .put(Lab::SRC, key, b"\x00garbage\xff".to_vec())
        .await
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    assert_eq!(
        same(&lab, &Lab::backup_table("t/garbled"), "2", &table, "2")["equal"],
        false
    );

    let r = restorer(&lab);
    let dry = r
        .run(
            &request(json!({"table": table, "mode": "repair"})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(
        dry.plan.objects_to_copy, 1,
        "only the damaged commit: {dry:?}"
    );
    r.run(
        &request(json!({"table": table, "mode": "repair", "dry_run": false})),
        None,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        lab.aws.get(Lab::SRC, key).await.unwrap(),
        original,
        "byte for byte"
    );
    assert_eq!(
        same(&lab, &Lab::backup_table("t/garbled"), "2", &table, "2")["equal"],
        true
    );
}

#[tokio::test]
async fn clone_at_three_versions() {
    let lab = lab().await;
    let table = Lab::table("t/history");
    lab.aws.delta(&["write", &table, "history"]).unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let r = restorer(&lab);
    for v in [1u64, 3, 6] {
        let target = Lab::table(&format!("clones/v{v}"));
        let done = r
            .run(&request(json!({"table": table, "mode": "clone", "version": v, "target": target, "dry_run": false})), None, |_, _| {})
            .await
            .unwrap();
        assert!(done.result.as_ref().unwrap().complete);
        assert_eq!(
            same(&lab, &table, &v.to_string(), &target, "latest")["equal"],
            true,
            "clone of {v}"
        );
        let history = lab.aws.delta(&["history", &target]).unwrap();
        assert_eq!(history["version"], v, "history up to the restore point");
        assert_eq!(
            same(&lab, &table, "0", &target, "0")["equal"],
            true,
            "time travel in the clone"
        );
    }
    let err = r
        .run(&request(json!({"table": table, "mode": "clone", "version": 1, "target": Lab::table("clones/v3")})), None, |_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not empty"), "{err}");
}

#[tokio::test]
async fn an_interrupted_clone_finishes_on_rerun_and_copies_nothing_twice() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/resume").await;
    let target = Lab::table("clones/resume");
    let r = restorer(&lab);
    let payload = json!({"table": table, "mode": "clone", "target": target, "dry_run": false});
    let plan = r.plan(&request(payload.clone())).await.unwrap();
    let total = plan.copies.len() as u64;
    assert!(total > 6);
    // The first run dies after copying a third of the objects (a deadline that passed is the
    // same as a Lambda timeout: execute stops and reports what remains).
    let mut partial = plan.clone();
    partial.copies.truncate(plan.copies.len() / 3);
    let first = r.execute(&partial, None, |_, _| {}).await.unwrap();
    let expired = r
        .execute(&plan, Some(std::time::Instant::now()), |_, _| {})
        .await
        .unwrap();
    assert!(!expired.complete && expired.copied == 0 && expired.remaining_objects == total);
    // The same payload again: the clone's own objects are skipped, the rest copied.
    let rerun = r.run(&request(payload), None, |_, _| {}).await.unwrap();
    assert_eq!(rerun.plan.already_present, first.copied, "{rerun:?}");
    assert_eq!(
        rerun.result.as_ref().unwrap().copied,
        total - first.copied,
        "copies nothing twice"
    );
    assert!(rerun.result.as_ref().unwrap().complete);
    assert_eq!(same(&lab, &table, "2", &target, "latest")["equal"], true);
}

#[tokio::test]
async fn a_rerun_of_a_rollback_skips_what_is_in_place() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/rerun").await;
    lab.purge("t/rerun/").await.unwrap();
    lab.drain().await.unwrap();
    let r = restorer(&lab);
    let payload = json!({"table": table, "mode": "rollback", "dry_run": false});
    let plan = r.plan(&request(payload.clone())).await.unwrap();
    let total = plan.copies.len() as u64;
    // Interrupted: only the data files made it back, no log yet.
    let mut partial = plan.clone();
    partial
        .copies
        .retain(|c| !c.path.starts_with("_delta_log/"));
    let copied_first = r.execute(&partial, None, |_, _| {}).await.unwrap().copied;
    assert!(copied_first > 0 && copied_first < total);
    let second = r.run(&request(payload), None, |_, _| {}).await.unwrap();
    assert_eq!(second.plan.already_present, copied_first, "{second:?}");
    assert_eq!(second.result.as_ref().unwrap().copied, total - copied_first);
    assert_eq!(
        same(&lab, &Lab::backup_table("t/rerun"), "2", &table, "latest")["equal"],
        true
    );
}

#[tokio::test]
async fn a_concurrent_commit_makes_the_rollback_fail_cleanly() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/race").await;
    lab.aws.delta(&["overwrite", &table, "900", "5"]).unwrap();
    lab.drain().await.unwrap();
    let r = restorer(&lab);
    let plan = r
        .plan(&request(
            json!({"table": table, "mode": "rollback", "version": 1, "dry_run": false}),
        ))
        .await
        .unwrap();
    assert_eq!(plan.commit.as_ref().unwrap().version, 4);
    // A job commits version 4 between the plan and the commit.
    lab.aws.delta(&["append", &table, "7000", "2"]).unwrap();
    let theirs = lab
        .aws
        .get(Lab::SRC, "t/race/_delta_log/00000000000000000004.json")
        .await
        .unwrap();
    let err = r
        .execute(&plan, None, |_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("another writer committed version 4"), "{err}");
    assert_eq!(
        lab.aws
            .get(Lab::SRC, "t/race/_delta_log/00000000000000000004.json")
            .await
            .unwrap(),
        theirs,
        "not overwritten"
    );
    // Retried, it plans against the new latest version and succeeds.
    let done = r
        .run(
            &request(json!({"table": table, "mode": "rollback", "version": 1, "dry_run": false})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(done.result.as_ref().unwrap().commit_written, Some(5));
    assert_eq!(same(&lab, &table, "1", &table, "latest")["equal"], true);
}

#[tokio::test]
async fn errors_say_what_is_possible() {
    let lab = lab().await;
    let table = three_versions(&lab, "t/errors").await;
    // One data file of version 0 never reached the backup.
    let backup = lifeboat::keys::S3Location::parse(&Lab::backup_table("t/errors")).unwrap();
    let commit0 = lab
        .aws
        .get(
            Lab::BACKUP,
            &backup.key("_delta_log/00000000000000000000.json"),
        )
        .await
        .unwrap();
    let root = lifeboat::delta::table_url(&backup).unwrap();
    let v0_file = backup.key(
        &lifeboat::delta::parse_commit(&root, 0, &commit0)
            .unwrap()
            .adds[0]
            .path,
    );
    let r = restorer(&lab);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"table": table, "mode": "rollback", "version": 9}), "version 9 of s3://source-bucket/t/errors is not in the backup, which holds versions 0..2; restorable: 0..2"),
        (json!({"table": table, "mode": "rollback", "timestamp": "2001-01-01T00:00:00Z"}), "is before the oldest restore point"),
        (json!({"table": Lab::table("t/never"), "mode": "rollback"}), "the backup holds no Delta log"),
        (json!({"table": table, "mode": "clone", "target": Lab::table("t/errors2")}), ""),
    ];
    for (payload, expected) in cases {
        match r.plan(&request(payload.clone())).await {
            Err(e) => assert!(e.to_string().contains(expected), "{payload}: {e}"),
            Ok(_) => assert!(expected.is_empty(), "{payload} should fail"),
        }
    }
    // A clone target that holds anything is refused.
    lab.aws
        .put(Lab::SRC, "occupied/x", b"x".to_vec())
        .await
        .unwrap();
    let err = r
        .plan(&request(
            json!({"table": table, "mode": "clone", "target": Lab::table("occupied")}),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
    // A version whose file is missing from the backup is not restorable, and the error says
    // which versions are.
    lab.aws
        .s3()
        .put_object()
        .bucket(Lab::BACKUP)
        .key(&v0_file)
        .body(b"truncated".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = r
        .plan(&request(
            json!({"table": table, "mode": "rollback", "version": 0}),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("version 0 of s3://source-bucket/t/errors cannot be restored"),
        "{err}"
    );
    assert!(err.contains("Restorable versions:"), "{err}");
}

/// The case of issue 14: after `DROP FEATURE deletionVectors` (the vectors gone, the protocol
/// back to 1/2), a rollback to a version whose files carry deletion vectors commits a protocol
/// that has the feature again, and readers apply the vectors: 8 rows, not 10.
#[tokio::test]
async fn rollback_past_a_dropped_deletion_vector_feature_brings_the_feature_back() {
    let lab = lab().await;
    let local = lifeboat_tests::shared_tables().join("delta-rs/table-with-dv-small");
    let table = Lab::table("t/dv");
    lab.aws
        .delta(&["upload", local.to_str().unwrap(), &table])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    assert_eq!(lab.aws.delta(&["read", &table, "1"]).unwrap()["rows"], 8);
    // Version 2: the feature dropped, as DROP FEATURE leaves a table (here emptied instead of
    // rewritten): protocol 1/2, no deletion-vector property, no file with a vector live.
    let v1 = std::fs::read_to_string(local.join("_delta_log/00000000000000000001.json")).unwrap();
    let add = v1
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("add").cloned())
        .unwrap();
    let v0 = std::fs::read_to_string(local.join("_delta_log/00000000000000000000.json")).unwrap();
    let mut metadata = v0
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("metaData").cloned())
        .unwrap();
    metadata["configuration"]
        .as_object_mut()
        .unwrap()
        .remove("delta.enableDeletionVectors");
    let v2 = [
        json!({"commitInfo": {"timestamp": 1677811200000i64, "operation": "DROP FEATURE"}}),
        json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        json!({"metaData": metadata}),
        json!({"remove": {"path": add["path"], "deletionTimestamp": 1677811200000i64, "dataChange": true,
            "deletionVector": add["deletionVector"], "size": add["size"], "partitionValues": {}}}),
    ]
    .iter()
    .map(|a| format!("{a}\n"))
    .collect::<String>();
    lab.aws
        .put(Lab::SRC, "t/dv/_delta_log/00000000000000000002.json", v2)
        .await
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    assert_eq!(lab.aws.delta(&["read", &table]).unwrap()["rows"], 0);

    let done = restorer(&lab)
        .run(
            &request(json!({"table": table, "mode": "rollback", "version": 1, "dry_run": false})),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    let commit = done.plan.commit.as_ref().unwrap();
    assert!(commit.protocol_upgraded, "{done:?}");
    let written = lab
        .aws
        .get(Lab::SRC, "t/dv/_delta_log/00000000000000000003.json")
        .await
        .unwrap();
    let protocol = String::from_utf8(written)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("protocol").cloned())
        .expect("the RESTORE commit carries a protocol");
    assert_eq!(protocol["minReaderVersion"], 3);
    assert_eq!(protocol["readerFeatures"], json!(["deletionVectors"]));
    assert!(protocol["writerFeatures"]
        .as_array()
        .unwrap()
        .contains(&json!("deletionVectors")));
    let read = lab.aws.delta(&["read", &table]).unwrap();
    assert_eq!(read["version"], 3);
    assert_eq!(read["rows"], 8, "the deletion vector applies: {read}");
    let back = lab.aws.delta(&["read", &table, "1"]).unwrap();
    assert_eq!(read["sha256"], back["sha256"]);
}
