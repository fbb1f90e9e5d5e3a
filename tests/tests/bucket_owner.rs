//! `ExpectedBucketOwner` on every S3 call, against the local AWS (which answers 403 when the
//! header names another account than the bucket's owner, as S3 does): with the right owners
//! every call of the store works; with a wrong owner for one bucket, exactly the calls that
//! touch that bucket (as target, or as the source of a copy) are refused, with an error that
//! says what to check. A source bucket deleted and re-created by another account is therefore
//! never read, and a restore never writes into it.

use std::collections::HashMap;

use anyhow::Result;
use lifeboat::s3::S3Store;
use lifeboat::store::{SourcePin, Store, WriteOptions};
use lifeboat::Config;
use lifeboat_tests::LocalAws;

/// moto's account: the owner of every bucket the local AWS creates.
const LOCAL_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "210987654321";
const SOURCE: &str = "lake";
const BACKUP: &str = "lifeboat-backup";

fn store(aws: &LocalAws, source_owner: &str, backup_owner: &str) -> Result<S3Store> {
    let vars: HashMap<&str, &str> = [
        ("LIFEBOAT_BACKUP_BUCKET", BACKUP),
        ("LIFEBOAT_SOURCE_BUCKETS", SOURCE),
        ("LIFEBOAT_SOURCE_ACCOUNT_ID", source_owner),
        ("LIFEBOAT_BACKUP_ACCOUNT_ID", backup_owner),
    ]
    .into();
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string()))?;
    Ok(S3Store::new(aws.s3().clone()).with_bucket_owners(config.bucket_owners()))
}

/// Every call of the store once, each with the buckets it touches; a multipart call runs on
/// an upload that `setup` (with the right owners) started, so each stands alone.
async fn every_call(
    store: &S3Store,
    setup: &S3Store,
) -> Result<Vec<(&'static str, Vec<&'static str>, lifeboat::Result<()>)>> {
    let options = WriteOptions::default();
    let pin = SourcePin::default();
    let key = "t/part-0.parquet";
    let mut calls = Vec::new();
    calls.push((
        "HeadObject",
        vec![SOURCE],
        store.head(SOURCE, key, None).await.map(|_| ()),
    ));
    calls.push((
        "GetObject",
        vec![SOURCE],
        store.get(SOURCE, key, None).await.map(|_| ()),
    ));
    calls.push((
        "ListObjectsV2",
        vec![SOURCE],
        store.list_page(SOURCE, "t/", None).await.map(|_| ()),
    ));
    calls.push((
        "ListObjectsV2 (folders)",
        vec![SOURCE],
        store.list_folders(SOURCE, "", None).await.map(|_| ()),
    ));
    calls.push((
        "PutObject",
        vec![BACKUP],
        store
            .put(BACKUP, "_lifeboat/probe", b"x".to_vec().into(), &options)
            .await
            .map(|_| ()),
    ));
    calls.push((
        "CopyObject",
        vec![SOURCE, BACKUP],
        store
            .copy_object(
                SOURCE,
                key,
                &pin,
                BACKUP,
                &format!("{SOURCE}/{key}"),
                &options,
            )
            .await
            .map(|_| ()),
    ));
    calls.push((
        "CreateMultipartUpload",
        vec![BACKUP],
        store
            .create_multipart(BACKUP, "big", &options)
            .await
            .map(|_| ()),
    ));
    let upload = setup.create_multipart(BACKUP, "big", &options).await?;
    calls.push((
        "UploadPartCopy",
        vec![SOURCE, BACKUP],
        store
            .upload_part_copy(SOURCE, key, &pin, BACKUP, "big", &upload, 1, 0, 3)
            .await
            .map(|_| ()),
    ));
    let etag = setup
        .upload_part_copy(SOURCE, key, &pin, BACKUP, "big", &upload, 1, 0, 3)
        .await?
        .expect("part copied");
    calls.push((
        "CompleteMultipartUpload",
        vec![BACKUP],
        store
            .complete_multipart(BACKUP, "big", &upload, vec![(1, etag)], &options)
            .await
            .map(|_| ()),
    ));
    let upload = setup.create_multipart(BACKUP, "big2", &options).await?;
    calls.push((
        "AbortMultipartUpload",
        vec![BACKUP],
        store.abort_multipart(BACKUP, "big2", &upload).await,
    ));
    Ok(calls)
}

#[tokio::test]
async fn a_bucket_owned_by_another_account_is_refused_and_the_right_owner_works() -> Result<()> {
    let aws = LocalAws::start().await?;
    aws.create_bucket(SOURCE, true).await?;
    aws.create_bucket(BACKUP, true).await?;
    aws.put(SOURCE, "t/part-0.parquet", b"data".to_vec())
        .await?;
    let right = store(&aws, LOCAL_ACCOUNT, LOCAL_ACCOUNT)?;

    for (name, calls) in [
        ("right owners", every_call(&right, &right).await?),
        (
            "source owned by another account",
            every_call(&store(&aws, OTHER_ACCOUNT, LOCAL_ACCOUNT)?, &right).await?,
        ),
        (
            "backup owned by another account",
            every_call(&store(&aws, LOCAL_ACCOUNT, OTHER_ACCOUNT)?, &right).await?,
        ),
    ] {
        let wrong_bucket = match name {
            "source owned by another account" => Some(SOURCE),
            "backup owned by another account" => Some(BACKUP),
            _ => None,
        };
        for (operation, buckets, result) in calls {
            let refused = wrong_bucket.is_some_and(|b| buckets.contains(&b));
            match (refused, result) {
                (false, Ok(())) => {}
                (false, Err(e)) => panic!("{name}: {operation} failed: {e}"),
                (true, Ok(())) => panic!("{name}: {operation} on {buckets:?} was let through"),
                (true, Err(e)) => {
                    let message = e.to_string();
                    for part in [
                        operation.split(' ').next().unwrap(),
                        "HTTP 403 ",
                        "owned by another account than the one expected",
                        "LIFEBOAT_SOURCE_ACCOUNT_ID",
                    ] {
                        assert!(
                            message.contains(part),
                            "{name}: {operation}: {message:?} should say {part:?}"
                        );
                    }
                    assert!(!e.is_retryable(), "{name}: {operation}: {message}");
                    assert_eq!(e.kind(), "Lifeboat.S3Error", "{message}");
                }
            }
        }
    }
    // Nothing the refused calls would have written is there.
    let keys = aws.list_keys(BACKUP, "").await?;
    assert!(
        keys.contains(&format!("{SOURCE}/t/part-0.parquet")),
        "{keys:?}"
    );
    Ok(())
}

/// The Delta reader (delta_kernel's log replay) reads through the store's own client: with the
/// right owner it reads the table's snapshot; with the source bucket owned by another account
/// every one of its reads is refused, so a re-created bucket's log is never replayed as the
/// table's.
#[tokio::test]
async fn the_delta_reader_names_the_expected_owner_too() -> Result<()> {
    let aws = LocalAws::start().await?;
    aws.create_bucket(SOURCE, true).await?;
    aws.create_bucket(BACKUP, true).await?;
    let commit = |version: u64, file: &str| {
        let mut actions = Vec::new();
        if version == 0 {
            actions.push(
                serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            );
            actions.push(serde_json::json!({"metaData": {
                "id": "5f3e1d2c-0000-4000-8000-000000000001", "format": {"provider": "parquet", "options": {}},
                "schemaString": r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#,
                "partitionColumns": [], "configuration": {}, "createdTime": 1700000000000u64}}));
        }
        actions.push(
            serde_json::json!({"add": {"path": file, "partitionValues": {}, "size": 4,
            "modificationTime": 1700000000000u64 + version, "dataChange": true}}),
        );
        actions.iter().map(|a| format!("{a}\n")).collect::<String>()
    };
    for (version, file) in [(0, "part-0.parquet"), (1, "part-1.parquet")] {
        aws.put(
            SOURCE,
            &format!("t/_delta_log/{version:020}.json"),
            commit(version, file),
        )
        .await?;
    }
    let table = lifeboat::keys::S3Location::parse(&format!("s3://{SOURCE}/t"))?;
    for (source_owner, readable) in [(LOCAL_ACCOUNT, true), (OTHER_ACCOUNT, false)] {
        let reader = store(&aws, source_owner, LOCAL_ACCOUNT)?
            .delta_reader(SOURCE)
            .await?;
        let location = table.clone();
        let read =
            tokio::task::spawn_blocking(move || reader.snapshot_files(&location, None)).await?;
        match (readable, read) {
            (true, Ok((version, files))) => {
                assert_eq!(version, 1);
                let mut paths: Vec<_> = files.into_iter().map(|f| f.path).collect();
                paths.sort();
                assert_eq!(paths, ["part-0.parquet", "part-1.parquet"]);
            }
            (false, Err(e)) => {
                let message = format!("{e:#}");
                for part in [
                    "ListObjectsV2",
                    "HTTP 403 ",
                    "owned by another account than the one expected",
                ] {
                    assert!(message.contains(part), "{message:?} should say {part:?}");
                }
            }
            (readable, read) => {
                panic!("source owned by {source_owner}: readable {readable}, read {read:?}")
            }
        }
    }
    Ok(())
}
