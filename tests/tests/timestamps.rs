//! Restores by timestamp against the local S3 server, as Delta's `TIMESTAMP AS OF` reads them:
//! the newest version committed at or before the instant, the commit times being the source's
//! file modification times made monotonic (or in-commit timestamps where the table has them);
//! a bare date is the start of that day; a version that cannot be restored is refused with its
//! restorable neighbours, never swapped silently for an older one.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lifeboat::delta::{parse_commit, table_url};
use lifeboat::keys::{decode_event_key, S3Location};
use lifeboat::restore::{RestoreRequest, Restorer};
use lifeboat_tests::{shared_tables, Lab};
use serde_json::{json, Value};

const SRC: &str = Lab::SRC;

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The version a rollback to `timestamp` would bring back, or the refusal.
async fn point(lab: &Lab, table: &str, timestamp: &str) -> Result<u64, String> {
    let request = RestoreRequest::from_value(
        &json!({"table": table, "mode": "rollback", "timestamp": timestamp}),
    )
    .unwrap();
    let restorer = Restorer::new(lab.store(), lab.config());
    match restorer.plan(&request).await {
        Ok(plan) => Ok(plan.restore_point.version),
        Err(e) => {
            assert_eq!(e.kind(), "Lifeboat.NotRestorable", "{e}");
            Err(e.to_string())
        }
    }
}

/// Each commit's time as Delta reads it from the source: the commit file's modification time
/// (S3: whole seconds), made monotonic (at least 1 ms after the previous commit's).
async fn delta_commit_times(lab: &Lab, path: &str, versions: u64) -> Vec<i64> {
    let mut times: Vec<i64> = Vec::new();
    for v in 0..versions {
        let head = lab
            .aws
            .s3()
            .head_object()
            .bucket(SRC)
            .key(format!("{path}/_delta_log/{v:020}.json"))
            .send()
            .await
            .unwrap();
        let file = head.last_modified().unwrap().secs() * 1000;
        times.push(match times.last() {
            Some(previous) if *previous >= file => previous + 1,
            _ => file,
        });
    }
    times
}

#[tokio::test]
async fn a_timestamp_names_the_newest_version_committed_at_or_before_it() {
    let lab = Lab::start(&[]).await.unwrap();
    let table = Lab::table("t");
    // Three appends in quick succession: commits within the same second, which only the
    // monotonic adjustment tells apart.
    lab.aws.delta(&["write", &table, "small"]).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lab.aws.delta(&["append", &table, "100", "6"]).unwrap(); // v3, a second later at least
    assert!(lab.drain().await.unwrap().is_empty());
    let times = delta_commit_times(&lab, "t", 4).await;
    println!("Delta's commit times: {times:?}");

    for (v, t) in times.iter().enumerate() {
        assert_eq!(
            point(&lab, &table, &rfc3339(*t)).await,
            Ok(v as u64),
            "at {v}'s time"
        );
        if v > 0 {
            assert_eq!(
                point(&lab, &table, &rfc3339(t - 1)).await,
                Ok(v as u64 - 1),
                "just before {v}'s time"
            );
        }
    }
    let before = point(&lab, &table, &rfc3339(times[0] - 1))
        .await
        .unwrap_err();
    assert!(
        before.contains("is before the oldest restore point"),
        "{before}"
    );
    assert!(before.contains("version 0 (committed"), "{before}");

    // A bare date is the START of that day, UTC: today names nothing written today.
    let today = DateTime::<Utc>::from_timestamp_millis(times[0]).unwrap();
    let refused = point(&lab, &table, &today.format("%Y-%m-%d").to_string())
        .await
        .unwrap_err();
    assert!(
        refused.contains("is before the oldest restore point"),
        "{refused}"
    );
    let tomorrow = (today + Duration::days(1)).format("%Y-%m-%d").to_string();
    assert_eq!(point(&lab, &table, &tomorrow).await, Ok(3));
    // Without a zone, UTC.
    let seconds = DateTime::<Utc>::from_timestamp_millis(times[3]).unwrap();
    assert_eq!(
        point(
            &lab,
            &table,
            &seconds.format("%Y-%m-%d %H:%M:%S").to_string()
        )
        .await,
        Ok(3)
    );
}

/// The decoded source key an S3 notification message names.
fn message_key(message: &aws_sdk_sqs::types::Message) -> String {
    let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    decode_event_key(body["Records"][0]["s3"]["object"]["key"].as_str().unwrap()).unwrap()
}

/// Replicates everything in the queue but `lost` (its event is dropped).
async fn replicate_except(lab: &Lab, lost: &str) {
    let messages = lab.aws.receive_all(&lab.queue).await.unwrap();
    let mut dropped = Vec::new();
    for m in &messages {
        if message_key(m) == lost {
            dropped.push(m.receipt_handle().unwrap().to_string());
        } else {
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
    assert_eq!(dropped.len(), 1);
    lab.aws.delete_messages(&lab.queue, &dropped).await.unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unrestorable_version_at_the_instant_is_refused_with_its_restorable_neighbours() {
    let lab = Lab::start(&[]).await.unwrap();
    let table = Lab::table("t");
    lab.aws.delta(&["write", &table, "small"]).unwrap(); // v0..v2, appends
    lab.aws.delta(&["overwrite", &table, "100", "6"]).unwrap(); // v3 removes them all
                                                                // The file version 1 adds never reaches the backup: versions 1 and 2 need it.
    let location = S3Location::parse(&table).unwrap();
    let body = lab
        .aws
        .get(SRC, "t/_delta_log/00000000000000000001.json")
        .await
        .unwrap();
    let commit = parse_commit(&table_url(&location).unwrap(), 1, &body).unwrap();
    replicate_except(&lab, &location.key(&commit.adds[0].path)).await;
    let times = delta_commit_times(&lab, "t", 4).await;

    let refused = point(&lab, &table, &rfc3339(times[2])).await.unwrap_err();
    println!("{refused}");
    for expected in [
        format!("names version 2 (committed {})", rfc3339(times[2])),
        "cannot be restored".to_string(),
        "is missing from the backup".to_string(),
        format!("version 0 (committed {}) before", rfc3339(times[0])),
        format!("version 3 (committed {}) after", rfc3339(times[3])),
    ] {
        assert!(refused.contains(&expected), "{expected:?} in {refused}");
    }
    // The neighbours themselves can be named.
    assert_eq!(point(&lab, &table, &rfc3339(times[1] - 1)).await, Ok(0));
    assert_eq!(point(&lab, &table, &rfc3339(times[3])).await, Ok(3));
}

#[tokio::test]
async fn in_commit_timestamps_are_the_commit_times_where_the_table_has_them() {
    let lab = Lab::start(&[]).await.unwrap();
    // delta-rs's table with in-commit timestamps on since its creation (July 2026): uploaded
    // now, its files are all younger than every in-commit timestamp.
    let local = shared_tables().join("delta-rs/cdc_ict_table");
    let table = Lab::table("ict");
    lab.aws
        .delta(&["upload", local.to_str().unwrap(), &table])
        .unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let ict = |v: u64| {
        let body = std::fs::read_to_string(local.join(format!("_delta_log/{v:020}.json"))).unwrap();
        body.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|a| a["commitInfo"]["inCommitTimestamp"].as_i64())
            .unwrap()
    };
    assert_eq!(point(&lab, &table, &rfc3339(ict(3))).await, Ok(3));
    assert_eq!(point(&lab, &table, &rfc3339(ict(3) - 1)).await, Ok(2));
    assert_eq!(point(&lab, &table, &rfc3339(ict(2))).await, Ok(2));
    // The files' own times (now) would name nothing at the in-commit timestamps of July.
    assert!(ict(3) < Utc::now().timestamp_millis());
}
