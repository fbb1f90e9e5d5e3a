//! The Delta snapshot engine against an independent reader (the Python `deltalake` package)
//! over every table in ../shared/delta-test-data, uploaded as a backup into the local S3.

use lifeboat::history::TableHistory;
use lifeboat::keys::S3Location;
use lifeboat::s3::S3Store;
use lifeboat_tests::{shared_delta_tables, LocalAws};

const BACKUP: &str = "backup-bucket";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_files_and_restorability_match_deltalake_on_every_shared_table() {
    let aws = LocalAws::start().await.unwrap();
    aws.create_bucket(BACKUP, true).await.unwrap();
    let store = S3Store::new(aws.s3().clone());
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for (name, dir) in shared_delta_tables() {
        let location = S3Location::parse(&format!("s3://{BACKUP}/src/{name}")).unwrap();
        aws.delta(&["upload", dir.to_str().unwrap(), &location.to_string()])
            .unwrap();
        let expected = aws.delta(&["live-counts", dir.to_str().unwrap()]).unwrap();
        let history = match TableHistory::analyze(&store, &location).await {
            Ok(h) => h,
            Err(err) => {
                mismatches.push(format!("{name}: analysis failed: {err}"));
                continue;
            }
        };
        if let Some(err) = expected.get("error") {
            report.push(format!(
                "{name}: deltalake cannot open it ({err}); ours: restorable {:?}",
                history.ranges(true)
            ));
            continue;
        }
        let versions = expected["versions"].as_object().unwrap();
        for (v, exp) in versions {
            let v: u64 = v.parse().unwrap();
            let ours = history.status(v);
            let line = match (exp.get("count"), ours) {
                (Some(count), Some(s)) => {
                    let all_present = exp["all_present"].as_bool().unwrap();
                    let count = count.as_u64().unwrap();
                    if all_present && !(s.restorable && s.live_files == Some(count)) {
                        Some(format!("v{v}: deltalake {count} files all present; ours restorable={} live={:?} ({:?})", s.restorable, s.live_files, s.reason))
                    } else if !all_present && s.restorable {
                        Some(format!(
                            "v{v}: files are missing on disk but ours says restorable"
                        ))
                    } else if s.live_files.is_some() && s.live_files != Some(count) {
                        Some(format!(
                            "v{v}: deltalake {count} live files, ours {:?}",
                            s.live_files
                        ))
                    } else {
                        None
                    }
                }
                (Some(count), None) => Some(format!(
                    "v{v}: deltalake reads {count} files; ours has no such version"
                )),
                (None, Some(s)) if s.restorable => Some(format!(
                    "v{v}: deltalake cannot read it ({}); ours says restorable",
                    exp["error"]
                )),
                _ => None,
            };
            if let Some(line) = line {
                mismatches.push(format!("{name}: {line}"));
            }
        }
        report.push(format!(
            "{name}: versions {:?}..{:?} restorable {:?}",
            history.versions.first().map(|s| s.version),
            history.latest_version(),
            history.ranges(true)
        ));
    }
    println!("{}", report.join("\n"));
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
