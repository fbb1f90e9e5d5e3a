//! The verifier's comparison of the source with the backup, as plain functions of the two
//! listings: which source objects the backup lacks (or holds with another size), which are
//! too young to count, and which log files differ.
//!
//! Invariants:
//! - only objects the configuration selects are compared;
//! - a write-once log file whose size differs from the backup's is corrupted in the source;
//!   one whose size matches but whose ETag differs is *undecided* (a multipart upload in the
//!   source, or another content): the caller resolves it from the backup copy's metadata;
//! - `_last_checkpoint` is rewritten in place by design: the backup should hold its latest
//!   content, so another ETag means "missing", never "corrupted".

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::keys::{is_immutable_log_key, S3Location};
use crate::listing::TableListing;
use crate::store::ObjectInfo;

use super::queue::Resend;
use super::report::{Finding, FindingKind, Severity};
use super::NAMED_MAX;

/// A source object the backup lacks, and why it counts as lacking.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    /// Relative to the table root.
    pub path: String,
    pub source: ObjectInfo,
    pub reason: &'static str,
}

/// A log file whose source and backup copies may differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Differs {
    /// Relative to the table root.
    pub path: String,
    pub source: ObjectInfo,
    pub backup: ObjectInfo,
}

/// What the comparison found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Comparison {
    /// Missing from the backup past the grace period, sorted by path.
    pub missing: Vec<Missing>,
    /// Missing from the backup, but younger than the grace period.
    pub pending: u64,
    /// Log files whose content differs from the backup's.
    pub corrupted: Vec<Differs>,
    /// Log files of the same size whose ETags differ: to be resolved by the caller.
    pub undecided: Vec<Differs>,
}

/// Compares every selected source object with the backup's listing; objects last modified
/// after `cutoff` are pending rather than missing.
pub fn compare(
    source: &TableListing,
    backup: &TableListing,
    selects: impl Fn(&str) -> bool,
    cutoff: DateTime<Utc>,
) -> Comparison {
    let mut out = Comparison::default();
    let mut key = String::new();
    for (relative, object) in source.iter() {
        key.clear();
        key.push_str(source.prefix());
        key.push_str(relative);
        if !selects(&key) {
            continue;
        }
        let reason = match backup.get(relative) {
            None => Some("missing"),
            Some(backed_up) if is_immutable_log_key(relative) => {
                let both = || Differs {
                    path: relative.to_string(),
                    source: source.object(relative, object),
                    backup: backup.object(relative, backed_up),
                };
                if backed_up.size != object.size {
                    out.corrupted.push(both());
                } else if backed_up.etag != object.etag {
                    out.undecided.push(both());
                }
                None
            }
            Some(backed_up) if backed_up.size != object.size => Some("size differs"),
            Some(backed_up)
                if relative.ends_with("_delta_log/_last_checkpoint")
                    && backed_up.etag != object.etag =>
            {
                Some("older content")
            }
            Some(_) => None,
        };
        let Some(reason) = reason else { continue };
        if object.last_modified().is_some_and(|t| t > cutoff) {
            out.pending += 1;
        } else {
            out.missing.push(Missing {
                path: relative.to_string(),
                source: source.object(relative, object),
                reason,
            });
        }
    }
    out.missing.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

impl Comparison {
    /// The findings: corrupted log files, pending and missing objects. `healing` says what
    /// becomes of the missing ones (sent to the queue, or the command that copies them).
    pub fn findings(&self, table: &S3Location, grace_seconds: u64, healing: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        if !self.corrupted.is_empty() {
            let mut corrupted: Vec<&Differs> = self.corrupted.iter().collect();
            corrupted.sort_by(|a, b| a.path.cmp(&b.path));
            let files: Vec<Value> = corrupted
                .iter()
                .take(NAMED_MAX)
                .map(|d| {
                    json!({"path": d.path, "source_size": d.source.size, "backup_size": d.backup.size,
                           "source_etag": d.source.etag, "backup_etag": d.backup.etag})
                })
                .collect();
            let names: Vec<&str> = corrupted.iter().take(3).map(|d| d.path.as_str()).collect();
            findings.push(
                Finding::new(
                    FindingKind::LogCorrupted,
                    Severity::Critical,
                    format!(
                        "{} Delta log file(s) in the source differ from the backup ({}{}): the source's log was overwritten; the backup keeps the original, never re-copied: `lifeboat restore {table} --mode repair` puts it back",
                        corrupted.len(),
                        names.join(", "),
                        if corrupted.len() > 3 { ", ..." } else { "" },
                    ),
                )
                .with("count", corrupted.len())
                .with("files", files),
            );
        }
        if self.pending > 0 {
            findings.push(
                Finding::new(
                    FindingKind::ReplicationPending,
                    Severity::Info,
                    format!(
                        "{} source object(s) younger than the {grace_seconds} s grace period are not in the backup yet",
                        self.pending
                    ),
                )
                .with("count", self.pending),
            );
        }
        if !self.missing.is_empty() {
            let bytes: u64 = self.missing.iter().map(|m| m.source.size).sum();
            let log_files = self
                .missing
                .iter()
                .filter(|m| m.path.starts_with("_delta_log/"))
                .count();
            let keys: Vec<Value> = self
                .missing
                .iter()
                .take(NAMED_MAX)
                .map(|m| json!({"path": m.path, "size": m.source.size, "reason": m.reason}))
                .collect();
            findings.push(
                Finding::new(
                    FindingKind::MissingInBackup,
                    Severity::Warning,
                    format!(
                        "{} source object(s) ({bytes} bytes, {log_files} of them log files) older than the {grace_seconds} s grace period are missing from the backup or differ in size; {healing}",
                        self.missing.len(),
                    ),
                )
                .with("count", self.missing.len())
                .with("bytes", bytes)
                .with("log_files", log_files)
                .with("objects", keys),
            );
        }
        findings
    }

    /// The missing objects, as the notifications to send to the replicator's queue.
    pub fn resend(&self, bucket: &str) -> Vec<Resend> {
        self.missing
            .iter()
            .map(|m| Resend {
                bucket: bucket.to_string(),
                object: m.source.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;

    use super::*;

    const OLD: i64 = 1_700_000_000;
    const NEW: i64 = 1_700_100_000;

    fn listing(prefix: &str, objects: &[(&str, u64, &str, i64)]) -> TableListing {
        TableListing::from_objects(
            prefix,
            objects.iter().map(|(key, size, etag, time)| ObjectInfo {
                key: format!("{prefix}{key}"),
                size: *size,
                etag: etag.to_string(),
                version_id: None,
                last_modified: Utc.timestamp_opt(*time, 0).single(),
                metadata: HashMap::new(),
            }),
        )
        .unwrap()
    }

    const C0: &str = "_delta_log/00000000000000000000.json";
    const C1: &str = "_delta_log/00000000000000000001.json";
    const LAST: &str = "_delta_log/_last_checkpoint";
    const E1: &str = "0123456789abcdef0123456789abcdef";
    const E2: &str = "fedcba9876543210fedcba9876543210";

    /// (source objects, backup objects) → (missing paths with reasons, pending, corrupted,
    /// undecided).
    #[test]
    fn comparison_table() {
        type Case = (
            &'static str,
            Vec<(&'static str, u64, &'static str, i64)>,
            Vec<(&'static str, u64, &'static str, i64)>,
            Vec<(&'static str, &'static str)>,
            u64,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "identical",
                vec![(C0, 10, E1, OLD), ("part-0.parquet", 5, E1, OLD)],
                vec![(C0, 10, E1, OLD), ("part-0.parquet", 5, E1, OLD)],
                vec![],
                0,
                vec![],
                vec![],
            ),
            (
                "old object missing",
                vec![("part-0.parquet", 5, E1, OLD)],
                vec![],
                vec![("part-0.parquet", "missing")],
                0,
                vec![],
                vec![],
            ),
            (
                "young object pending",
                vec![("part-0.parquet", 5, E1, NEW)],
                vec![],
                vec![],
                1,
                vec![],
                vec![],
            ),
            (
                "data file of another size",
                vec![("part-0.parquet", 6, E2, OLD)],
                vec![("part-0.parquet", 5, E1, OLD)],
                vec![("part-0.parquet", "size differs")],
                0,
                vec![],
                vec![],
            ),
            (
                "commit of another size",
                vec![(C1, 11, E2, OLD)],
                vec![(C1, 10, E1, OLD)],
                vec![],
                0,
                vec![C1],
                vec![],
            ),
            (
                "commit, same size, other ETag",
                vec![(C1, 10, E2, OLD)],
                vec![(C1, 10, E1, OLD)],
                vec![],
                0,
                vec![],
                vec![C1],
            ),
            (
                "_last_checkpoint rewritten",
                vec![(LAST, 10, E2, OLD)],
                vec![(LAST, 10, E1, OLD)],
                vec![(LAST, "older content")],
                0,
                vec![],
                vec![],
            ),
            (
                "not selected",
                vec![("_temporary/x", 5, E1, OLD)],
                vec![],
                vec![],
                0,
                vec![],
                vec![],
            ),
            (
                "backup holds more",
                vec![],
                vec![(C0, 10, E1, OLD)],
                vec![],
                0,
                vec![],
                vec![],
            ),
        ];
        let cutoff = Utc.timestamp_opt(OLD + 10, 0).unwrap();
        for (name, source, backup, missing, pending, corrupted, undecided) in cases {
            let source = listing("t/", &source);
            let backup = listing("src/t/", &backup);
            let got = compare(&source, &backup, |k| !k.contains("_temporary"), cutoff);
            let got_missing: Vec<(&str, &str)> = got
                .missing
                .iter()
                .map(|m| (m.path.as_str(), m.reason))
                .collect();
            assert_eq!(got_missing, missing, "{name}: missing");
            assert_eq!(got.pending, pending, "{name}: pending");
            let paths = |d: &[Differs]| d.iter().map(|d| d.path.clone()).collect::<Vec<_>>();
            assert_eq!(paths(&got.corrupted), corrupted, "{name}: corrupted");
            assert_eq!(paths(&got.undecided), undecided, "{name}: undecided");
        }
    }

    #[test]
    fn findings_name_what_was_found() {
        let source = listing(
            "t/",
            &[
                (C1, 11, E2, OLD),
                ("a.parquet", 5, E1, OLD),
                ("b.parquet", 5, E1, NEW),
            ],
        );
        let backup = listing("src/t/", &[(C1, 10, E1, OLD)]);
        let cutoff = Utc.timestamp_opt(OLD + 10, 0).unwrap();
        let comparison = compare(&source, &backup, |_| true, cutoff);
        let table = S3Location::parse("s3://src/t").unwrap();
        let findings = comparison.findings(&table, 900, "sent to the replicator's queue");
        let kinds: Vec<(FindingKind, Severity)> =
            findings.iter().map(|f| (f.kind, f.severity)).collect();
        assert_eq!(
            kinds,
            [
                (FindingKind::LogCorrupted, Severity::Critical),
                (FindingKind::ReplicationPending, Severity::Info),
                (FindingKind::MissingInBackup, Severity::Warning),
            ]
        );
        assert!(
            findings[0].detail.contains("--mode repair"),
            "{}",
            findings[0].detail
        );
        assert_eq!(findings[2].data["count"], 1);
        assert_eq!(findings[2].data["objects"][0]["path"], "a.parquet");
        let resend = comparison.resend("src");
        assert_eq!(resend.len(), 1);
        assert_eq!(resend[0].object.key, "t/a.parquet");
    }
}
