//! Crash safety: a `lifeboat` process killed in the middle of its work, then run again.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_tests::{sqs_event, FaultProxy, Lab};
use serde_json::Value;

/// `lifeboat` with the functions' environment, talking to S3 at `endpoint`.
fn lifeboat(lab: &Lab, endpoint: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    command
        .args(args)
        .envs(&lab.vars)
        .env("AWS_ENDPOINT_URL", endpoint);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Waits until `done()` holds, then kills the child; fails if it finished first.
async fn kill_when(child: &mut std::process::Child, done: impl AsyncFn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done().await {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no progress within 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn run_to_end(mut command: Command) -> Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicator_killed_mid_batch_then_redelivered_leaves_a_complete_backup() {
    let lab = Lab::start(&[("LIFEBOAT_COPY_CONCURRENCY", "2")])
        .await
        .unwrap();
    lab.aws
        .delta(&["write", &Lab::table("t/crash"), "small"])
        .unwrap();
    let messages = lab.aws.receive_all(&lab.queue).await.unwrap();
    let event = std::env::temp_dir().join(format!("lifeboat-crash-{}.json", std::process::id()));
    std::fs::write(&event, sqs_event(&messages).to_string()).unwrap();
    let total = lab.aws.list_keys(Lab::SRC, "t/crash/").await.unwrap().len();

    // Every request answered slowly, so the batch is still running when the process dies.
    let proxy = FaultProxy::start(&lab.aws.endpoint, 1.0, "slow", 1).unwrap();
    let mut child = lifeboat(
        &lab,
        &proxy.endpoint,
        &["replicate", "--event", event.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    kill_when(&mut child, || async {
        !lab.aws.list_keys(Lab::BACKUP, "").await.unwrap().is_empty()
    })
    .await;
    let partial = lab.aws.list_keys(Lab::BACKUP, "").await.unwrap().len();
    assert!(
        partial < total,
        "killed mid-batch: {partial} of {total} copied"
    );

    // SQS redelivers the whole batch.
    let response = run_to_end(lifeboat(
        &lab,
        &lab.aws.endpoint,
        &["replicate", "--event", event.to_str().unwrap()],
    ));
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert_eq!(
        lab.assert_backup_identical("t/crash/").await.unwrap(),
        total,
        "complete, one version per object"
    );
    std::fs::remove_file(event).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_mid_copy_then_rerun_completes_and_copies_nothing_twice() {
    let lab = Lab::start(&[("LIFEBOAT_COPY_CONCURRENCY", "2")])
        .await
        .unwrap();
    let table = Lab::table("t/crash");
    lab.aws.delta(&["write", &table, "small"]).unwrap();
    lab.drain().await.unwrap();
    lab.purge("t/crash/").await.unwrap();
    lab.drain().await.unwrap();
    let args = [
        "restore",
        table.as_str(),
        "--mode",
        "rollback",
        "--execute",
        "--json",
    ];

    let proxy = FaultProxy::start(&lab.aws.endpoint, 1.0, "slow", 2).unwrap();
    let mut child = lifeboat(&lab, &proxy.endpoint, &args).spawn().unwrap();
    kill_when(&mut child, || async {
        !lab.aws
            .list_keys(Lab::SRC, "t/crash/")
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let partial = lab.aws.list_keys(Lab::SRC, "t/crash/").await.unwrap().len() as u64;

    let response = run_to_end(lifeboat(&lab, &lab.aws.endpoint, &args));
    let plan = &response["plan"];
    let result = &response["result"];
    assert_eq!(result["complete"], true, "{response}");
    assert_eq!(
        plan["already_present"].as_u64().unwrap(),
        partial,
        "what the killed run copied is skipped"
    );
    assert!(partial > 0);
    assert_eq!(
        result["copied"].as_u64().unwrap() + partial,
        lab.aws
            .list_keys(Lab::BACKUP, "source-bucket/t/crash/")
            .await
            .unwrap()
            .len() as u64
    );
    let same = lab
        .aws
        .delta(&["same", &Lab::backup_table("t/crash"), "2", &table, "latest"])
        .unwrap();
    assert_eq!(same["equal"], true);
}
