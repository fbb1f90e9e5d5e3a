//! Reliability: faults injected between Lifeboat and S3, duplicated and shuffled events.

use std::collections::BTreeMap;

use lifeboat::replicate::Replicator;
use lifeboat::restore::{RestoreRequest, Restorer};
use lifeboat::s3::S3Store;
use lifeboat::verify::{Verifier, VerifySettings};
use lifeboat_tests::{failed_ids, sqs_event, FaultProxy, Lab};
use proptest::prelude::*;
use serde_json::json;

/// Replication, verification and a restore all complete through a proxy that fails one
/// request in ten (503 SlowDown, 500 InternalError, connection resets before and after the
/// request is applied, slow answers), and the results are exact.
/// The fault proxy's seed: with it, every kind of fault is injected at least once into this
/// test's requests (the assertion at the end says so).
const SEED: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_faults_lose_nothing() {
    let lab = Lab::start(&[]).await.unwrap();
    let table = Lab::table("t/faulty");
    lab.aws.delta(&["write", &table, "history"]).unwrap();

    let proxy = FaultProxy::start(
        &lab.aws.endpoint,
        0.10,
        "slowdown,internal,reset,lost,slow",
        SEED,
    )
    .unwrap();
    let faulty = S3Store::new(proxy.s3_client().await);
    // The kernel (log replay) reads through the proxy too.
    std::env::set_var("AWS_ENDPOINT_URL", &proxy.endpoint);

    let replicator = Replicator::new(faulty.clone(), lab.config());
    let rounds = lab.drain_with_redelivery(&replicator, 10).await.unwrap();
    let objects = lab.assert_backup_identical("t/faulty/").await.unwrap();
    assert!(objects > 20, "{objects}");

    let settings = VerifySettings {
        grace_seconds: 0,
        ..VerifySettings::default()
    };
    let verifier = Verifier::new(
        faulty.clone(),
        Some(lab.aws.sqs().clone()),
        lab.config(),
        settings,
    );
    let report = verifier.handle(&json!({"tables": [table]})).await.unwrap();
    let t = &report["tables"][0];
    assert_eq!(t["newest_restorable_version"], 6, "{report}");
    assert_eq!(t["oldest_restorable_version"], 0, "{report}");
    assert_eq!(t["unrestorable_versions"], json!([]), "{report}");

    let restorer = Restorer::new(faulty, lab.config());
    let target = Lab::table("clones/faulty");
    let payload =
        json!({"table": table, "mode": "clone", "version": 4, "target": target, "dry_run": false});
    let done = restorer
        .run(
            &RestoreRequest::from_value(&payload).unwrap(),
            None,
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(done.result.as_ref().unwrap().complete, "{done:?}");
    std::env::set_var("AWS_ENDPOINT_URL", &lab.aws.endpoint);
    assert_eq!(
        lab.aws
            .delta(&["same", &table, "4", &target, "latest"])
            .unwrap()["equal"],
        true
    );

    let stats = proxy.stats().unwrap();
    println!("faults injected: {stats}; replication rounds: {rounds:?}");
    for fault in ["slowdown", "internal", "reset", "lost", "slow"] {
        assert!(
            stats[fault].as_u64().unwrap() > 0,
            "no {fault} injected: {stats}"
        );
    }
}

/// When S3 keeps failing past the retries, the records fail (SQS retries them, then moves
/// them to the dead-letter queue): nothing is dropped, and they succeed once S3 recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_that_outlast_the_retries_fail_the_record_into_the_dead_letter_queue() {
    let lab = Lab::start(&[]).await.unwrap();
    let sqs = lab.aws.sqs();
    let dlq = sqs
        .create_queue()
        .queue_name("lifeboat-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let redrive = json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:lifeboat-dlq", "maxReceiveCount": "2"});
    sqs.set_queue_attributes()
        .queue_url(&lab.queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            redrive.to_string(),
        )
        .send()
        .await
        .unwrap();
    lab.aws
        .put(Lab::SRC, "t/a.parquet", b"a".to_vec())
        .await
        .unwrap();
    lab.aws
        .put(Lab::SRC, "t/b.parquet", b"b".to_vec())
        .await
        .unwrap();

    let proxy = FaultProxy::start(&lab.aws.endpoint, 1.0, "slowdown", 3).unwrap();
    let replicator = Replicator::new(S3Store::new(proxy.s3_client().await), lab.config());
    for attempt in 1..=2 {
        let messages = lab.aws.receive_all(&lab.queue).await.unwrap();
        assert_eq!(messages.len(), 2, "attempt {attempt}");
        let response = replicator.handle(&sqs_event(&messages)).await.unwrap();
        assert_eq!(
            failed_ids(&response).len(),
            2,
            "both records fail, none is dropped: {response:?}"
        );
        for m in &messages {
            sqs.change_message_visibility()
                .queue_url(&lab.queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }
    let attempts = proxy.stats().unwrap()["requests"].as_u64().unwrap();
    assert_eq!(
        attempts,
        2 * 2 * lifeboat::s3::DEFAULT_MAX_ATTEMPTS as u64,
        "bounded retries per request"
    );
    // A third receive finds them moved to the dead-letter queue.
    assert!(lab.aws.receive_all(&lab.queue).await.unwrap().is_empty());
    let dead = lab.aws.receive_all(&dlq).await.unwrap();
    assert_eq!(dead.len(), 2);
    // Redriven once S3 is healthy again, they are copied.
    proxy.set_rate(0.0).unwrap();
    let response = replicator.handle(&sqs_event(&dead)).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        lab.aws
            .get(Lab::BACKUP, &format!("{}/t/a.parquet", Lab::SRC))
            .await
            .unwrap(),
        b"a"
    );
}

/// The backup a replicator makes from an event order: keys, content digests and version counts.
async fn backup_state(lab: &Lab, prefix: &str) -> BTreeMap<String, (u64, usize)> {
    use std::hash::{Hash, Hasher};
    let mut state = BTreeMap::new();
    for key in lab.aws.list_keys(Lab::BACKUP, prefix).await.unwrap() {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        lab.aws
            .get(Lab::BACKUP, &key)
            .await
            .unwrap()
            .hash(&mut hasher);
        let body = hasher.finish();
        let versions = lab.aws.version_count(Lab::BACKUP, &key).await.unwrap();
        state.insert(key[prefix.len()..].to_string(), (body, versions));
    }
    state
}

/// Events delivered shuffled, each two or three times, in batches of any size, give the same
/// backup as in-order single delivery. (The table's files are immutable Delta files; a
/// rewritten `_last_checkpoint` relies on CopySourceIfMatch, which moto ignores.)
#[test]
fn shuffled_and_duplicated_events_give_the_same_backup() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lab = runtime.block_on(Lab::start(&[])).unwrap();
    let table = Lab::table("t/order");
    lab.aws.delta(&["write", &table, "small"]).unwrap();
    let messages = runtime.block_on(lab.aws.receive_all(&lab.queue)).unwrap();
    assert!(messages.len() > 8);
    let replicator_at = |prefix: &str| {
        let mut vars = lab.vars.clone();
        vars.insert("LIFEBOAT_BACKUP_PREFIX".into(), prefix.into());
        Replicator::new(
            lab.store(),
            lifeboat::Config::from_lookup(|k| vars.get(k).cloned()).unwrap(),
        )
    };
    runtime.block_on(async {
        let response = replicator_at("ordered/{bucket}/")
            .handle(&sqs_event(&messages))
            .await
            .unwrap();
        assert!(failed_ids(&response).is_empty());
    });
    let expected = runtime.block_on(backup_state(&lab, "ordered/"));
    assert!(expected.values().all(|(_, versions)| *versions == 1));

    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(6);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let n = messages.len();
    let strategy = (
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::collection::vec(1usize..=3, n),
        1usize..=10,
        any::<u32>(),
    );
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&strategy, |(order, copies, batch, _)| {
            let id = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let prefix = format!("case{id}/");
            let mut delivery = Vec::new();
            for &i in &order {
                for _ in 0..copies[i] {
                    delivery.push(messages[i].clone());
                }
            }
            // Duplicates arrive late as well as early.
            let len = delivery.len();
            delivery.rotate_left(order[0] % len);
            let replicator = replicator_at(&format!("{prefix}{{bucket}}/"));
            runtime.block_on(async {
                for chunk in delivery.chunks(batch) {
                    let response = replicator.handle(&sqs_event(chunk)).await.unwrap();
                    prop_assert!(failed_ids(&response).is_empty());
                }
                let got = backup_state(&lab, &prefix).await;
                prop_assert_eq!(&got, &expected);
                Ok(())
            })
        })
        .unwrap();
}

/// With `LIFEBOAT_CONDITIONAL_COPY` (for servers that honour `If-None-Match` on CopyObject, as
/// S3 does; the proxy answers for moto, which ignores it), a new object costs one request, and
/// duplicates and rewritten log files are still caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_copies_cost_one_request_per_new_object() {
    let lab = Lab::start(&[("LIFEBOAT_CONDITIONAL_COPY", "true")])
        .await
        .unwrap();
    lab.aws
        .delta(&["write", &Lab::table("t/cheap"), "small"])
        .unwrap();
    let proxy = FaultProxy::start(&lab.aws.endpoint, 0.0, "", 5).unwrap();
    let replicator = Replicator::new(S3Store::new(proxy.s3_client().await), lab.config());
    let messages = lab.aws.receive_all(&lab.queue).await.unwrap();
    let response = replicator.handle(&sqs_event(&messages)).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    let objects = lab.assert_backup_identical("t/cheap/").await.unwrap() as u64;
    let requests = proxy.stats().unwrap()["requests"].as_u64().unwrap();
    println!("{requests} requests for {objects} new objects");
    assert_eq!(requests, objects, "one CopyObject per new object");

    // Every event again: nothing new is written.
    let response = replicator.handle(&sqs_event(&messages)).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        lab.assert_backup_identical("t/cheap/").await.unwrap() as u64,
        objects
    );

    // A commit rewritten with garbage: the original stays, the garbage is kept aside.
    let key = "t/cheap/_delta_log/00000000000000000001.json";
    let original = lab.aws.get(Lab::SRC, key).await.unwrap();
    lab.aws
        .put(Lab::SRC, key, b"garbage".to_vec())
        .await
        .unwrap();
    let rewrite = lab.aws.receive_all(&lab.queue).await.unwrap();
    let response = replicator.handle(&sqs_event(&rewrite)).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    let backup_key = format!("{}/{key}", Lab::SRC);
    assert_eq!(
        lab.aws.get(Lab::BACKUP, &backup_key).await.unwrap(),
        original
    );
    assert_eq!(
        lab.aws
            .version_count(Lab::BACKUP, &backup_key)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        lab.aws
            .list_keys(Lab::BACKUP, "_lifeboat/conflicts/")
            .await
            .unwrap()
            .len(),
        1
    );
}
