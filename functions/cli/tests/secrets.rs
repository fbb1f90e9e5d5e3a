//! Secrets never reach the logs, even with every log level on.

use std::process::Command;

use lifeboat_tests::{sqs_event, Lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_output_at_trace_level() {
    const SECRET: &str = "SENTINELsecretKEYdoNOTlog0123456789abcdef";
    const TOKEN: &str = "SENTINELsessionTOKENdoNOTlog";
    let lab = Lab::start(&[]).await.unwrap();
    let table = Lab::table("t/secret");
    lab.aws.delta(&["write", &table, "small"]).unwrap();
    let messages = lab.aws.receive_all(&lab.queue).await.unwrap();
    let event = std::env::temp_dir().join(format!("lifeboat-secret-{}.json", std::process::id()));
    std::fs::write(&event, sqs_event(&messages).to_string()).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .envs(&lab.vars)
            .env("AWS_ENDPOINT_URL", &lab.aws.endpoint)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SESSION_TOKEN", TOKEN)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.len() > 1000, "trace logging is on");
        assert!(
            !text.contains(SECRET) && !text.contains(TOKEN),
            "a credential was logged by {args:?}"
        );
    };
    run(&["replicate", "--event", event.to_str().unwrap()]);
    run(&["verify", "--table", &table, "--json"]);
    run(&[
        "restore",
        &table,
        "--mode",
        "clone",
        "--target",
        &Lab::table("clones/secret"),
        "--execute",
        "--json",
    ]);
    std::fs::remove_file(event).ok();
}
