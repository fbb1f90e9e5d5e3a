//! The verifier's comparison of the source with the backup, as plain functions of the two
//! listings: which source objects the backup lacks (or holds with another size), which are
//! too young to count, and which log files differ.
//!
//! Invariants:
//! - only objects the configuration selects are compared;
//! - every object of the table is write-once: one whose size differs from the backup's copy
//!   holds other content (a log file: the log is corrupted; any other file: the source object
//!   was overwritten); one of the same size that was not modified after its copy was made is
//!   the same ([`unchanged_since_copy`]: no request), unless the replicator kept another
//!   content of that key aside ([`KeptAside`]: listings give whole seconds, so a rewrite in
//!   the second of the copy looks untouched); any other is *undecided* (a rewrite of the same
//!   bytes, or another content of the same length), and the caller resolves it with
//!   [`crate::identity`];
//! - `_last_checkpoint` is rewritten in place by design: the backup should hold its latest
//!   content, so a later rewrite means "missing", never "corrupted".

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::identity::unchanged_since_copy;
use crate::keys::S3Location;
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
    /// Objects whose content differs from the backup's authoritative copy.
    pub corrupted: Vec<Differs>,
    /// Objects of the same size rewritten after their copy: to be resolved by the caller.
    pub undecided: Vec<Differs>,
}

/// The table's files whose key the replicator saw written again with another content (it kept
/// that content aside under `_lifeboat/conflicts/`): their listing times prove nothing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeptAside(BTreeSet<String>);

impl KeptAside {
    /// From the table's conflict records, listed under `conflicts_prefix`
    /// (`<prefix><path>.<tag>`, [`crate::layout::Layout::conflict_key`]).
    pub fn new(conflicts_prefix: &str, conflicts: &[ObjectInfo]) -> Self {
        KeptAside(
            conflicts
                .iter()
                .filter_map(|c| c.key.strip_prefix(conflicts_prefix))
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether another content of `path` (relative to the table root) was kept aside. The
    /// record names do not say where the path ends and the tag begins, so a path that is a
    /// record's name cut at a dot (`part-1` beside `part-1.parquet.<tag>`) counts too: it is
    /// compared, which costs two HEADs, never a false finding.
    pub fn contains(&self, path: &str) -> bool {
        let name = format!("{path}.");
        self.0
            .range(name.clone()..)
            .next()
            .is_some_and(|kept| kept.starts_with(&name))
    }
}

/// Compares every selected source object with the backup's listing; objects last modified
/// after `cutoff` are pending rather than missing.
pub fn compare(
    source: &TableListing,
    backup: &TableListing,
    kept_aside: &KeptAside,
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
            Some(copy)
                if relative.ends_with("_delta_log/_last_checkpoint")
                    && copy.size != object.size =>
            {
                Some("older content")
            }
            Some(copy) => {
                let untouched = !kept_aside.contains(relative)
                    && unchanged_since_copy(
                        object.size,
                        object.last_modified(),
                        copy.size,
                        copy.last_modified(),
                    );
                if !untouched && copy.etag != object.etag {
                    let both = Differs {
                        path: relative.to_string(),
                        source: source.object(relative, object),
                        backup: backup.object(relative, copy),
                    };
                    if copy.size != object.size {
                        out.corrupted.push(both);
                    } else {
                        out.undecided.push(both);
                    }
                }
                None
            }
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
    /// A `_last_checkpoint` the source rewrote since its copy is not corruption (it is
    /// rewritten in place by design): the backup lacks its latest content.
    pub fn stale_hints_are_missing(&mut self) {
        let (hints, corrupted): (Vec<Differs>, Vec<Differs>) = std::mem::take(&mut self.corrupted)
            .into_iter()
            .partition(|d| d.path.ends_with("_delta_log/_last_checkpoint"));
        self.corrupted = corrupted;
        self.missing.extend(hints.into_iter().map(|d| Missing {
            path: d.path,
            source: d.source,
            reason: "older content",
        }));
        self.missing.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The findings: corrupted log files, pending and missing objects. `healing` says what
    /// becomes of the missing ones (sent to the queue, or the command that copies them).
    /// `needed_now` tells whether the source's current version needs a path.
    pub fn findings(
        &self,
        table: &S3Location,
        grace_seconds: u64,
        healing: &str,
        needed_now: impl Fn(&str) -> bool,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let (log, other): (Vec<&Differs>, Vec<&Differs>) = self
            .corrupted
            .iter()
            .partition(|d| d.path.starts_with("_delta_log/"));
        if !log.is_empty() {
            let names: Vec<&str> = log.iter().take(3).map(|d| d.path.as_str()).collect();
            findings.push(
                Finding::new(
                    FindingKind::LogCorrupted,
                    Severity::Critical,
                    format!(
                        "{} Delta log file(s) in the source differ from the backup ({}{}): the source's log was overwritten; the backup keeps the original, never re-copied: `lifeboat restore {table} --mode repair` puts it back",
                        log.len(),
                        names.join(", "),
                        if log.len() > 3 { ", ..." } else { "" },
                    ),
                )
                .with("count", log.len())
                .with("files", differs_json(&log)),
            );
        }
        if !other.is_empty() {
            let needed: Vec<&&Differs> = other.iter().filter(|d| needed_now(&d.path)).collect();
            let names: Vec<&str> = other.iter().take(3).map(|d| d.path.as_str()).collect();
            findings.push(
                Finding::new(
                    FindingKind::SourceObjectOverwritten,
                    if needed.is_empty() {
                        Severity::Warning
                    } else {
                        Severity::Critical
                    },
                    format!(
                        "{} file(s) of the table in the source hold other bytes than the backup's authoritative copy ({}{}){}; the backup keeps the original: `lifeboat restore {table} --mode repair` puts the original bytes back",
                        other.len(),
                        names.join(", "),
                        if other.len() > 3 { ", ..." } else { "" },
                        if needed.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", {} of them needed by the source's current version: readers get wrong data or fail now",
                                needed.len()
                            )
                        },
                    ),
                )
                .with("count", other.len())
                .with("needed_by_latest", needed.len())
                .with("files", differs_json(&other)),
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
                        "{} source object(s) ({bytes} bytes, {log_files} of them log files) older than the {grace_seconds} s grace period are missing from the backup (or, for _last_checkpoint, rewritten since its copy); {healing}",
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

fn differs_json(differs: &[&Differs]) -> Vec<Value> {
    let mut sorted = differs.to_vec();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    sorted
        .iter()
        .take(NAMED_MAX)
        .map(|d| {
            json!({"path": d.path, "source_size": d.source.size, "backup_size": d.backup.size,
                   "source_etag": d.source.etag, "backup_etag": d.backup.etag})
        })
        .collect()
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
                checksum: None,
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
        const LATER: i64 = OLD + 5;
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
                "KMS: other ETags, untouched since the copy",
                vec![(C0, 10, E1, OLD), ("part-0.parquet", 5, E1, OLD)],
                vec![(C0, 10, E2, OLD + 1), ("part-0.parquet", 5, E2, OLD + 1)],
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
                vec![("part-0.parquet", 6, E2, LATER)],
                vec![("part-0.parquet", 5, E1, OLD)],
                vec![],
                0,
                vec!["part-0.parquet"],
                vec![],
            ),
            (
                "data file rewritten, same size",
                vec![("part-0.parquet", 5, E2, LATER)],
                vec![("part-0.parquet", 5, E1, OLD)],
                vec![],
                0,
                vec![],
                vec!["part-0.parquet"],
            ),
            (
                "data file rewritten with the same ETag",
                vec![("part-0.parquet", 5, E1, LATER)],
                vec![("part-0.parquet", 5, E1, OLD)],
                vec![],
                0,
                vec![],
                vec![],
            ),
            (
                "commit of another size",
                vec![(C1, 11, E2, LATER)],
                vec![(C1, 10, E1, OLD)],
                vec![],
                0,
                vec![C1],
                vec![],
            ),
            (
                "commit rewritten, same size",
                vec![(C1, 10, E2, LATER)],
                vec![(C1, 10, E1, OLD)],
                vec![],
                0,
                vec![],
                vec![C1],
            ),
            (
                "_last_checkpoint rewritten since, same size",
                vec![(LAST, 10, E2, LATER)],
                vec![(LAST, 10, E1, OLD)],
                vec![],
                0,
                vec![],
                vec![LAST],
            ),
            (
                "_last_checkpoint of another size",
                vec![(LAST, 11, E2, LATER)],
                vec![(LAST, 10, E1, OLD)],
                vec![(LAST, "older content")],
                0,
                vec![],
                vec![],
            ),
            (
                "_last_checkpoint as copied",
                vec![(LAST, 10, E2, OLD)],
                vec![(LAST, 10, E1, OLD + 1)],
                vec![],
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
            let got = compare(
                &source,
                &backup,
                &KeptAside::default(),
                |k| !k.contains("_temporary"),
                cutoff,
            );
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
        let later = OLD + 5;
        let source = listing(
            "t/",
            &[
                (C1, 11, E2, later),
                ("a.parquet", 5, E1, OLD),
                ("b.parquet", 5, E1, NEW),
                ("c.parquet", 7, E2, later),
                ("d.parquet", 7, E2, later),
            ],
        );
        let backup = listing(
            "src/t/",
            &[
                (C1, 10, E1, OLD),
                ("c.parquet", 6, E1, OLD),
                ("d.parquet", 6, E1, OLD),
            ],
        );
        let cutoff = Utc.timestamp_opt(OLD + 10, 0).unwrap();
        let comparison = compare(&source, &backup, &KeptAside::default(), |_| true, cutoff);
        let table = S3Location::parse("s3://src/t").unwrap();
        let findings = comparison.findings(&table, 900, "sent to the replicator's queue", |p| {
            p == "d.parquet"
        });
        let kinds: Vec<(FindingKind, Severity)> =
            findings.iter().map(|f| (f.kind, f.severity)).collect();
        assert_eq!(
            kinds,
            [
                (FindingKind::LogCorrupted, Severity::Critical),
                (FindingKind::SourceObjectOverwritten, Severity::Critical),
                (FindingKind::ReplicationPending, Severity::Info),
                (FindingKind::MissingInBackup, Severity::Warning),
            ]
        );
        assert!(
            findings[0].detail.contains("--mode repair"),
            "{}",
            findings[0].detail
        );
        assert_eq!(findings[1].data["count"], 2);
        assert_eq!(findings[1].data["needed_by_latest"], 1);
        assert_eq!(findings[3].data["count"], 1);
        assert_eq!(findings[3].data["objects"][0]["path"], "a.parquet");
        let resend = comparison.resend("src");
        assert_eq!(resend.len(), 1);
        assert_eq!(resend[0].object.key, "t/a.parquet");
        // A rewritten `_last_checkpoint` that differs is missing, not corrupted.
        let mut hints = compare(
            &listing("t/", &[(LAST, 10, E2, later)]),
            &listing("src/t/", &[(LAST, 10, E1, OLD)]),
            &KeptAside::default(),
            |_| true,
            cutoff,
        );
        hints.corrupted = std::mem::take(&mut hints.undecided);
        hints.stale_hints_are_missing();
        assert!(hints.corrupted.is_empty());
        assert_eq!(hints.missing[0].reason, "older content");
        // Overwritten files the current version does not need: a warning.
        let quiet = comparison.findings(&table, 900, "", |_| false);
        assert_eq!(quiet[1].severity, Severity::Warning);
    }

    /// A rewrite in the second of the copy looks untouched in the listings; when the
    /// replicator kept another content of that key aside, the file is compared (undecided).
    #[test]
    fn files_with_content_kept_aside_are_never_taken_as_untouched() {
        let prefix = "_lifeboat/conflicts/src/t/";
        let record = |name: &str| ObjectInfo {
            key: format!("{prefix}{name}"),
            ..ObjectInfo::default()
        };
        let kept = KeptAside::new(
            prefix,
            &[
                record(&format!("{C0}.3HL4kqtJlcpXroDTDmJ.v2")),
                record("part-1.parquet.0123abcd"),
                record("unrelated/other"),
            ],
        );
        for (path, aside) in [
            (C0, true),
            (C1, false),
            ("part-1.parquet", true),
            ("part-1", true), // cut at a dot: compared, harmlessly
            ("part-1.parquet.crc", false),
            ("part-10.parquet", false),
        ] {
            assert_eq!(kept.contains(path), aside, "{path}");
        }
        // The same second, the same size: untouched unless kept aside.
        let source = listing("t/", &[(C0, 10, E2, OLD), (C1, 10, E2, OLD)]);
        let backup = listing("src/t/", &[(C0, 10, E1, OLD), (C1, 10, E1, OLD)]);
        let cutoff = Utc.timestamp_opt(OLD + 10, 0).unwrap();
        let got = compare(&source, &backup, &kept, |_| true, cutoff);
        let undecided: Vec<&str> = got.undecided.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(undecided, [C0]);
        assert!(got.corrupted.is_empty() && got.missing.is_empty());
    }
}
