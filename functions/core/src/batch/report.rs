//! The completion report of a Batch Operations job, read into what each task came to.
//!
//! As documented: the report's `manifest.json` (`Format` `Report_CSV_20180820`) lists the
//! result files, one per `TaskExecutionStatus`; each result file is a headerless CSV whose
//! `ReportSchema` is `Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode,
//! ResultMessage`. The documentation's own example rows put the HTTP status before the error
//! code (`...,failed,200,PermanentFailure,"Lambda returned function error: ..."`), against the
//! schema's order; the two columns are told apart by content (the status code is a number),
//! so either order reads the same.

use std::collections::HashSet;

use serde::Deserialize;

use super::manifest::{decode_key, ManifestEntry};
use crate::error::{Error, Result};

/// The report's top-level `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportManifest {
    pub format: String,
    pub report_creation_date: String,
    #[serde(default)]
    pub results: Vec<ResultFile>,
    pub report_schema: String,
}

/// One result file of the report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultFile {
    /// `succeeded` or `failed`: which tasks the file lists.
    pub task_execution_status: String,
    pub bucket: String,
    #[serde(rename = "MD5Checksum")]
    pub md5_checksum: String,
    pub key: String,
}

impl ReportManifest {
    pub fn parse(json: &str) -> Result<Self> {
        let manifest: ReportManifest = serde_json::from_str(json)
            .map_err(|e| Error::bad_input(format!("Batch Operations report manifest: {e}")))?;
        if manifest.format != super::job::REPORT_FORMAT {
            return Err(Error::bad_input(format!(
                "Batch Operations report format {:?}; this reads {}",
                manifest.format,
                super::job::REPORT_FORMAT
            )));
        }
        Ok(manifest)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Succeeded,
    Failed,
}

/// One line of a result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub bucket: String,
    /// Decoded, as the manifest's key was before encoding.
    pub key: String,
    pub version_id: Option<String>,
    pub status: TaskStatus,
    pub error_code: Option<String>,
    pub http_status: Option<u16>,
    pub message: String,
}

/// Reads one result file.
pub fn parse_report_csv(text: &str) -> Result<Vec<TaskResult>> {
    crate::csv::records(text)?
        .into_iter()
        .map(|row| {
            let [bucket, key, version, status, a, b, message]: [String; 7] =
                row.try_into().map_err(|row: Vec<String>| {
                    Error::bad_input(format!(
                        "Batch Operations report: {} columns where the schema has 7: {row:?}",
                        row.len()
                    ))
                })?;
            let status = match status.as_str() {
                "succeeded" => TaskStatus::Succeeded,
                "failed" => TaskStatus::Failed,
                other => {
                    return Err(Error::bad_input(format!(
                        "Batch Operations report: task status {other:?} for {key:?}"
                    )))
                }
            };
            // The HTTP status is the column that is a number; the error code the other.
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            let (http, code) = if numeric(&b) && !numeric(&a) {
                (b, a)
            } else {
                (a, b)
            };
            Ok(TaskResult {
                key: decode_key(&key).unwrap_or(key),
                bucket,
                version_id: Some(version).filter(|v| !v.is_empty()),
                status,
                error_code: Some(code).filter(|c| !c.is_empty()),
                http_status: http.parse().ok(),
                message,
            })
        })
        .collect()
}

/// What a task came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Will fail again as it is (denied, gone, refused): someone must look.
    Failed {
        reason: String,
    },
    /// Throttled, a server error, a timeout, or a task the job never reported: run it again.
    Retry {
        reason: String,
    },
}

/// Error codes a later attempt may get past (S3's retryable codes, and Batch Operations'
/// own `TemporaryFailure`).
const RETRYABLE_CODES: &[&str] = &[
    "TemporaryFailure",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "OperationAborted",
];

/// The verdict on one task.
pub fn decide(task: &TaskResult) -> Verdict {
    if task.status == TaskStatus::Succeeded {
        return Verdict::Done;
    }
    let code = task.error_code.as_deref().unwrap_or("");
    let http = task.http_status;
    let reason = match (code, http) {
        ("", Some(h)) => format!("HTTP {h}: {}", task.message),
        ("", None) => task.message.clone(),
        (c, Some(h)) => format!("{c} (HTTP {h}): {}", task.message),
        (c, None) => format!("{c}: {}", task.message),
    };
    let retryable_http = http.is_some_and(|h| h == 429 || (500..600).contains(&h));
    if RETRYABLE_CODES.contains(&code) || (code != "PermanentFailure" && retryable_http) {
        Verdict::Retry { reason }
    } else {
        Verdict::Failed { reason }
    }
}

/// What a job came to, over its whole manifest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub done: Vec<ManifestEntry>,
    pub failed: Vec<(ManifestEntry, String)>,
    /// To run again (a new job, or the SQS shards): the retryable failures and the manifest's
    /// objects the report does not mention (a job cancelled, or stopped by its failure
    /// threshold, reports only the tasks it ran).
    pub retry: Vec<(ManifestEntry, String)>,
}

impl JobOutcome {
    /// Whether every object of the manifest is done: only then may a restore write its log.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.retry.is_empty()
    }
}

/// The outcome of a job over `manifest`, from every line of its result files. A task reported
/// twice (both files, or a retried task) counts as done if any report says so.
pub fn outcome(manifest: &[ManifestEntry], results: &[TaskResult]) -> JobOutcome {
    let id = |bucket: &str, key: &str, version: Option<&str>| {
        (
            bucket.to_string(),
            key.to_string(),
            version.map(str::to_string),
        )
    };
    let done: HashSet<_> = results
        .iter()
        .filter(|r| r.status == TaskStatus::Succeeded)
        .map(|r| id(&r.bucket, &r.key, r.version_id.as_deref()))
        .collect();
    let mut verdicts = std::collections::HashMap::new();
    for r in results.iter().filter(|r| r.status == TaskStatus::Failed) {
        verdicts.insert(id(&r.bucket, &r.key, r.version_id.as_deref()), decide(r));
    }
    let mut out = JobOutcome::default();
    for entry in manifest {
        let key = id(&entry.bucket, &entry.key, entry.version_id.as_deref());
        if done.contains(&key) {
            out.done.push(entry.clone());
            continue;
        }
        match verdicts.get(&key) {
            Some(Verdict::Failed { reason }) => out.failed.push((entry.clone(), reason.clone())),
            Some(Verdict::Retry { reason }) => out.retry.push((entry.clone(), reason.clone())),
            Some(Verdict::Done) | None => out
                .retry
                .push((entry.clone(), "not in the completion report".into())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/batch-operations/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The documentation's example `manifest.json`, as published.
    #[test]
    fn reads_the_documented_report_manifest() {
        let m = ReportManifest::parse(&fixture("report-manifest.json")).unwrap();
        assert_eq!(m.results.len(), 2);
        assert_eq!(m.results[0].task_execution_status, "succeeded");
        assert_eq!(m.results[1].task_execution_status, "failed");
        assert_eq!(m.results[1].bucket, "my-job-reports");
        assert!(m.results[1]
            .key
            .ends_with("b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv"));
        assert_eq!(
            m.results[1].md5_checksum,
            "22ee037f3515975f7719699e5c416eaa"
        );
        assert_eq!(
            m.report_schema,
            "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
        );
        let other = fixture("report-manifest.json").replace("Report_CSV_20180820", "Report_X");
        assert!(ReportManifest::parse(&other).is_err());
    }

    /// The documentation's example failed-task lines (a Lambda task; HTTP status before the
    /// error code) and copy failures in the schema's order.
    #[test]
    fn reads_result_files_in_either_column_order() {
        let rows = parse_report_csv(&fixture("report-results-failed.csv")).unwrap();
        let got: Vec<(&str, Option<&str>, Option<u16>, Verdict)> = rows
            .iter()
            .map(|r| {
                (
                    r.key.as_str(),
                    r.error_code.as_deref(),
                    r.http_status,
                    decide(r),
                )
            })
            .collect();
        let failed = |s: &str| Verdict::Failed { reason: s.into() };
        let retry = |s: &str| Verdict::Retry { reason: s.into() };
        assert_eq!(
            got,
            vec![
                (
                    "image_14975",
                    Some("PermanentFailure"),
                    Some(200),
                    failed("PermanentFailure (HTTP 200): Lambda returned function error: {\"errorMessage\":\"2019-04-05T17:35:21.155Z 2845ca0d-38d9-4c4b-abcf-379dc749c452 Task timed out after 3.00 seconds\"}")
                ),
                (
                    "image_15897",
                    Some("TemporaryFailure"),
                    Some(200),
                    retry("TemporaryFailure (HTTP 200): Lambda returned function error: {\"errorMessage\":\"2019-04-05T17:35:21.155Z 2845ca0d-38d9-4c4b-abcf-379dc749c452 Task timed out after 3.00 seconds\"}")
                ),
                (
                    "source-bucket/t/part=a b/1.parquet",
                    Some("AccessDenied"),
                    Some(403),
                    failed("AccessDenied (HTTP 403): Access Denied")
                ),
                (
                    "source-bucket/t/2.parquet",
                    Some("SlowDown"),
                    Some(503),
                    retry("SlowDown (HTTP 503): Please reduce your request rate.")
                ),
                (
                    "source-bucket/t/3.parquet",
                    Some("NoSuchKey"),
                    Some(404),
                    failed("NoSuchKey (HTTP 404): The specified key does not exist.")
                ),
            ]
        );
        assert_eq!(
            rows[2].version_id.as_deref(),
            Some("PZ9ibn9D5lP6p298B7S9_ceqx1n5EJ0p")
        );
        let ok = parse_report_csv(&fixture("report-results-succeeded.csv")).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|r| decide(r) == Verdict::Done));
        assert_eq!(ok[1].key, "source-bucket/t/x+y=1%2F/é.parquet");
    }

    #[test]
    fn verdicts() {
        let task = |code: &str, http: Option<u16>| TaskResult {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            status: TaskStatus::Failed,
            error_code: Some(code.to_string()).filter(|c| !c.is_empty()),
            http_status: http,
            message: "m".into(),
        };
        let cases: &[(&str, Option<u16>, bool)] = &[
            // (error code, HTTP status, retry?)
            ("TemporaryFailure", Some(200), true),
            ("PermanentFailure", Some(200), false),
            ("PermanentFailure", Some(500), false),
            ("SlowDown", Some(503), true),
            ("InternalError", Some(500), true),
            ("RequestTimeout", Some(400), true),
            ("", Some(502), true),
            ("", Some(429), true),
            ("AccessDenied", Some(403), false),
            ("NoSuchKey", Some(404), false),
            ("PreconditionFailed", Some(412), false),
            ("InvalidObjectState", Some(403), false),
            ("", None, false),
        ];
        for (code, http, retry) in cases {
            let verdict = decide(&task(code, *http));
            assert_eq!(
                matches!(verdict, Verdict::Retry { .. }),
                *retry,
                "{code} {http:?}: {verdict:?}"
            );
            assert_ne!(verdict, Verdict::Done);
        }
        let mut ok = task("", Some(200));
        ok.status = TaskStatus::Succeeded;
        assert_eq!(decide(&ok), Verdict::Done);
    }

    #[test]
    fn refuses_rows_it_cannot_read() {
        for text in [
            "b,k,,succeeded,200\n",
            "b,k,,pending,200,,\n",
            "b,k,,succeeded,200,,,extra\n",
        ] {
            assert!(parse_report_csv(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn job_outcome_over_the_manifest() {
        let entry = |k: &str| ManifestEntry {
            bucket: "b".into(),
            key: k.into(),
            version_id: None,
        };
        let result = |k: &str, status: TaskStatus, code: &str, http: u16| TaskResult {
            bucket: "b".into(),
            key: k.into(),
            version_id: None,
            status,
            error_code: Some(code.to_string()).filter(|c| !c.is_empty()),
            http_status: Some(http),
            message: "m".into(),
        };
        use TaskStatus::*;
        let manifest = [
            entry("done"),
            entry("denied"),
            entry("slow"),
            entry("unreported"),
            entry("retried"),
        ];
        let results = [
            result("done", Succeeded, "", 200),
            result("denied", Failed, "AccessDenied", 403),
            result("slow", Failed, "SlowDown", 503),
            result("retried", Failed, "SlowDown", 503),
            result("retried", Succeeded, "", 200),
            result("not-in-manifest", Succeeded, "", 200),
        ];
        let out = outcome(&manifest, &results);
        let keys = |v: &[(ManifestEntry, String)]| {
            v.iter().map(|(e, _)| e.key.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            out.done.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["done", "retried"]
        );
        assert_eq!(keys(&out.failed), ["denied"]);
        assert_eq!(keys(&out.retry), ["slow", "unreported"]);
        assert_eq!(out.retry[1].1, "not in the completion report");
        assert!(!out.complete());
        let all_done = outcome(&manifest[..1], &results);
        assert!(all_done.complete());
    }
}
