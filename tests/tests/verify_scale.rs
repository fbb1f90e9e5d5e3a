//! Verification past one Lambda (issue 17), on the local AWS:
//! - a fan-out round of 50 tables through the verify queue, consumed by two concurrent
//!   in-process consumers (as two Lambda invocations), aggregated into a right `latest.json`;
//! - incremental verification reads only the new commits (GETs counted at a proxy);
//! - the daily full re-proof catches a backup object deleted behind Lifeboat's back, which the
//!   incremental runs between full proofs do not look at.
//!
//! Tables are synthetic logs written straight into the source (one small file per commit) and
//! backfilled into the backup, so 50 tables take seconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use lifeboat::keys::S3Location;
use lifeboat::s3::S3Store;
use lifeboat::verify::state::{state_key, TableState};
use lifeboat::verify::{FindingKind, Proving, Verifier, VerifySettings};
use lifeboat::Config;
use lifeboat_cli::queue::QueueDriver;
use lifeboat_tests::{fixture, FaultProxy, Lab};
use serde_json::Value;

/// Commits `from..to` of a synthetic table at `path`: version v adds `part-v.parquet`.
async fn write_versions(lab: &Lab, path: &str, from: u64, to: u64) {
    lab.write_synthetic_versions(path, from, to).await;
}

/// Copies what the backup lacks under `s3://source-bucket/<prefix>`.
async fn backfill(lab: &Lab, prefix: &str) {
    let location = S3Location::parse(&Lab::table(prefix)).unwrap();
    let summary = lifeboat::backfill::backfill(&lab.replicator, &location, |_, _| {})
        .await
        .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
}

fn settings_of(lab: &Lab, extra: &[(&str, &str)]) -> (Config, VerifySettings) {
    let mut vars: HashMap<String, String> = lab.vars.clone();
    vars.insert("LIFEBOAT_GRACE_SECONDS".into(), "0".into());
    vars.remove("LIFEBOAT_QUEUE_URL");
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let settings = VerifySettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    (config, settings)
}

#[tokio::test]
async fn a_fan_out_round_of_50_tables_runs_as_concurrent_invocations_and_aggregates_right() {
    const TABLES: usize = 50;
    let lab = Lab::start(&[]).await.unwrap();
    let queue = lab
        .aws
        .sqs()
        .create_queue()
        .queue_name("lifeboat-verify")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let tables: Vec<String> = (0..TABLES).map(|i| format!("fan/t{i:02}")).collect();
    futures::stream::iter(&tables)
        .for_each_concurrent(8, |t| write_versions(&lab, t, 0, 3))
        .await;
    backfill(&lab, "fan").await;
    // One table loses its newest data file from the backup: its newest version is no longer
    // restorable (a critical finding); every other table is clean.
    let damaged = "fan/t17";
    lab.aws
        .delete(
            Lab::BACKUP,
            &format!("{}/{damaged}/part-00002.parquet", Lab::SRC),
        )
        .await
        .unwrap();

    let (config, settings) = settings_of(&lab, &[("LIFEBOAT_VERIFY_QUEUE_URL", &queue)]);
    let verifier = Verifier::new(lab.store(), Some(lab.aws.sqs().clone()), config, settings);
    let scheduled: Value = serde_json::from_str(&fixture("eventbridge-scheduled.json")).unwrap();
    let dispatched = verifier.handle(&scheduled).await.unwrap();
    assert_eq!(dispatched["tables"], TABLES, "{dispatched}");
    assert_eq!(dispatched["messages"], TABLES, "{dispatched}");

    // Two consumers drive the queue at once, as two concurrent Lambda invocations would.
    let in_flight = AtomicUsize::new(0);
    let most_in_flight = AtomicUsize::new(0);
    let consumer = |name: &'static str| {
        let verifier = &verifier;
        let in_flight = &in_flight;
        let most_in_flight = &most_in_flight;
        let driver = QueueDriver::new(lab.aws.sqs().clone(), &queue);
        async move {
            let mut handler = async move |event: Value| -> anyhow::Result<Value> {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most_in_flight.fetch_max(now, Ordering::SeqCst);
                let out = verifier.handle(&event).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(out?)
            };
            let drained = driver.until_empty(&mut handler, |_| {}).await.unwrap();
            println!(
                "consumer {name}: {} invocations, {} messages",
                drained.batches, drained.messages
            );
            drained
        }
    };
    let (a, b) = futures::join!(consumer("a"), consumer("b"));
    assert!(
        a.batches > 0 && b.batches > 0,
        "both consumers invoked: {a:?} {b:?}"
    );
    assert_eq!(a.messages + b.messages, TABLES);
    assert!(a.failed.is_empty() && b.failed.is_empty());
    assert!(
        most_in_flight.load(Ordering::SeqCst) >= 2,
        "the invocations overlapped"
    );

    // The aggregate: every table once, in discovery order, the damage counted once.
    let latest: Value = serde_json::from_slice(
        &lab.aws
            .get(Lab::BACKUP, "_lifeboat/reports/latest.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let reported: Vec<&str> = latest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = tables.iter().map(|t| Lab::table(t)).collect();
    expected.sort();
    assert_eq!(reported, expected);
    let summary = &latest["summary"];
    assert_eq!(summary["tables_verified"], TABLES);
    assert_eq!(summary["restorable_tables"], TABLES);
    assert_eq!(summary["failed_tables"], 0);
    for t in latest["tables"].as_array().unwrap() {
        let findings: Vec<&str> = t["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "info")
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        if t["table"] == Lab::table(damaged) {
            assert_eq!(t["newest_restorable_version"], 1, "{t}");
            assert!(findings.contains(&"missing_files_in_backup"), "{t}");
        } else {
            assert_eq!(t["newest_restorable_version"], 2, "{t}");
            assert!(findings.is_empty(), "{t}");
        }
    }
    let damaged_critical = latest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == Lab::table(damaged))
        .unwrap()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "critical")
        .count();
    assert!(damaged_critical >= 1);
    assert_eq!(summary["critical_findings"], damaged_critical);
    let round = dispatched["round"].as_str().unwrap();
    let keys = lab
        .aws
        .list_keys(Lab::BACKUP, &format!("_lifeboat/reports/rounds/{round}/"))
        .await
        .unwrap();
    assert_eq!(
        keys.iter().filter(|k| k.contains("/tables/")).count(),
        TABLES
    );
    assert!(
        keys.iter().any(|k| k.ends_with("aggregated.json")),
        "{keys:?}"
    );
    // Each table's proven state is kept for the next round.
    let states = lab
        .aws
        .list_keys(Lab::BACKUP, "_lifeboat/state/tables/")
        .await
        .unwrap();
    assert_eq!(states.len(), TABLES, "{states:?}");

    // The next scheduled run finds the round closed and starts another.
    let next = verifier.handle(&scheduled).await.unwrap();
    assert!(next["closed_round"].is_null(), "{next}");
}

/// Requests by operation the proxy saw since `before`.
fn delta(proxy: &FaultProxy, before: &Value) -> HashMap<String, u64> {
    let now = proxy.stats().unwrap();
    now.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let was = before[k].as_u64().unwrap_or(0);
            (k.clone(), v.as_u64().unwrap_or(0) - was)
        })
        .collect()
}

#[tokio::test]
async fn incremental_verify_reads_only_new_commits_and_the_full_re_proof_catches_damage() {
    const VERSIONS: u64 = 60;
    const NEW: u64 = 5;
    let lab = Lab::start(&[]).await.unwrap();
    let path = "inc/t";
    write_versions(&lab, path, 0, VERSIONS).await;
    backfill(&lab, path).await;
    let table = S3Location::parse(&Lab::table(path)).unwrap();

    let proxy = FaultProxy::start(&lab.aws.endpoint, 0.0, "", 1).unwrap();
    let counted = || async { S3Store::new(proxy.s3_client().await) };
    let (config, settings) = settings_of(&lab, &[]);
    let verifier = Verifier::new(
        counted().await,
        None::<aws_sdk_sqs::Client>,
        config.clone(),
        settings.clone(),
    );

    // The first scheduled run has no state: a full proof, whose state it keeps.
    let before = proxy.stats().unwrap();
    let report = verifier
        .run_with(Some(vec![table.clone()]), Proving::Incremental)
        .await
        .unwrap();
    let full = delta(&proxy, &before);
    let t = &report.tables[0];
    assert_eq!(t.newest_restorable_version, Some(VERSIONS - 1));
    assert!(t.findings.is_empty(), "{:#?}", t.findings);
    assert!(
        full["op:GET"] > VERSIONS,
        "a full proof reads every commit: {full:?}"
    );
    let key = state_key(config.layout(), &table);
    let state = TableState::decode(&lab.aws.get(Lab::BACKUP, &key).await.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(state.header.proven_version, VERSIONS - 1);
    assert!(state.header.clean);
    assert_eq!(state.live.len() as u64, VERSIONS);

    // New commits; the next run reads those alone.
    write_versions(&lab, path, VERSIONS, VERSIONS + NEW).await;
    backfill(&lab, path).await;
    let before = proxy.stats().unwrap();
    let report = verifier
        .run_with(Some(vec![table.clone()]), Proving::Incremental)
        .await
        .unwrap();
    let incremental = delta(&proxy, &before);
    let t = &report.tables[0];
    assert_eq!(t.newest_restorable_version, Some(VERSIONS + NEW - 1));
    assert_eq!(t.oldest_restorable_version, Some(0));
    assert_eq!(t.latest_backup_version, Some(VERSIONS + NEW - 1));
    assert_eq!(t.lag_versions, Some(0));
    assert!(t.findings.is_empty(), "{:#?}", t.findings);
    println!("full proof: {full:?}\nincremental: {incremental:?}");
    // GETs: the state, and the NEW commits. LISTs: the backup's log after the proven commit,
    // the source, the conflicts, and (5 new files cost more HEADs than the backup's one
    // listing page) the backup. One HEAD: the newest commit's recorded time. One PUT: the
    // state.
    assert_eq!(incremental["op:GET"], 1 + NEW, "{incremental:?}");
    assert_eq!(incremental["op:LIST"], 4, "{incremental:?}");
    assert_eq!(incremental["op:HEAD"], 1, "{incremental:?}");
    assert_eq!(incremental["op:PUT"], 1, "{incremental:?}");
    assert!(
        incremental["requests"] * 5 < full["requests"],
        "{incremental:?} vs {full:?}"
    );
    let state = TableState::decode(&lab.aws.get(Lab::BACKUP, &key).await.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(state.header.proven_version, VERSIONS + NEW - 1);
    assert_eq!(state.live.len() as u64, VERSIONS + NEW);

    // Behind Lifeboat's back, an old data file is deleted from the backup. The runs between
    // full proofs do not look at what they proved already...
    lab.aws
        .delete(
            Lab::BACKUP,
            &format!("{}/{path}/part-00007.parquet", Lab::SRC),
        )
        .await
        .unwrap();
    let report = verifier
        .run_with(Some(vec![table.clone()]), Proving::Incremental)
        .await
        .unwrap();
    assert!(report.tables[0].findings.is_empty());
    // ...the full re-proof does, once it is due (the last one is made a day old here).
    let mut aged = state.clone();
    aged.header.full_proof_at_ms -= 24 * 3_600_000;
    lab.aws
        .put(Lab::BACKUP, &key, aged.encode().unwrap())
        .await
        .unwrap();
    let report = verifier
        .run_with(Some(vec![table.clone()]), Proving::Incremental)
        .await
        .unwrap();
    let t = &report.tables[0];
    let missing = t
        .finding(FindingKind::MissingFilesInBackup)
        .unwrap_or_else(|| panic!("{:#?}", t.findings));
    assert!(
        missing.detail.contains("part-00007.parquet"),
        "{}",
        missing.detail
    );
    assert_eq!(t.newest_restorable_version, Some(6), "{t:#?}");
    // The state it leaves is not clean: every run is a full proof until the damage is
    // repaired, so the finding (and its alarm) stays.
    let state = TableState::decode(&lab.aws.get(Lab::BACKUP, &key).await.unwrap())
        .unwrap()
        .unwrap();
    assert!(!state.header.clean);
    let report = verifier
        .run_with(Some(vec![table.clone()]), Proving::Incremental)
        .await
        .unwrap();
    assert!(report.tables[0]
        .finding(FindingKind::MissingFilesInBackup)
        .is_some());
}
