//! The replicate binary refuses a bad configuration at cold start, naming the variable.

use std::process::Command;

fn start(vars: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_replicate"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn missing_backup_bucket_is_named() {
    let (ok, output) = start(&[("LIFEBOAT_SOURCE_BUCKETS", "src")]);
    assert!(!ok);
    assert!(output.contains("LIFEBOAT_BACKUP_BUCKET"), "{output}");
}

#[test]
fn backup_bucket_that_is_a_source_is_refused() {
    let (ok, output) = start(&[
        ("LIFEBOAT_BACKUP_BUCKET", "b"),
        ("LIFEBOAT_SOURCE_BUCKETS", "a,b"),
    ]);
    assert!(!ok);
    assert!(output.contains("LIFEBOAT_SOURCE_BUCKETS"), "{output}");
}

#[test]
fn bad_number_is_named() {
    let (ok, output) = start(&[
        ("LIFEBOAT_BACKUP_BUCKET", "b"),
        ("LIFEBOAT_SOURCE_BUCKETS", "a"),
        ("LIFEBOAT_COPY_CONCURRENCY", "many"),
    ]);
    assert!(!ok);
    assert!(output.contains("LIFEBOAT_COPY_CONCURRENCY"), "{output}");
}
