//! Clone conformance over ../shared/delta-test-data: each table uploaded as a backup, every
//! restorable version cloned from it into a new prefix, and `deltalake` reads the clone as it
//! reads the original at that version.

use futures::StreamExt;
use lifeboat::history::TableHistory;
use lifeboat::keys::S3Location;
use lifeboat::restore::{RestoreRequest, RestoreResponse, Restorer};
use lifeboat_tests::{shared_delta_tables, Lab};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restorable_version_of_every_shared_table_clones_exactly() {
    let lab = Lab::start(&[("LIFEBOAT_COPY_CONCURRENCY", "16")])
        .await
        .unwrap();
    let restorer = Restorer::new(lab.store(), lab.config());
    let mut problems = Vec::new();
    let mut cloned = 0;
    for (index, (name, dir)) in shared_delta_tables().into_iter().enumerate() {
        let local = dir.to_str().unwrap();
        // deltalake must be able to open the original for it to be the referee.
        let expected = lab.aws.delta(&["live-counts", local]).unwrap();
        if expected.get("error").is_some() {
            continue;
        }
        let table = Lab::table(&format!("shared/t{index}"));
        let backup = Lab::backup_table(&format!("shared/t{index}"));
        lab.aws.delta(&["upload", local, &backup]).unwrap();
        let history = TableHistory::analyze(&lab.store(), &S3Location::parse(&backup).unwrap())
            .await
            .unwrap();
        let versions: Vec<u64> = history
            .versions
            .iter()
            .filter(|s| s.restorable)
            .map(|s| s.version)
            .filter(|v| expected["versions"][v.to_string()]["all_present"] == true)
            .collect();
        // A few clones at a time: the local S3 server answers requests in parallel.
        let results: Vec<(u64, String, Result<RestoreResponse, String>)> = futures::stream::iter(versions)
            .map(|version| {
                let (restorer, table) = (&restorer, &table);
                async move {
                    let target = Lab::table(&format!("clones/t{index}/v{version}"));
                    let payload = json!({"table": table, "mode": "clone", "version": version, "target": target, "dry_run": false});
                    let request = RestoreRequest::from_value(&payload).unwrap();
                    let result = restorer.run(&request, None, |_, _| {}).await.map_err(|e| e.to_string());
                    (version, target, result)
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut pairs = Vec::new();
        for (version, target, result) in results {
            match result {
                Ok(response) if response.result.as_ref().is_some_and(|r| r.complete) => {
                    pairs.push(json!([version, target]))
                }
                Ok(response) => {
                    problems.push(format!("{name} v{version}: incomplete {response:?}"))
                }
                Err(err) => problems.push(format!("{name} v{version}: {err}")),
            }
        }
        cloned += pairs.len();
        let compared = lab
            .aws
            .delta(&[
                "compare-clones",
                local,
                &serde_json::to_string(&pairs).unwrap(),
            ])
            .unwrap();
        for unreadable in compared["unreadable"].as_array().unwrap() {
            println!("{name}: deltalake cannot read the original: {unreadable}");
        }
        cloned -= compared["unreadable"].as_array().unwrap().len();
        for differ in compared["differ"].as_array().unwrap() {
            problems.push(format!("{name}: {differ}"));
        }
    }
    println!("cloned and compared {cloned} versions");
    assert!(cloned > 100, "only {cloned} versions compared");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
