//! A sharded restore on the local AWS: a clone large enough to go through the restore work
//! queue, copied by three concurrent in-process consumers of that queue (as three invocations
//! of the restore function), one of them killed midway through a shard. The killed shard's
//! message is not deleted; it becomes visible again, is redelivered, and its copies already
//! made are recognized and skipped. The log is written once, after the last shard, and the
//! clone reads back equal to the backup. And the in-process queue of `lifeboat restore
//! --workers N`: a shard whose run fails is run again, up to the restore queue's redrive limit.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lifeboat::restore::shards::{
    LocalQueue, Phase, ShardRun, ShardedStart, SqsQueue, MAX_RECEIVES,
};
use lifeboat::restore::{RestoreRequest, Restorer};
use lifeboat::s3::S3Store;
use lifeboat_tests::{FaultProxy, Lab};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Seconds a received shard stays invisible to the other consumers (and a killed one, until
/// it is delivered again).
const VISIBILITY: i32 = 4;

/// What one consumer did.
#[derive(Debug, Default)]
struct Consumed {
    runs: Vec<ShardRun>,
    /// The shard this consumer was killed in the middle of.
    killed: Option<u32>,
}

/// The SQS event Lambda delivers for `message`, with its receive count.
fn event(message: &aws_sdk_sqs::types::Message) -> Value {
    let count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned()
        .unwrap_or_else(|| "1".into());
    json!({"Records": [{
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": {"ApproximateReceiveCount": count},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lifeboat-restore",
        "awsRegion": "us-east-1"
    }]})
}

/// One invocation after another of the restore function on the queue, one message each (the
/// template's batch size), until the restore is done. With `kill`, the first shard is dropped
/// after two copies, its message left in the queue.
async fn consume(
    lab: &Lab,
    restorer: &Restorer<S3Store>,
    queue: &str,
    id: &str,
    kill: bool,
) -> Consumed {
    let mut consumed = Consumed::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the restore did not finish in 60 s"
        );
        let received = lab
            .aws
            .sqs()
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(1)
            .visibility_timeout(VISIBILITY)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let Some(message) = received.messages().first() else {
            if restorer.restore_status(id).await.unwrap().phase == Phase::Done {
                return consumed;
            }
            continue;
        };
        let event = event(message);
        if kill && consumed.killed.is_none() {
            let copies = Notify::new();
            let progress = |done: u64, _total: u64| {
                if done >= 2 {
                    copies.notify_one();
                }
            };
            tokio::select! {
                _ = restorer.handle_shards(&event, None, progress) => panic!("the shard finished before it was killed"),
                _ = copies.notified() => {}
            }
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            consumed.killed = Some(body["shard"].as_u64().unwrap() as u32);
            continue;
        }
        let (response, runs) = restorer
            .handle_shards(&event, None, |_, _| {})
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        lab.aws
            .delete_messages(queue, &[message.receipt_handle().unwrap().to_string()])
            .await
            .unwrap();
        consumed.runs.extend(runs);
    }
}

#[tokio::test]
async fn a_restore_sharded_across_three_invocations_with_one_killed_completes() {
    let mut lab = Lab::start(&[
        ("LIFEBOAT_RESTORE_SHARD_THRESHOLD", "8"),
        ("LIFEBOAT_RESTORE_SHARD_OBJECTS", "6"),
        // Two copies at a time, so the kill lands in the middle of a shard.
        ("LIFEBOAT_COPY_CONCURRENCY", "2"),
    ])
    .await
    .unwrap();
    let queue = lab
        .aws
        .sqs()
        .create_queue()
        .queue_name("lifeboat-restore")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    lab.vars
        .insert("LIFEBOAT_RESTORE_QUEUE_URL".into(), queue.clone());
    let table = Lab::table("t/big");
    lab.aws.delta(&["write", &table, "history"]).unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let restorer = |lab: &Lab| {
        Restorer::new(lab.store(), lab.config()).with_queue(Arc::new(SqsQueue::new(
            lab.aws.sqs().clone(),
            queue.clone(),
        )))
    };

    // The coordinating request plans and hands the data to the queue.
    let clone = Lab::table("clones/big");
    let request = RestoreRequest::from_value(
        &json!({"table": table, "mode": "clone", "target": clone, "dry_run": false}),
    )
    .unwrap();
    let coordinator = restorer(&lab);
    let response = coordinator.run(&request, None, |_, _| {}).await.unwrap();
    let started = response.sharded.clone().expect("a sharded restore");
    assert!(
        response.result.is_none(),
        "nothing is copied by the coordinator"
    );
    assert!(started.shards >= 4, "{started:?}");
    assert!(started.log_objects >= 7, "{started:?}");
    assert!(
        response.plan.notes.iter().any(|n| n.contains("shard(s)")),
        "{:?}",
        response.plan.notes
    );
    // Nothing of the log is written before every shard is done.
    assert!(lab
        .aws
        .list_keys(Lab::SRC, "clones/big/_delta_log/")
        .await
        .unwrap()
        .is_empty());
    let status = coordinator
        .restore_status(&started.restore_id)
        .await
        .unwrap();
    assert_eq!((status.phase, status.shards_done), (Phase::Copying, 0));

    // Three invocations at once, one killed mid-shard.
    let (a, b, c) = (restorer(&lab), restorer(&lab), restorer(&lab));
    let id = started.restore_id.as_str();
    let (killed, second, third) = tokio::join!(
        consume(&lab, &a, &queue, id, true),
        consume(&lab, &b, &queue, id, false),
        consume(&lab, &c, &queue, id, false),
    );
    let shard = killed.killed.expect("one consumer was killed mid-shard");
    let runs: Vec<&ShardRun> = [&killed, &second, &third]
        .iter()
        .flat_map(|c| &c.runs)
        .collect();
    let copied_by = [&killed, &second, &third]
        .iter()
        .filter(|c| c.runs.iter().any(|r| r.done.is_some()))
        .count();
    assert!(
        copied_by >= 2,
        "shards were copied by {copied_by} consumer(s)"
    );
    let done: BTreeSet<u32> = runs
        .iter()
        .filter(|r| r.done.is_some())
        .map(|r| r.shard)
        .collect();
    assert_eq!(done, (0..started.shards).collect(), "every shard once");
    // The killed shard, delivered again, skipped the copies it had made.
    let redone = runs
        .iter()
        .find_map(|r| r.done.as_ref().filter(|d| d.shard == shard))
        .unwrap();
    assert!(redone.skipped >= 2, "{redone:?}");
    assert_eq!(redone.skipped + redone.copied, 6.min(started.objects));
    // One invocation wrote the log.
    assert_eq!(runs.iter().filter(|r| r.finished).count(), 1, "{runs:?}");

    let status = coordinator.restore_status(id).await.unwrap();
    assert_eq!(status.phase, Phase::Done, "{status:?}");
    assert_eq!(status.objects_done, started.objects);
    assert_eq!(status.shards_done, started.shards);
    let finished = status.finished.unwrap();
    assert!(finished.log.complete);
    assert_eq!(finished.log.copied, started.log_objects);

    // The clone reads back as the backup, version by version.
    let backup = Lab::backup_table("t/big");
    let latest = response.plan.restore_point.version.to_string();
    for v in ["0", latest.as_str()] {
        let same = lab.aws.delta(&["same", &backup, v, &clone, v]).unwrap();
        assert_eq!(same["equal"], true, "version {v}: {same}");
    }
    // No object was copied twice: every clone key has one version.
    for key in lab.aws.list_keys(Lab::SRC, "clones/big/").await.unwrap() {
        assert_eq!(
            lab.aws.version_count(Lab::SRC, &key).await.unwrap(),
            1,
            "{key}"
        );
    }
}

/// A clone of `table` into `target` planned and handed to an in-process queue of its own, as
/// `lifeboat restore --workers` starts one: the queue, the restorer, the version restored to,
/// and the sharded restore started.
async fn start_local_clone(
    lab: &Lab,
    store: &S3Store,
    table: &str,
    target: &str,
) -> (Arc<LocalQueue>, Restorer<S3Store>, u64, ShardedStart) {
    let queue = Arc::new(LocalQueue::default());
    let restorer = Restorer::new(store.clone(), lab.config()).with_queue(queue.clone());
    let request = RestoreRequest::from_value(
        &json!({"table": table, "mode": "clone", "target": target, "dry_run": false}),
    )
    .unwrap();
    let response = restorer.run(&request, None, |_, _| {}).await.unwrap();
    let started = response.sharded.expect("a sharded restore");
    (
        queue,
        restorer,
        response.plan.restore_point.version,
        started,
    )
}

/// `lifeboat restore --workers N` copies the shards in its own process ([`LocalQueue`]). A
/// shard whose run fails is run again, as the restore queue delivers it again, and the restore
/// completes; a shard failing on every delivery stops the restore after the queue's redrive
/// limit, with an error naming the shard and the restore. Run again once S3 answers, the same
/// restore completes and reads back equal.
#[tokio::test]
async fn in_process_shards_that_fail_are_run_again_up_to_the_redrive_limit() {
    let lab = Lab::start(&[
        ("LIFEBOAT_RESTORE_SHARD_THRESHOLD", "8"),
        ("LIFEBOAT_RESTORE_SHARD_OBJECTS", "6"),
    ])
    .await
    .unwrap();
    let table = Lab::table("t/local");
    lab.aws.delta(&["write", &table, "history"]).unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let proxy = FaultProxy::start(&lab.aws.endpoint, 0.0, "internal", 1).unwrap();
    // One attempt per request: each fault the proxy injects fails the shard's run.
    let store = S3Store::new(proxy.s3_client_with_attempts(1).await);
    let backup = Lab::backup_table("t/local");
    let reads_back_equal = |target: &str, version: u64| {
        let v = version.to_string();
        let same = lab.aws.delta(&["same", &backup, &v, target, &v]).unwrap();
        assert_eq!(same["equal"], true, "{target} version {v}: {same}");
    };

    // One fault, in the first request of the first shard's run.
    let target = Lab::table("clones/once");
    let (queue, restorer, version, started) =
        start_local_clone(&lab, &store, &table, &target).await;
    assert!(started.shards >= 4, "{started:?}");
    proxy.fail_next(1).unwrap();
    let failures = Mutex::new(Vec::new());
    queue
        .work(&restorer, 1, |f| {
            failures.lock().unwrap().push((f.receives, f.again))
        })
        .await
        .unwrap();
    assert_eq!(failures.into_inner().unwrap(), vec![(1, true)]);
    let status = restorer.restore_status(&started.restore_id).await.unwrap();
    assert_eq!(status.phase, Phase::Done, "{status:?}");
    assert_eq!(status.objects_done, started.objects);
    reads_back_equal(&target, version);

    // Every request fails: the first shard to be received MAX_RECEIVES times stops the work.
    let target = Lab::table("clones/stopped");
    let (queue, restorer, _, started) = start_local_clone(&lab, &store, &table, &target).await;
    proxy.set_rate(1.0).unwrap();
    let failures = Mutex::new(Vec::new());
    let err = queue
        .work(&restorer, 2, |f| {
            failures
                .lock()
                .unwrap()
                .push((f.shard, f.receives, f.again))
        })
        .await
        .expect_err("a shard failing on every delivery stops the restore");
    proxy.set_rate(0.0).unwrap();
    let failures = failures.into_inner().unwrap();
    let (given_up, receives, _) = *failures.iter().find(|f| !f.2).expect("one given up");
    assert_eq!(receives, MAX_RECEIVES, "{failures:?}");
    let deliveries: Vec<u32> = failures
        .iter()
        .filter(|f| f.0 == given_up)
        .map(|f| f.1)
        .collect();
    assert_eq!(deliveries, (1..=MAX_RECEIVES).collect::<Vec<_>>());
    let text = err.to_string();
    for part in [
        format!("shard {given_up} of restore {}", started.restore_id),
        format!("failed {MAX_RECEIVES} times"),
        format!("lifeboat restore --status {}", started.restore_id),
    ] {
        assert!(text.contains(&part), "{part:?} in {text}");
    }
    assert!(!queue.is_empty(), "the shards not run stay queued");
    let status = restorer.restore_status(&started.restore_id).await.unwrap();
    assert_eq!(status.phase, Phase::Copying, "{status:?}");

    // The same restore, run again, completes.
    let (queue, restorer, version, started) =
        start_local_clone(&lab, &store, &table, &target).await;
    queue
        .work(&restorer, 2, |f| panic!("no fault now: {f:?}"))
        .await
        .unwrap();
    let status = restorer.restore_status(&started.restore_id).await.unwrap();
    assert_eq!(status.phase, Phase::Done, "{status:?}");
    reads_back_equal(&target, version);
}
