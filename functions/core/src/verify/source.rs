//! Findings about the source measured against the backup's history: files the source's own
//! versions need that the source no longer has (a table broken at its latest version, or time
//! travel broken by a VACUUM with too short a retention).

use serde_json::{json, Value};

use crate::delta::LiveFile;
use crate::error::Result;
use crate::ranges::{push_range, ranges_text, VersionRange};

use super::report::{Finding, FindingKind, Severity};
use super::{TableCheck, NAMED_MAX};

/// Delta's default `delta.deletedFileRetentionDuration`: a file removed from the table more
/// recently than this may still be needed by time travel, so a source that already lacks it
/// was vacuumed too early.
const DELETED_FILE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

impl TableCheck<'_> {
    /// Whether the backup's replay describes the source's latest version (else the source's
    /// latest snapshot must be read from the source itself).
    pub(super) fn knows_source_latest(&self, source_latest: u64) -> bool {
        self.history
            .status(source_latest)
            .is_some_and(|s| s.live_files.is_some())
    }

    /// Files the source's own versions need that the source lacks: at its latest version the
    /// table is broken (critical); at older versions within the deleted-file retention, time
    /// travel is broken (a VACUUM with too short a retention, a manual delete: warning).
    ///
    /// `latest_snapshot` is the source's latest snapshot as the kernel read it, needed only when
    /// [`Self::knows_source_latest`] is false (the source is ahead of the backup's replay).
    pub(super) fn source_files_missing(
        &mut self,
        source_latest: u64,
        latest_snapshot: Option<Result<Vec<LiveFile>>>,
    ) {
        let history = self.history;
        let source = self.source;
        // The oldest version the source's own log can still rebuild.
        let source_oldest = if self.source_log.commits.contains(&0) {
            Some(0)
        } else {
            self.source_log
                .checkpoints
                .keys()
                .copied()
                .find(|v| self.source_log.checkpoint_complete(*v))
        };
        let backup_latest = history.latest_version();
        let latest_known = self.knows_source_latest(source_latest);
        let present = |path: &str, size: u64, exact: bool| {
            source.get(path).is_some_and(|o| {
                if exact {
                    o.size == size
                } else {
                    o.size >= size
                }
            })
        };

        let mut at_latest: Vec<(String, u64)> = Vec::new();
        let mut older: Vec<(String, u64, VersionRange)> = Vec::new();
        for need in &history.needs {
            if need.path.contains("://") || present(&need.path, need.size, need.exact) {
                continue;
            }
            if latest_known && need.first <= source_latest && source_latest <= need.last {
                at_latest.push((need.path.to_string(), need.size));
                continue;
            }
            if !latest_known && Some(need.last) == backup_latest {
                continue; // checked against the source's own latest snapshot below
            }
            let first = need.first.max(source_oldest.unwrap_or(u64::MAX));
            let last = need.last.min(source_latest);
            if first > last {
                continue; // versions the source's log no longer reaches anyway
            }
            // Removed by version last + 1: long enough ago, a VACUUM may delete it.
            let removed_ms = history.status(need.last + 1).and_then(|s| s.timestamp_ms);
            if removed_ms.is_some_and(|t| self.now_ms - t > DELETED_FILE_RETENTION_MS) {
                continue;
            }
            older.push((
                need.path.to_string(),
                need.size,
                VersionRange { first, last },
            ));
        }
        if let Some(snapshot) = latest_snapshot.filter(|_| !latest_known) {
            match snapshot {
                Ok(files) => {
                    for file in files {
                        if !file.path.contains("://") && !present(&file.path, file.size, true) {
                            at_latest.push((file.path.clone(), file.size));
                        }
                        if let Some(dv) = file.dv {
                            if !dv.path.contains("://") && !present(&dv.path, dv.min_size, false) {
                                at_latest.push((dv.path, dv.min_size));
                            }
                        }
                    }
                }
                Err(err) => self.findings.push(
                    Finding::new(
                        FindingKind::SourceLogUnreadable,
                        Severity::Critical,
                        format!(
                            "the source's latest version {source_latest} cannot be read: {err}"
                        ),
                    )
                    .with("version", source_latest),
                ),
            }
        }
        if at_latest.is_empty() && older.is_empty() {
            return;
        }
        at_latest.sort();
        at_latest.dedup();
        older.sort_by(|a, b| a.0.cmp(&b.0));
        let mut broken = Vec::new();
        let mut spans: Vec<(u64, u64)> = older.iter().map(|o| (o.2.first, o.2.last)).collect();
        if !at_latest.is_empty() {
            spans.push((source_latest, source_latest));
        }
        spans.sort();
        for (first, last) in spans {
            push_range(&mut broken, first, last);
        }
        let mut files: Vec<Value> = at_latest
            .iter()
            .map(|(path, size)| json!({"path": path, "size": size, "needed_by_latest": true}))
            .collect();
        files.extend(older.iter().map(
            |(path, size, versions)| json!({"path": path, "size": size, "versions": versions}),
        ));
        files.truncate(NAMED_MAX);
        let repair = format!(
            "`lifeboat restore {} --mode repair` copies them back from the backup",
            self.table
        );
        let detail = if at_latest.is_empty() {
            format!(
                "time travel to versions {} of the source is broken: {} file(s) they need were deleted from the source within the {}-day retention (a VACUUM with too short a retention, or a manual delete); {repair}",
                ranges_text(&broken),
                older.len(),
                DELETED_FILE_RETENTION_MS / (24 * 3600 * 1000)
            )
        } else {
            format!(
                "the source table is broken: its latest version {source_latest} needs {} file(s) the source no longer has{}; {repair}",
                at_latest.len(),
                if older.is_empty() {
                    String::new()
                } else {
                    format!(", and {} more are gone that versions {} need", older.len(), ranges_text(&broken))
                }
            )
        };
        self.findings.push(
            Finding::new(
                FindingKind::SourceFilesMissing,
                if at_latest.is_empty() {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                detail,
            )
            .with("count", at_latest.len() + older.len())
            .with("latest_version_broken", !at_latest.is_empty())
            .with("versions", broken)
            .with("files", files),
        );
    }
}
