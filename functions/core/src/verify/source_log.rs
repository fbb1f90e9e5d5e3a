//! The source's own log as a reader finds it (pure): whether a table is still there at all, and
//! whether its log has a gap in the middle that readers cannot cross.
//!
//! A reader of version V starts from the newest complete checkpoint at or before V (or from
//! commit 0) and needs every commit after it up to V: one commit missing in between and the
//! read fails ("expected contiguous commit files"), although every listing of the prefix still
//! looks like a table. Commits missing before the oldest checkpoint are the log's own cleanup
//! and are not a gap.

use crate::delta::LogFiles;
use crate::keys::S3Location;
use crate::ranges::{push_range, ranges_text, VersionRange};

use super::report::{Finding, FindingKind, Severity};

/// Whether the table is gone from the source: no commit and no checkpoint left under
/// `_delta_log/`, whatever else sits there (`_last_checkpoint`, `.crc` files, Databricks'
/// `.s3-optimization-*` markers).
pub fn dropped(log: &LogFiles) -> bool {
    log.latest_version().is_none()
}

/// A gap in the middle of the source's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLog {
    /// The commits that are missing (no complete checkpoint at those versions either).
    pub missing: Vec<VersionRange>,
    /// The versions readers can no longer read because of them.
    pub unreadable: Vec<VersionRange>,
    /// Whether the latest version is among them (the table itself is unreadable).
    pub latest_unreadable: bool,
    pub latest: u64,
}

/// The gaps readers of the source's log cannot cross, if any.
pub fn broken(log: &LogFiles) -> Option<BrokenLog> {
    let latest = log.latest_version()?;
    let anchor = |v: u64| log.checkpoint_complete(v) || (v == 0 && log.commits.contains(&0));
    let first_anchor = log
        .commits
        .first()
        .filter(|v| **v == 0)
        .copied()
        .into_iter()
        .chain(log.checkpoints.keys().copied().filter(|v| anchor(*v)))
        .min()?;
    let mut missing = Vec::new();
    let mut unreadable = Vec::new();
    let mut broken_since: Option<u64> = None;
    for v in first_anchor + 1..=latest {
        if anchor(v) {
            // A reader of v and later starts here again.
            if let Some(since) = broken_since.take() {
                push_range(&mut unreadable, since, v - 1);
            }
            continue;
        }
        if !log.commits.contains(&v) {
            push_range(&mut missing, v, v);
            broken_since.get_or_insert(v);
        }
    }
    if missing.is_empty() {
        return None;
    }
    let latest_unreadable = broken_since.is_some();
    if let Some(since) = broken_since {
        push_range(&mut unreadable, since, latest);
    }
    Some(BrokenLog {
        missing,
        unreadable,
        latest_unreadable,
        latest,
    })
}

/// `source_log_broken`: critical when the latest version cannot be read, a warning when only
/// older versions (time travel) are cut off.
pub fn finding(table: &S3Location, broken: &BrokenLog) -> Finding {
    let missing = ranges_text(&broken.missing);
    let unreadable = ranges_text(&broken.unreadable);
    let repair = format!(
        "`lifeboat restore {table} --mode repair` puts the missing commits back from the backup (a dry run first shows what it copies)"
    );
    let detail = if broken.latest_unreadable {
        format!(
            "the source's log has a gap: commit(s) {missing} are missing between others and no checkpoint covers them, so readers fail on the table (\"expected contiguous commit files\"): versions {unreadable} cannot be read, the latest ({}) among them; {repair}",
            broken.latest
        )
    } else {
        format!(
            "the source's log has a gap: commit(s) {missing} are missing between others; a later checkpoint keeps the latest version readable, but time travel to versions {unreadable} fails; {repair}"
        )
    };
    Finding::new(
        FindingKind::SourceLogBroken,
        if broken.latest_unreadable {
            Severity::Critical
        } else {
            Severity::Warning
        },
        detail,
    )
    .with("missing_versions", &broken.missing)
    .with("unreadable_versions", &broken.unreadable)
    .with("latest_version_unreadable", broken.latest_unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::LogFileKind;

    fn log(commits: &[u64], checkpoints: &[u64], others: &[&str]) -> LogFiles {
        let mut log = LogFiles::default();
        for v in commits {
            log.commits.insert(*v);
            log.all.push(format!("_delta_log/{v:020}.json").into());
        }
        for v in checkpoints {
            let path: Box<str> = format!("_delta_log/{v:020}.checkpoint.parquet").into();
            log.checkpoints
                .entry(*v)
                .or_default()
                .push((LogFileKind::Checkpoint, path.clone()));
            log.all.push(path);
        }
        for other in others {
            log.all.push(format!("_delta_log/{other}").into());
        }
        log
    }

    fn r(first: u64, last: u64) -> VersionRange {
        VersionRange::new(first, last)
    }

    #[test]
    fn gaps_readers_cannot_cross() {
        // (name, commits, checkpoints, expected (missing, unreadable, latest unreadable))
        type Case = (
            &'static str,
            Vec<u64>,
            Vec<u64>,
            Option<(Vec<VersionRange>, Vec<VersionRange>, bool)>,
        );
        let cases: Vec<Case> = vec![
            ("contiguous", vec![0, 1, 2, 3], vec![], None),
            (
                "one commit deleted between two others",
                vec![0, 1, 3, 4],
                vec![],
                Some((vec![r(2, 2)], vec![r(2, 4)], true)),
            ),
            (
                "two gaps",
                vec![0, 2, 3, 6],
                vec![],
                Some((vec![r(1, 1), r(4, 5)], vec![r(1, 6)], true)),
            ),
            (
                "cleaned up before a checkpoint (Delta's own log cleanup)",
                vec![10, 11, 12],
                vec![10],
                None,
            ),
            (
                "a gap a later checkpoint covers: only time travel is cut off",
                vec![0, 1, 3, 4, 5, 6],
                vec![5],
                Some((vec![r(2, 2)], vec![r(2, 4)], false)),
            ),
            (
                "a gap after the newest checkpoint",
                vec![5, 6, 8],
                vec![5],
                Some((vec![r(7, 7)], vec![r(7, 8)], true)),
            ),
            (
                "a checkpoint where the commit is missing restarts the log",
                vec![0, 1, 3, 4],
                vec![2],
                None,
            ),
            (
                "no anchor at all: not a gap in the middle",
                vec![3, 5],
                vec![],
                None,
            ),
            ("nothing left", vec![], vec![], None),
        ];
        for (name, commits, checkpoints, expected) in cases {
            let got = broken(&log(&commits, &checkpoints, &[]))
                .map(|b| (b.missing, b.unreadable, b.latest_unreadable));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn a_prefix_without_commits_is_dropped_whatever_else_is_there() {
        let cases: Vec<(&str, LogFiles, bool)> = vec![
            ("nothing", log(&[], &[], &[]), true),
            (
                "Databricks' marker only",
                log(&[], &[], &[".s3-optimization-0"]),
                true,
            ),
            (
                "a stale hint and checksums",
                log(&[], &[], &["_last_checkpoint", "00000000000000000003.crc"]),
                true,
            ),
            ("a commit", log(&[3], &[], &[".s3-optimization-0"]), false),
            ("a checkpoint", log(&[], &[7], &[]), false),
        ];
        for (name, log, expected) in cases {
            assert_eq!(dropped(&log), expected, "{name}");
        }
    }

    #[test]
    fn the_finding_is_critical_when_the_latest_version_is_unreadable() {
        let table = S3Location::parse("s3://src/t").unwrap();
        let b = broken(&log(&[0, 1, 3], &[], &[])).unwrap();
        let f = finding(&table, &b);
        assert_eq!(f.kind.name(), "source_log_broken");
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.detail.contains("commit(s) 2 are missing"), "{}", f.detail);
        assert!(f.detail.contains("--mode repair"), "{}", f.detail);
        let b = broken(&log(&[0, 1, 3, 4], &[4], &[])).unwrap();
        assert_eq!(finding(&table, &b).severity, Severity::Warning);
    }
}
