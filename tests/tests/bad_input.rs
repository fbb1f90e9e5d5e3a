//! Malformed events and payloads (tests/fixtures/bad-events, tests/fixtures/bad-restore-payloads,
//! and generated huge inputs): each gets a clear error, or fails only its own SQS record so
//! that SQS retries it and then dead-letters it. Nothing panics, nothing touches S3.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use lifeboat::replicate::Replicator;
use lifeboat::restore::RestoreRequest;
use lifeboat::s3::S3Store;
use lifeboat_tests::{failed_ids, repo_root};
use serde_json::{json, Value};

/// A replicator whose S3 endpoint does not exist: bad input must be refused before any request.
fn replicator() -> Replicator<S3Store> {
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(Credentials::new("k", "s", None, None, "test"))
        .force_path_style(true)
        .build();
    let vars: HashMap<&str, &str> = [
        ("LIFEBOAT_BACKUP_BUCKET", "backup-bucket"),
        ("LIFEBOAT_SOURCE_BUCKETS", "source-bucket"),
    ]
    .into();
    let config = lifeboat::Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    Replicator::new(S3Store::new(aws_sdk_s3::Client::from_conf(s3)), config)
}

fn corpus(folder: &str) -> Vec<(String, String)> {
    let dir: PathBuf = repo_root().join("tests/fixtures").join(folder);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus {folder} is too small");
    files
}

fn sqs_batch(bodies: &[(String, String)]) -> Value {
    json!({"Records": bodies.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": "h", "body": body, "attributes": {}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

#[tokio::test]
async fn every_malformed_event_is_refused_clearly() {
    let replicator = replicator();
    let files = corpus("bad-events");
    for (name, text) in &files {
        let outcome = match serde_json::from_str::<Value>(text) {
            // The Lambda runtime refuses a payload that is not JSON before the handler.
            Err(e) => Err(e.to_string()),
            Ok(value) => replicator.handle(&value).await.map_err(|e| e.to_string()),
        };
        match outcome {
            Err(message) => assert!(message.len() > 20, "{name}: unclear error {message:?}"),
            Ok(response) => {
                // An SQS batch: its bad record fails alone.
                assert_eq!(failed_ids(&response), ["m1"], "{name}: {response:?}");
            }
        }
    }
    // The same bodies inside one SQS batch: every record fails on its own, none is dropped.
    let bodies: Vec<(String, String)> = files
        .iter()
        .filter(|(n, _)| !n.starts_with("sqs-"))
        .cloned()
        .collect();
    let response = replicator.handle(&sqs_batch(&bodies)).await.unwrap();
    let mut failed = failed_ids(&response);
    failed.sort();
    let expected: Vec<String> = bodies.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(failed, expected);
}

#[tokio::test]
async fn huge_keys_and_a_ten_megabyte_body_are_refused() {
    let replicator = replicator();
    let record = |key: &str| {
        json!({"Records": [{"eventSource": "aws:s3", "eventTime": "2026-11-20T10:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "source-bucket"}, "object": {"key": key, "size": 3, "eTag": "abc"}}}]})
    };
    let err = replicator
        .handle(&record(&"k".repeat(2000)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than S3's 1024"), "{err}");
    // Under the limit as sent, over it once decoded: 400 × `✓` is 1,200 bytes.
    let err = replicator
        .handle(&record(&"%E2%9C%93".repeat(400)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than S3's 1024"), "{err}");

    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let garbage = sqs_batch(&[("garbage".into(), ten_mb.clone())]);
    assert_eq!(
        failed_ids(&replicator.handle(&garbage).await.unwrap()),
        ["garbage"]
    );
    let mut padded = record("t/a.parquet");
    padded["padding"] = json!(ten_mb);
    padded["Records"][0]["s3"]["bucket"]["name"] = json!("somebody-elses-bucket");
    let err = replicator.handle(&padded).await.unwrap_err().to_string();
    assert!(err.contains("not in LIFEBOAT_SOURCE_BUCKETS"), "{err}");
    let err = replicator
        .handle(&json!({"Records": [{"eventSource": "aws:s3", "blob": ten_mb}]}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not parse"), "{err}");
}

#[test]
fn every_malformed_restore_payload_gets_a_message_that_says_what_is_expected() {
    let expected: HashMap<&str, &str> = [
        ("unknown-field.json", "unknown field `versoin`"),
        ("missing-mode.json", "missing field `mode`"),
        ("missing-table.json", "missing field `table`"),
        ("version-not-a-number.json", "invalid type"),
        ("negative-version.json", "invalid value"),
        ("unknown-mode.json", "unknown variant `rewind`"),
        ("dry-run-not-bool.json", "invalid type"),
        ("truncated.json", "EOF"),
        ("array.json", "must be a JSON object"),
        ("table-not-a-string.json", "invalid type"),
    ]
    .into();
    for (name, text) in corpus("bad-restore-payloads") {
        let message = match serde_json::from_str::<Value>(&text) {
            Err(e) => e.to_string(),
            Ok(value) => RestoreRequest::from_value(&value)
                .expect_err(&name)
                .to_string(),
        };
        let want = expected
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        assert!(
            message.contains(want),
            "{name}: {message:?} should contain {want:?}"
        );
        if !name.starts_with("truncated") {
            assert!(
                message.contains("\"mode\""),
                "{name}: the message shows the expected payload: {message}"
            );
        }
    }
}
