//! The replicator against the local S3 server, fed from a real bucket notification queue.

use lifeboat::layout::meta;
use lifeboat_tests::{failed_ids, fixture, sqs_event, Lab};
use serde_json::Value;

const SRC: &str = Lab::SRC;
const BACKUP: &str = Lab::BACKUP;

async fn setup(extra: &[(&str, &str)]) -> Lab {
    Lab::start(extra).await.unwrap()
}

/// Replication checks that need more than `Lab` offers.
trait Checks {
    async fn drain_ok(&self) -> Vec<String>;
    async fn assert_backup_complete(&self, prefix: &str);
}

impl Checks for Lab {
    async fn drain_ok(&self) -> Vec<String> {
        self.drain().await.unwrap()
    }

    /// Asserts every source object under `prefix` is in the backup, byte for byte, with the
    /// source's metadata.
    async fn assert_backup_complete(&self, prefix: &str) {
        let keys = self.aws.list_keys(SRC, prefix).await.unwrap();
        assert!(!keys.is_empty(), "nothing under {prefix}");
        for key in keys {
            let backup_key = format!("{SRC}/{key}");
            let source = self.aws.get(SRC, &key).await.unwrap();
            let backup = self
                .aws
                .get(BACKUP, &backup_key)
                .await
                .unwrap_or_else(|e| panic!("{backup_key} missing from the backup: {e}"));
            assert_eq!(source, backup, "{key} differs");
            let head = self
                .aws
                .s3()
                .head_object()
                .bucket(BACKUP)
                .key(&backup_key)
                .send()
                .await
                .unwrap();
            let src_head = self
                .aws
                .s3()
                .head_object()
                .bucket(SRC)
                .key(&key)
                .send()
                .await
                .unwrap();
            let m = head.metadata().unwrap();
            assert_eq!(m[meta::SOURCE_BUCKET], SRC);
            assert_eq!(
                lifeboat::keys::decode_metadata_value(&m[meta::SOURCE_KEY]),
                key
            );
            assert_eq!(m[meta::SOURCE_SIZE], source.len().to_string());
            assert_eq!(
                m[meta::SOURCE_ETAG],
                src_head.e_tag().unwrap().trim_matches('"'),
                "{key}: source ETag kept"
            );
            let kept =
                chrono::DateTime::parse_from_rfc3339(&m[meta::SOURCE_LAST_MODIFIED]).unwrap();
            let src_modified = src_head.last_modified().unwrap().secs();
            assert!(
                (kept.timestamp() - src_modified).abs() <= 2,
                "{key}: last-modified kept"
            );
        }
    }
}

fn fill(template: &str, vars: &[(&str, &str)]) -> Value {
    let mut text = template.to_string();
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn delta_table_backup_reads_back_at_every_version() {
    let s = setup(&[]).await;
    let table = format!("s3://{SRC}/tables/history");
    let written = s.aws.delta(&["write", &table, "history"]).unwrap();
    assert_eq!(written["version"], 6);

    assert!(s.drain_ok().await.is_empty(), "no record may fail");
    s.assert_backup_complete("tables/history/").await;

    let backup_table = format!("s3://{BACKUP}/{SRC}/tables/history");
    let compared = s.aws.delta(&["compare", &table, &backup_table]).unwrap();
    assert_eq!(compared["compared"], 7);
    assert_eq!(compared["differ"], serde_json::json!([]), "{compared}");
    // A checkpoint and partition folders with encoded characters made it across.
    let keys = s
        .aws
        .list_keys(BACKUP, &format!("{SRC}/tables/history/"))
        .await
        .unwrap();
    assert!(
        keys.iter().any(|k| k.ends_with(".checkpoint.parquet")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains("part=x%3DA%2FA/")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains("part=with%20space/")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn form_encoded_and_unicode_keys() {
    let s = setup(&[]).await;
    let keys = [
        "odd/with space/a+b=c%d.txt",
        "odd/x=A%2FA/part-0.parquet",
        "odd/café/ünïcødé ✓.bin",
        "odd/plus+only",
        "odd/percent%25literal",
    ];
    for (i, key) in keys.iter().enumerate() {
        s.aws.put(SRC, key, format!("content {i}")).await.unwrap();
    }
    assert!(s.drain_ok().await.is_empty());
    let backed_up = s
        .aws
        .list_keys(BACKUP, &format!("{SRC}/odd/"))
        .await
        .unwrap();
    let mut expected: Vec<String> = keys.iter().map(|k| format!("{SRC}/{k}")).collect();
    expected.sort();
    assert_eq!(backed_up, expected);
    s.assert_backup_complete("odd/").await;
}

#[tokio::test]
async fn multipart_copy_above_the_threshold_is_byte_identical() {
    let mib = 1024 * 1024;
    let s = setup(&[
        ("LIFEBOAT_MULTIPART_THRESHOLD_BYTES", &(6 * mib).to_string()),
        ("LIFEBOAT_PART_SIZE_BYTES", &(5 * mib).to_string()),
    ])
    .await;
    let body: Vec<u8> = (0..13 * mib).map(|i| (i * 7 % 251) as u8).collect();
    s.aws
        .put(SRC, "big/blob.parquet", body.clone())
        .await
        .unwrap();
    s.aws
        .put(SRC, "big/small.parquet", b"small".to_vec())
        .await
        .unwrap();
    let messages = s.aws.receive_all(&s.queue).await.unwrap();
    let response = s.replicator.handle(&sqs_event(&messages)).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        s.aws
            .get(BACKUP, &format!("{SRC}/big/blob.parquet"))
            .await
            .unwrap(),
        body
    );
    let head = s
        .aws
        .s3()
        .head_object()
        .bucket(BACKUP)
        .key(format!("{SRC}/big/blob.parquet"))
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().contains("-3"),
        "three parts: {:?}",
        head.e_tag()
    );
    let small = s
        .aws
        .s3()
        .head_object()
        .bucket(BACKUP)
        .key(format!("{SRC}/big/small.parquet"))
        .send()
        .await
        .unwrap();
    assert!(
        !small.e_tag().unwrap().contains('-'),
        "small object copied whole"
    );
    s.assert_backup_complete("big/").await;
}

#[tokio::test]
async fn duplicate_events_make_no_second_version() {
    let s = setup(&[]).await;
    s.aws
        .put(
            SRC,
            "t/_delta_log/00000000000000000000.json",
            b"{\"commitInfo\":{}}".to_vec(),
        )
        .await
        .unwrap();
    s.aws
        .put(SRC, "t/part-0.parquet", b"PAR1data".to_vec())
        .await
        .unwrap();
    let messages = s.aws.receive_all(&s.queue).await.unwrap();
    for _ in 0..3 {
        let response = s.replicator.handle(&sqs_event(&messages)).await.unwrap();
        assert!(failed_ids(&response).is_empty());
    }
    for key in ["t/_delta_log/00000000000000000000.json", "t/part-0.parquet"] {
        assert_eq!(
            s.aws
                .version_count(BACKUP, &format!("{SRC}/{key}"))
                .await
                .unwrap(),
            1,
            "{key}"
        );
    }
}

#[tokio::test]
async fn rewritten_log_file_is_a_conflict_and_the_original_is_kept() {
    let s = setup(&[]).await;
    let key = "t/_delta_log/00000000000000000001.json";
    let original = b"{\"add\":{\"path\":\"a.parquet\"}}".to_vec();
    s.aws.put(SRC, key, original.clone()).await.unwrap();
    s.aws
        .put(
            SRC,
            "t/_delta_log/_last_checkpoint",
            b"{\"version\":0}".to_vec(),
        )
        .await
        .unwrap();
    assert!(s.drain_ok().await.is_empty());

    s.aws.put(SRC, key, b"garbage".to_vec()).await.unwrap();
    s.aws
        .put(
            SRC,
            "t/_delta_log/_last_checkpoint",
            b"{\"version\":1}".to_vec(),
        )
        .await
        .unwrap();
    let messages = s.aws.receive_all(&s.queue).await.unwrap();
    let response = s.replicator.handle(&sqs_event(&messages)).await.unwrap();
    assert!(failed_ids(&response).is_empty());

    let backup_key = format!("{SRC}/{key}");
    assert_eq!(
        s.aws.get(BACKUP, &backup_key).await.unwrap(),
        original,
        "original kept"
    );
    assert_eq!(
        s.aws.version_count(BACKUP, &backup_key).await.unwrap(),
        1,
        "never replaced"
    );
    let kept = s
        .aws
        .list_keys(BACKUP, "_lifeboat/conflicts/")
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].starts_with(&format!("_lifeboat/conflicts/{SRC}/{key}.")),
        "{kept:?}"
    );
    assert_eq!(s.aws.get(BACKUP, &kept[0]).await.unwrap(), b"garbage");
    // _last_checkpoint is mutable: each change is a new version.
    let lc = format!("{SRC}/t/_delta_log/_last_checkpoint");
    assert_eq!(s.aws.version_count(BACKUP, &lc).await.unwrap(), 2);
    assert_eq!(s.aws.get(BACKUP, &lc).await.unwrap(), b"{\"version\":1}");

    // The same conflict delivered again is not kept twice.
    s.replicator.handle(&sqs_event(&messages)).await.unwrap();
    assert_eq!(
        s.aws
            .list_keys(BACKUP, "_lifeboat/conflicts/")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn object_deleted_before_its_event_is_recorded_not_an_error() {
    let s = setup(&[]).await;
    s.aws
        .put(SRC, "t/gone.parquet", b"soon gone".to_vec())
        .await
        .unwrap();
    s.aws.delete(SRC, "t/gone.parquet").await.unwrap();
    let messages = s.aws.receive_all(&s.queue).await.unwrap();
    assert_eq!(messages.len(), 2, "a created and a removed event");
    let response = s.replicator.handle(&sqs_event(&messages)).await.unwrap();
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    // The source is versioned (as deployed): the event names the version it created, which
    // outlives the delete, so the backup keeps it. An unversioned source has nothing left to
    // copy: that case is the pinned copy finding its source gone.
    assert_eq!(
        s.aws
            .get(BACKUP, &format!("{SRC}/t/gone.parquet"))
            .await
            .unwrap(),
        b"soon gone"
    );
    let gone = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": SRC}, "object": {"key": "t/never.parquet", "size": 3, "eTag": "0123456789abcdef0123456789abcdef"}}
    }]});
    let response = serde_json::to_value(s.replicator.handle(&gone).await.unwrap()).unwrap();
    assert_eq!(
        response["outcomes"][0]["outcome"], "source_gone",
        "{response}"
    );
    assert!(s
        .aws
        .list_keys(BACKUP, &format!("{SRC}/t/never"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn removal_events_never_delete_from_the_backup() {
    let s = setup(&[]).await;
    s.aws
        .put(SRC, "t/kept.parquet", b"keep me".to_vec())
        .await
        .unwrap();
    assert!(s.drain_ok().await.is_empty());
    s.aws.delete(SRC, "t/kept.parquet").await.unwrap();
    assert!(s.drain_ok().await.is_empty());
    assert_eq!(
        s.aws
            .get(BACKUP, &format!("{SRC}/t/kept.parquet"))
            .await
            .unwrap(),
        b"keep me"
    );
    let direct = fill(
        &fixture("s3-object-removed-delete.json"),
        &[("bucket", SRC), ("key", "t/kept.parquet")],
    );
    let response = serde_json::to_value(s.replicator.handle(&direct).await.unwrap()).unwrap();
    assert_eq!(response["outcomes"][0]["outcome"], "deletion_seen");
    assert_eq!(
        s.aws
            .version_count(BACKUP, &format!("{SRC}/t/kept.parquet"))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_malformed_record_fails_only_itself() {
    let s = setup(&[]).await;
    s.aws
        .put(SRC, "t/good.parquet", b"good".to_vec())
        .await
        .unwrap();
    let good = s.aws.receive_all(&s.queue).await.unwrap();
    assert_eq!(good.len(), 1);
    let good_body = serde_json::to_string(good[0].body().unwrap()).unwrap();
    let template =
        fixture("sqs-batch-with-bad-records.json").replace("\"{{good_body}}\"", &good_body);
    let batch = fill(&template, &[("bucket", SRC)]);
    let response = s.replicator.handle(&batch).await.unwrap();
    let mut failed = failed_ids(&response);
    failed.sort();
    assert_eq!(
        failed,
        [
            "bad-utf8-key",
            "no-body",
            "not-an-event",
            "truncated-json",
            "unknown-bucket",
            "unsupported-event"
        ]
    );
    assert_eq!(
        s.aws
            .get(BACKUP, &format!("{SRC}/t/good.parquet"))
            .await
            .unwrap(),
        b"good"
    );
}

#[tokio::test]
async fn direct_s3_event_and_eventbridge_envelopes() {
    let s = setup(&[]).await;
    for (i, key) in ["direct/a b.txt", "eb/x=1/y.parquet", "sqs-eb/z.parquet"]
        .iter()
        .enumerate()
    {
        s.aws.put(SRC, key, format!("body {i}")).await.unwrap();
    }
    s.aws.receive_all(&s.queue).await.unwrap(); // the bucket's own notifications are not used here
    let aws = &s.aws;
    let etag = |key: &'static str| async move {
        let head = aws
            .s3()
            .head_object()
            .bucket(SRC)
            .key(key)
            .send()
            .await
            .unwrap();
        head.e_tag().unwrap().trim_matches('"').to_string()
    };

    let direct = fill(
        &fixture("s3-object-created-put.json"),
        &[
            ("bucket", SRC),
            ("key", "direct/a+b.txt"),
            ("size", "6"),
            ("etag", &etag("direct/a b.txt").await),
        ],
    );
    let response = serde_json::to_value(s.replicator.handle(&direct).await.unwrap()).unwrap();
    assert_eq!(response["outcomes"][0]["outcome"], "copied", "{response:?}");

    let eventbridge = fill(
        &fixture("eventbridge-object-created.json"),
        &[
            ("bucket", SRC),
            ("key", "eb/x=1/y.parquet"),
            ("size", "6"),
            ("etag", &etag("eb/x=1/y.parquet").await),
        ],
    );
    let response = serde_json::to_value(s.replicator.handle(&eventbridge).await.unwrap()).unwrap();
    assert_eq!(response["outcomes"][0]["outcome"], "copied", "{response:?}");

    // An EventBridge envelope delivered through SQS.
    let envelope = fill(
        &fixture("eventbridge-object-created.json"),
        &[
            ("bucket", SRC),
            ("key", "sqs-eb/z.parquet"),
            ("size", "6"),
            ("etag", &etag("sqs-eb/z.parquet").await),
        ],
    );
    let batch = serde_json::json!({"Records": [{
        "messageId": "eb-1", "receiptHandle": "h", "body": envelope.to_string(),
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}]});
    let response = s.replicator.handle(&batch).await.unwrap();
    assert!(failed_ids(&response).is_empty(), "{response:?}");

    let test_event = fill(&fixture("s3-test-event.json"), &[("bucket", SRC)]);
    let response = serde_json::to_value(s.replicator.handle(&test_event).await.unwrap()).unwrap();
    assert_eq!(response["outcomes"][0]["outcome"], "test_event");

    for key in ["direct/a b.txt", "eb/x=1/y.parquet", "sqs-eb/z.parquet"] {
        assert!(
            s.aws.get(BACKUP, &format!("{SRC}/{key}")).await.is_ok(),
            "{key}"
        );
    }

    let err = s
        .replicator
        .handle(&serde_json::json!({"hello": 1}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an S3 notification"), "{err}");
}

#[tokio::test]
async fn include_and_exclude_filters() {
    let s = setup(&[
        ("LIFEBOAT_INCLUDE_PREFIXES", "tables/"),
        ("LIFEBOAT_EXCLUDE_PATTERNS", "**/_temporary/**"),
    ])
    .await;
    s.aws
        .put(SRC, "tables/t/a.parquet", b"a".to_vec())
        .await
        .unwrap();
    s.aws
        .put(SRC, "tables/t/_temporary/0/b", b"b".to_vec())
        .await
        .unwrap();
    s.aws.put(SRC, "scratch/c", b"c".to_vec()).await.unwrap();
    assert!(s.drain_ok().await.is_empty());
    assert_eq!(
        s.aws.list_keys(BACKUP, "").await.unwrap(),
        vec![format!("{SRC}/tables/t/a.parquet")]
    );
}

#[tokio::test]
async fn backfill_copies_what_the_backup_lacks() {
    let s = setup(&[]).await;
    let table = format!("s3://{SRC}/tables/old");
    s.aws.delta(&["write", &table, "small"]).unwrap();
    // Only part of the table reached the backup through events.
    let messages = s.aws.receive_all(&s.queue).await.unwrap();
    s.replicator
        .handle(&sqs_event(&messages[..3]))
        .await
        .unwrap();
    let before = s.aws.list_keys(BACKUP, "").await.unwrap().len();
    let location = lifeboat::keys::S3Location::parse(&table).unwrap();
    let summary = lifeboat::backfill::backfill(&s.replicator, &location, |_, _| {})
        .await
        .unwrap();
    let total = s.aws.list_keys(SRC, "tables/old/").await.unwrap().len() as u64;
    assert_eq!(summary.listed, total);
    assert_eq!(
        summary.copied + summary.already_backed_up,
        total,
        "{summary:?}"
    );
    assert!(summary.copied > 0 && before > 0);
    assert_eq!(summary.failed, 0);
    s.assert_backup_complete("tables/old/").await;
    let again = lifeboat::backfill::backfill(&s.replicator, &location, |_, _| {})
        .await
        .unwrap();
    assert_eq!(again.copied, 0);
}
