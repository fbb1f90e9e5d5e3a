//! The `CreateJob` request of a Batch Operations copy job (operation `S3PutObjectCopy`).
//!
//! Typed structs with the S3 Control API's documented member names (see the module
//! documentation for why not `aws-sdk-s3control`). Serialized, a [`CreateJobRequest`] is the
//! JSON `aws s3control create-job --cli-input-json` takes; the REST API's XML uses the same
//! element names.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest format written by [`super::manifest::write_manifest`].
pub const MANIFEST_FORMAT: &str = "S3BatchOperations_CSV_20180820";
/// The only completion report format.
pub const REPORT_FORMAT: &str = "Report_CSV_20180820";

/// Where the manifest was written: the job refuses to start unless its ETag matches, so a
/// manifest overwritten between the write and the job is never run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestObject {
    pub bucket: String,
    pub key: String,
    /// As PutObject returned it (surrounding quotes are dropped).
    pub etag: String,
    pub version_id: Option<String>,
}

/// What Lifeboat asks of one copy job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyJob {
    /// The account that runs the job (`x-amz-account-id`).
    pub account_id: String,
    /// The role Batch Operations assumes to read the sources and write the targets.
    pub role_arn: String,
    pub manifest: ManifestObject,
    /// Whether the manifest's lines carry version IDs (as `write_manifest` returned).
    pub manifest_has_versions: bool,
    pub target_bucket: String,
    /// Batch copies keep each source key; this is put in front of it (see
    /// [`target_key_prefix`]). `None` keeps the keys as they are.
    pub target_key_prefix: Option<String>,
    /// Where the completion report goes (`<prefix>/job-<id>/...`).
    pub report_bucket: String,
    pub report_prefix: String,
    /// Higher runs first; 0..=2147483647.
    pub priority: i32,
    pub storage_class: Option<String>,
    pub kms_key_id: Option<String>,
    /// User metadata for every copy (`MetadataDirective: REPLACE`); `None` keeps each source
    /// object's metadata (`COPY`).
    pub new_metadata: Option<BTreeMap<String, String>>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateJobRequest {
    pub account_id: String,
    pub confirmation_required: bool,
    pub operation: JobOperation,
    pub report: JobReport,
    pub client_request_token: String,
    pub manifest: JobManifest,
    pub description: String,
    pub priority: i32,
    pub role_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOperation {
    #[serde(rename = "S3PutObjectCopy")]
    pub s3_put_object_copy: S3CopyObjectOperation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3CopyObjectOperation {
    /// The target bucket's ARN.
    pub target_resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_prefix: Option<String>,
    pub metadata_directive: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_metadata: Option<S3ObjectMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(
        rename = "SSEAwsKmsKeyId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sse_aws_kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3ObjectMetadata {
    pub user_metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobReport {
    /// The report bucket's ARN.
    pub bucket: String,
    pub enabled: bool,
    pub format: String,
    pub prefix: String,
    /// `AllTasks`: the done tasks are listed too, so that a restore can prove every object of a
    /// shard copied before it writes the log.
    pub report_scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobManifest {
    pub spec: JobManifestSpec,
    pub location: JobManifestLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobManifestSpec {
    pub format: String,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobManifestLocation {
    pub object_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
    #[serde(rename = "ETag")]
    pub etag: String,
}

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

impl CopyJob {
    /// The request, after checking what the service would refuse.
    pub fn request(&self) -> Result<CreateJobRequest> {
        self.validate()?;
        let m = &self.manifest;
        Ok(CreateJobRequest {
            account_id: self.account_id.clone(),
            confirmation_required: false,
            operation: JobOperation {
                s3_put_object_copy: S3CopyObjectOperation {
                    target_resource: bucket_arn(&self.target_bucket),
                    target_key_prefix: self.target_key_prefix.clone(),
                    metadata_directive: if self.new_metadata.is_some() {
                        "REPLACE"
                    } else {
                        "COPY"
                    }
                    .into(),
                    new_object_metadata: self
                        .new_metadata
                        .clone()
                        .map(|user_metadata| S3ObjectMetadata { user_metadata }),
                    storage_class: self.storage_class.clone(),
                    sse_aws_kms_key_id: self.kms_key_id.clone(),
                },
            },
            report: JobReport {
                bucket: bucket_arn(&self.report_bucket),
                enabled: true,
                format: REPORT_FORMAT.into(),
                prefix: self.report_prefix.trim_end_matches('/').into(),
                report_scope: "AllTasks".into(),
            },
            client_request_token: self.client_request_token(),
            manifest: JobManifest {
                spec: JobManifestSpec {
                    format: MANIFEST_FORMAT.into(),
                    fields: super::manifest::fields(self.manifest_has_versions)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                },
                location: JobManifestLocation {
                    object_arn: format!("arn:aws:s3:::{}/{}", m.bucket, m.key),
                    object_version_id: m.version_id.clone(),
                    etag: m.etag.trim_matches('"').into(),
                },
            },
            description: self.description.clone(),
            priority: self.priority,
            role_arn: self.role_arn.clone(),
        })
    }

    /// The idempotency token: the same manifest content copied to the same place gives the
    /// same token, so a CreateJob retried after a lost answer (or by a second invocation)
    /// returns the job already created instead of starting a second one. 32 hex characters
    /// (the service takes up to 64).
    pub fn client_request_token(&self) -> String {
        let m = &self.manifest;
        let mut hash = Md5::new();
        for part in [
            m.bucket.as_str(),
            m.key.as_str(),
            m.etag.trim_matches('"'),
            m.version_id.as_deref().unwrap_or(""),
            self.target_bucket.as_str(),
            self.target_key_prefix.as_deref().unwrap_or(""),
        ] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::bad_input(format!("Batch Operations job: {what}")));
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("account ID {:?} is not 12 digits", self.account_id));
        }
        let role_ok = self
            .role_arn
            .strip_prefix("arn:")
            .and_then(|rest| rest.split_once(":iam::"))
            .and_then(|(_, rest)| rest.split_once(":role/"))
            .is_some_and(|(account, name)| account.len() == 12 && !name.is_empty());
        if !role_ok || self.role_arn.len() > 2048 {
            return bad(format!("{:?} is not an IAM role ARN", self.role_arn));
        }
        if self.priority < 0 {
            return bad(format!("priority {} is below 0", self.priority));
        }
        if self.description.is_empty() || self.description.chars().count() > 256 {
            return bad("the description must be 1 to 256 characters".into());
        }
        if self.manifest.etag.trim_matches('"').is_empty() {
            return bad("the manifest's ETag is required".into());
        }
        if self
            .target_key_prefix
            .as_deref()
            .is_some_and(|p| p.is_empty() || p.ends_with('/'))
        {
            return bad("a target key prefix is a folder name without a trailing '/'".into());
        }
        Ok(())
    }
}

/// The `TargetKeyPrefix` that copies each source key onto its wanted target key, if one does.
///
/// A batch copy keeps the source key and can only put a folder in front of it: with
/// `TargetKeyPrefix` `P`, `k` is copied to `P/k` (the API reference's example: prefix `Folder1`
/// copies into the folder `Folder1`). `Some(None)`: the keys stay as they are;
/// `Some(Some(P))`: one prefix for all; `None`: no single prefix does it, so the copy needs a
/// per-object rename (the `LambdaInvoke` operation with a function that copies, or the SQS
/// shards). A backfill into the backup layout (`t/x` to `<bucket>/t/x`) is expressible; a
/// restore out of it (`<bucket>/t/x` to `t/x`) is not.
pub fn target_key_prefix(pairs: &[(&str, &str)]) -> Option<Option<String>> {
    let mut found: Option<Option<String>> = None;
    for (source, target) in pairs {
        let this = if source == target {
            None
        } else {
            let prefix = target.strip_suffix(source)?.strip_suffix('/')?;
            if prefix.is_empty() {
                return None;
            }
            Some(prefix.to_string())
        };
        match &found {
            None => found = Some(this),
            Some(prefix) if *prefix == this => {}
            Some(_) => return None,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named change to a job, for the table-driven tests.
    type Change = (&'static str, fn(&mut CopyJob));
    /// (name, source and target keys, the prefix expected).
    type PrefixCase = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<Option<&'static str>>,
    );

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/batch-operations/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn job() -> CopyJob {
        CopyJob {
            account_id: "111122223333".into(),
            role_arn: "arn:aws:iam::111122223333:role/lifeboat-batch-copy".into(),
            manifest: ManifestObject {
                bucket: "backup-bucket".into(),
                key: "_lifeboat/batch/backfill-1/manifest.csv".into(),
                etag: "\"60e460c9d1046e73f7dde5043ac3ae85\"".into(),
                version_id: Some("3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()),
            },
            manifest_has_versions: true,
            target_bucket: "backup-bucket".into(),
            target_key_prefix: Some("source-bucket".into()),
            report_bucket: "backup-bucket".into(),
            report_prefix: "_lifeboat/batch/backfill-1/report/".into(),
            priority: 10,
            storage_class: Some("STANDARD_IA".into()),
            kms_key_id: None,
            new_metadata: None,
            description: "lifeboat backfill s3://source-bucket/t".into(),
        }
    }

    /// The request is the documented CreateJob shape, member for member: the fixture was
    /// written from the S3 Control API reference (CreateJob, JobOperation,
    /// S3CopyObjectOperation, JobReport, JobManifest) and round-trips through the types.
    #[test]
    fn copy_job_request_is_the_documented_shape() {
        let request = job().request().unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&fixture("create-job-copy.json")).unwrap();
        assert_eq!(serde_json::to_value(&request).unwrap(), expected);
        let parsed: CreateJobRequest = serde_json::from_value(expected).unwrap();
        assert_eq!(parsed, request);
    }

    #[test]
    fn metadata_replaces_or_copies() {
        let mut j = job();
        assert_eq!(
            j.request()
                .unwrap()
                .operation
                .s3_put_object_copy
                .metadata_directive,
            "COPY"
        );
        j.new_metadata = Some([("lifeboat-restore".to_string(), "r1".to_string())].into());
        let op = j.request().unwrap().operation.s3_put_object_copy;
        assert_eq!(op.metadata_directive, "REPLACE");
        assert_eq!(
            op.new_object_metadata.unwrap().user_metadata["lifeboat-restore"],
            "r1"
        );
    }

    #[test]
    fn token_is_stable_and_follows_the_manifest_and_target() {
        let base = job();
        let token = base.client_request_token();
        assert_eq!(token.len(), 32);
        let mut same = base.clone();
        same.priority = 99;
        same.description = "another description".into();
        same.manifest.etag = "60e460c9d1046e73f7dde5043ac3ae85".into(); // quotes or not
        assert_eq!(same.client_request_token(), token);
        let changes: [Change; 4] = [
            ("manifest content", |j| j.manifest.etag = "ffff".into()),
            ("manifest key", |j| j.manifest.key.push('2')),
            ("target bucket", |j| j.target_bucket = "other".into()),
            ("target prefix", |j| j.target_key_prefix = None),
        ];
        for (name, change) in changes {
            let mut j = base.clone();
            change(&mut j);
            assert_ne!(j.client_request_token(), token, "{name}");
        }
    }

    #[test]
    fn refuses_what_the_service_would() {
        let cases: [Change; 8] = [
            ("short account", |j| j.account_id = "1234".into()),
            ("not a role", |j| {
                j.role_arn = "arn:aws:iam::111122223333:user/x".into()
            }),
            ("role of no account", |j| {
                j.role_arn = "arn:aws:iam:::role/x".into()
            }),
            ("negative priority", |j| j.priority = -1),
            ("no description", |j| j.description.clear()),
            ("long description", |j| j.description = "x".repeat(257)),
            ("no etag", |j| j.manifest.etag = "\"\"".into()),
            ("prefix with slash", |j| {
                j.target_key_prefix = Some("a/".into())
            }),
        ];
        for (name, change) in cases {
            let mut j = job();
            change(&mut j);
            assert!(j.request().is_err(), "{name}");
        }
        let mut ok = job();
        ok.role_arn = "arn:aws-cn:iam::111122223333:role/path/r".into();
        assert!(ok.request().is_ok());
    }

    #[test]
    fn target_key_prefix_decisions() {
        let cases: &[PrefixCase] = &[
            ("same keys", &[("t/a", "t/a"), ("t/b", "t/b")], Some(None)),
            (
                "backfill into the default layout",
                &[
                    ("t/a", "source-bucket/t/a"),
                    ("t/b c", "source-bucket/t/b c"),
                ],
                Some(Some("source-bucket")),
            ),
            (
                "backfill into a deeper layout",
                &[("t/a", "backups/source-bucket/t/a")],
                Some(Some("backups/source-bucket")),
            ),
            (
                "restore out of the layout",
                &[("source-bucket/t/a", "t/a")],
                None,
            ),
            (
                "clone under a new table path",
                &[("source-bucket/t/a", "clones/t2/a")],
                None,
            ),
            (
                "two prefixes",
                &[("t/a", "p1/t/a"), ("t/b", "p2/t/b")],
                None,
            ),
            (
                "some same, some prefixed",
                &[("t/a", "t/a"), ("t/b", "p/t/b")],
                None,
            ),
            ("glued without a slash", &[("t/a", "pt/a")], None),
            ("nothing to copy", &[], None),
        ];
        for (name, pairs, expected) in cases {
            assert_eq!(
                target_key_prefix(pairs),
                expected.map(|p| p.map(str::to_string)),
                "{name}"
            );
        }
    }
}
