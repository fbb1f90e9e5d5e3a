//! Findings about the backup itself, from its replayed history alone: log gaps, unreadable
//! commits and checkpoints, files the backup lacks, conflicts the replicator kept aside, and
//! whether any version can be restored at all.

use serde_json::{json, Value};

use crate::history::Problem;
use crate::layout::CONFLICTS_PREFIX;
use crate::ranges::{push_range, ranges_text, VersionRange};
use crate::store::ObjectInfo;

use super::report::{Finding, FindingKind, Severity};
use super::{TableCheck, NAMED_MAX};

impl TableCheck<'_> {
    /// The backup's unrestorable versions, and before them the versions the source still has
    /// that the backup never got.
    pub(super) fn unrestorable_versions(&self) -> Vec<VersionRange> {
        let mut ranges: Vec<VersionRange> = Vec::new();
        let backup_earliest = self.history.versions.first().map(|s| s.version);
        let source_earliest = self.source_log.earliest_version();
        match (source_earliest, backup_earliest) {
            (Some(s), Some(b)) if s < b => ranges.push(VersionRange {
                first: s,
                last: b - 1,
            }),
            (Some(s), None) => ranges.push(VersionRange {
                first: s,
                last: self.source_log.latest_version().unwrap_or(s),
            }),
            _ => {}
        }
        for range in self.history.ranges(false) {
            push_range(&mut ranges, range.first, range.last);
        }
        ranges
    }

    fn latest_restorable(&self) -> bool {
        self.history
            .versions
            .last()
            .is_some_and(|status| status.restorable)
    }

    /// The first restorable version after `v`, if any.
    fn next_restorable_after(&self, v: u64) -> Option<u64> {
        self.history
            .versions
            .iter()
            .find(|s| s.version > v && s.restorable)
            .map(|s| s.version)
    }

    /// Findings about the backup itself: log gaps, unreadable commits and checkpoints, files
    /// the backup lacks.
    pub(super) fn backup_findings(&mut self) {
        let history = self.history;
        let latest = history.latest_version();
        let log = &history.log;
        // Commits the backup lacks inside its own range (with no checkpoint to restart from).
        let mut gaps: Vec<VersionRange> = Vec::new();
        if let (Some(first), Some(last)) = (history.versions.first(), latest) {
            for v in first.version..=last {
                if !log.commits.contains(&v) && !log.checkpoint_complete(v) {
                    push_range(&mut gaps, v, v);
                }
            }
        }
        for gap in gaps {
            let until = self
                .next_restorable_after(gap.last)
                .map(|n| n - 1)
                .or(latest)
                .unwrap_or(gap.last);
            let reaches_latest = Some(until) == latest;
            let in_source = (gap.first..=gap.last)
                .filter(|v| self.source_log.commits.contains(v))
                .count();
            self.findings.push(
                Finding::new(
                    FindingKind::LogGap,
                    if reaches_latest {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "commits {} are missing from the backup's log, so versions {}..{until} cannot be restored{}",
                        VersionRange::new(gap.first, gap.last),
                        gap.first,
                        if in_source > 0 {
                            format!("; the source still has {in_source} of them (see missing_in_backup)")
                        } else {
                            String::new()
                        }
                    ),
                )
                .with("missing_commits", gap)
                .with("unrestorable", VersionRange { first: gap.first, last: until }),
            );
        }
        // Versions the source has below the backup's first (never backed up).
        if let (Some(s), Some(b)) = (
            self.source_log.earliest_version(),
            history.versions.first().map(|s| s.version),
        ) {
            if s < b {
                self.findings.push(
                    Finding::new(
                        FindingKind::LogGap,
                        Severity::Warning,
                        format!(
                            "the backup's log starts at version {b} but the source's at {s}: versions {s}..{} were never backed up (see missing_in_backup)",
                            b - 1
                        ),
                    )
                    .with("missing_commits", VersionRange { first: s, last: b - 1 })
                    .with("unrestorable", VersionRange { first: s, last: b - 1 }),
                );
            }
        }

        let mut missing_files = Vec::new();
        let mut external = Vec::new();
        for problem in &history.problems {
            match problem {
                Problem::LogGap { .. } => {} // reported from the log itself above
                Problem::UnreadableCommit { version, reason } => {
                    let until = self
                        .next_restorable_after(*version)
                        .map(|n| n - 1)
                        .or(latest)
                        .unwrap_or(*version);
                    self.findings.push(
                        Finding::new(
                            FindingKind::UnreadableCommit,
                            if Some(until) == latest && !self.latest_restorable() {
                                Severity::Critical
                            } else {
                                Severity::Warning
                            },
                            format!("commit {version} in the backup cannot be read: {reason}"),
                        )
                        .with("version", version),
                    );
                }
                Problem::BadCheckpoint { version, reason } => self.findings.push(
                    Finding::new(
                        FindingKind::BadCheckpoint,
                        Severity::Warning,
                        format!("checkpoint {version} in the backup cannot be used: {reason}"),
                    )
                    .with("version", version),
                ),
                Problem::MissingFile {
                    path,
                    expected_size,
                    found_size,
                    first,
                    last,
                } => missing_files.push((path, *expected_size, *found_size, *first, *last)),
                Problem::ExternalFile { path, first, last } => external.push(
                    json!({"path": path, "versions": VersionRange { first: *first, last: *last }}),
                ),
            }
        }
        if !missing_files.is_empty() {
            missing_files.sort();
            let mut versions = Vec::new();
            let mut sorted: Vec<(u64, u64)> = missing_files.iter().map(|m| (m.3, m.4)).collect();
            sorted.sort();
            for (first, last) in sorted {
                push_range(&mut versions, first, last);
            }
            let affects_latest = missing_files.iter().any(|m| Some(m.4) == latest);
            let in_source = missing_files
                .iter()
                .filter(|m| self.source.get(m.0).is_some())
                .count();
            let files: Vec<Value> = missing_files
                .iter()
                .take(NAMED_MAX)
                .map(|(path, expected, found, first, last)| {
                    json!({"path": path, "expected_size": expected, "found_size": found,
                           "versions": VersionRange { first: *first, last: *last }})
                })
                .collect();
            self.findings.push(
                Finding::new(
                    FindingKind::MissingFilesInBackup,
                    if affects_latest {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "{} data or deletion-vector file(s) that versions {} need are missing from the backup {} or have the wrong size ({}{}); {in_source} of them are still in the source",
                        missing_files.len(),
                        ranges_text(&versions),
                        self.backup,
                        missing_files.iter().take(3).map(|m| m.0.as_str()).collect::<Vec<_>>().join(", "),
                        if missing_files.len() > 3 { ", ..." } else { "" }
                    ),
                )
                .with("count", missing_files.len())
                .with("versions", versions)
                .with("files", files),
            );
        }
        if !external.is_empty() {
            self.findings.push(
                Finding::new(
                    FindingKind::ExternalFile,
                    Severity::Warning,
                    format!(
                        "{} file(s) the log references lie outside the table root and are not backed up with it",
                        external.len()
                    ),
                )
                .with("count", external.len())
                .with("files", external.into_iter().take(NAMED_MAX).collect::<Vec<_>>()),
            );
        }
    }

    pub(super) fn no_restorable_version(&self) -> Finding {
        let history = self.history;
        let detail = match (history.versions.first(), history.versions.last()) {
            (Some(first), Some(last)) => format!(
                "none of the backed-up versions {}..{} can be restored; version {}: {}",
                first.version,
                last.version,
                last.version,
                last.reason.as_deref().unwrap_or("unknown reason")
            ),
            _ => format!(
                "the backup holds no Delta log for this table (nothing under {}/_delta_log/)",
                self.backup
            ),
        };
        Finding::new(FindingKind::NoRestorableVersion, Severity::Critical, detail)
    }
}

pub(super) fn conflict_finding(conflicts: &[ObjectInfo]) -> Finding {
    let kept: Vec<&str> = conflicts
        .iter()
        .take(NAMED_MAX)
        .map(|o| o.key.as_str())
        .collect();
    Finding::new(
        FindingKind::BackupConflict,
        Severity::Warning,
        format!(
            "{} rewrite(s) of this table's log files reached the replicator with content other than the backup's; the backup keeps the originals and the rewritten content aside under {CONFLICTS_PREFIX}",
            conflicts.len()
        ),
    )
    .with("count", conflicts.len())
    .with("kept", kept)
}
