//! S3 Batch Operations for large copies (restores and backfills of millions of objects): the
//! three documents Lifeboat exchanges with the service, as pure code.
//!
//! - [`manifest`]: the CSV manifest of the objects to copy (`S3BatchOperations_CSV_20180820`:
//!   `bucket,key[,versionId]`, keys URL-encoded).
//! - [`job`]: the `CreateJob` request of a copy job (`S3PutObjectCopy`), with the manifest's
//!   ETag, the completion report, the priority, the role and an idempotency token.
//! - [`report`]: the completion report (its `manifest.json` and the CSV result files), read
//!   into what each task came to: done, failed with a reason, or worth retrying.
//!
//! **What is tested, and against what.** moto has no S3 Control API and no Batch Operations, so
//! nothing here is run against a server: every format is tested against AWS's documented
//! formats and examples, kept as fixtures under `tests/fixtures/batch-operations/` (see
//! `tests/local_aws/GAPS.md`). The `CreateJob` request is built as typed structs serialized to
//! the API's documented member names (the JSON `aws s3control create-job --cli-input-json`
//! takes, the same names as the REST API's XML elements), not with `aws-sdk-s3control`: that
//! crate would add a second large generated SDK to every Lambda binary and to every build on
//! this project's 2-core machines, for a request nothing in Lambda sends yet. Whoever wires the
//! call maps [`job::CreateJobRequest`] field for field onto the SDK's builder.

pub mod job;
pub mod manifest;
pub mod report;

pub use job::{CopyJob, CreateJobRequest};
pub use manifest::{write_manifest, ManifestEntry};
pub use report::{decide, parse_report_csv, ReportManifest, TaskResult, TaskStatus, Verdict};
