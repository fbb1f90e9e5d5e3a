//! Which version a timestamp names, as Delta decides it (pure): the newest version committed at
//! or before the instant.
//!
//! A commit's time is its in-commit timestamp where in-commit timestamps are on (from
//! `delta.inCommitTimestampEnablementVersion` on; a timestamp before
//! `delta.inCommitTimestampEnablementTimestamp` is looked for among the earlier commits only),
//! and otherwise the modification time of its commit file in the source, made monotonic as
//! Delta makes it: a commit's time is `max(its file time, the previous commit's time + 1 ms)`
//! (delta-kernel-rs `history_manager`, Delta Spark `DeltaHistoryManager`). The file times are
//! the source's, which the backup keeps in each copy's `lifeboat-source-last-modified`.
//!
//! When the version a timestamp names cannot be restored, the answer is a refusal that names
//! the restorable neighbours: never an older version picked silently.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Whether, and from when, the table's commits carry in-commit timestamps (read from the
/// table's latest metadata, as Delta reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ict {
    Off,
    /// On since the table was created: every commit has one.
    FromCreation,
    /// Switched on at `version`, whose in-commit timestamp is `timestamp_ms`.
    From {
        version: u64,
        timestamp_ms: i64,
    },
}

impl Ict {
    /// From a `metaData.configuration` object.
    pub fn of(configuration: &Value) -> Ict {
        let text = |k: &str| configuration.get(k).and_then(Value::as_str);
        if text("delta.enableInCommitTimestamps") != Some("true") {
            return Ict::Off;
        }
        let version = text("delta.inCommitTimestampEnablementVersion").and_then(|v| v.parse().ok());
        let timestamp =
            text("delta.inCommitTimestampEnablementTimestamp").and_then(|v| v.parse().ok());
        match (version, timestamp) {
            (Some(version), Some(timestamp_ms)) => Ict::From {
                version,
                timestamp_ms,
            },
            _ => Ict::FromCreation,
        }
    }

    fn covers(&self, version: u64) -> bool {
        match self {
            Ict::Off => false,
            Ict::FromCreation => true,
            Ict::From { version: from, .. } => version >= *from,
        }
    }
}

/// One version as the backup has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: u64,
    /// Whether its commit file is there (only commits are candidates, as in Delta).
    pub commit: bool,
    /// The source modification time of its commit (or checkpoint) file.
    pub file_ms: Option<i64>,
    /// The commit's `inCommitTimestamp`.
    pub ict_ms: Option<i64>,
    pub restorable: bool,
}

/// A version and its Delta commit time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub version: u64,
    pub time_ms: Option<i64>,
}

/// What a timestamp names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointAt {
    /// This version, restorable.
    Restorable(Timed),
    /// This version, which cannot be restored; the nearest restorable versions before and
    /// after it.
    NotRestorable {
        at: Timed,
        before: Option<Timed>,
        after: Option<Timed>,
    },
    /// The instant is before the first commit in the backup.
    BeforeFirst { first: Option<Timed> },
}

/// Each version's Delta commit time, in order.
pub fn commit_times(versions: &[Version], ict: Ict) -> Vec<Timed> {
    let mut previous: Option<i64> = None;
    versions
        .iter()
        .map(|v| {
            let time_ms = if ict.covers(v.version) {
                v.ict_ms
            } else {
                let t = v
                    .file_ms
                    .map(|f| previous.map_or(f, |p| f.max(p.saturating_add(1))));
                previous = t.or(previous);
                t
            };
            Timed {
                version: v.version,
                time_ms,
            }
        })
        .collect()
}

/// The version committed at or before `at_ms`, as Delta's `TIMESTAMP AS OF` finds it.
/// `versions` are in order.
pub fn point_at(at_ms: i64, versions: &[Version], ict: Ict) -> PointAt {
    let times = commit_times(versions, ict);
    // The versions a timestamp may name: commits, in the region of the timeline it falls in.
    let in_region = |v: u64| match ict {
        Ict::From {
            version,
            timestamp_ms,
        } => (at_ms >= timestamp_ms) == (v >= version),
        _ => true,
    };
    let candidates = || {
        versions
            .iter()
            .zip(&times)
            .filter(|(v, t)| v.commit && t.time_ms.is_some() && in_region(v.version))
    };
    let found = candidates().rfind(|(_, t)| t.time_ms.is_some_and(|t| t <= at_ms));
    let Some((version, timed)) = found else {
        let first = versions
            .iter()
            .zip(&times)
            .find(|(v, t)| v.commit && t.time_ms.is_some())
            .map(|(_, t)| *t);
        return PointAt::BeforeFirst { first };
    };
    if version.restorable {
        return PointAt::Restorable(*timed);
    }
    let restorable = || versions.iter().zip(&times).filter(|(v, _)| v.restorable);
    PointAt::NotRestorable {
        at: *timed,
        before: restorable()
            .rfind(|(v, _)| v.version < version.version)
            .map(|(_, t)| *t),
        after: restorable()
            .find(|(v, _)| v.version > version.version)
            .map(|(_, t)| *t),
    }
}

/// `version 4 (committed 2026-11-20T10:00:00.000Z)`
pub fn describe(t: &Timed) -> String {
    match t.time_ms.and_then(DateTime::<Utc>::from_timestamp_millis) {
        Some(time) => format!(
            "version {} (committed {})",
            t.version,
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
        None => format!("version {} (commit time unknown)", t.version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(version: u64, file_ms: i64, ict_ms: Option<i64>, restorable: bool) -> Version {
        Version {
            version,
            commit: true,
            file_ms: Some(file_ms),
            ict_ms,
            restorable,
        }
    }

    fn t(version: u64, time_ms: i64) -> Timed {
        Timed {
            version,
            time_ms: Some(time_ms),
        }
    }

    #[test]
    fn file_times_are_made_monotonic_as_delta_does() {
        // File times in seconds (S3), two commits in the same second, one clock going back.
        let versions = [
            v(0, 1_000, None, true),
            v(1, 1_000, None, true),
            v(2, 900, None, true),
            v(3, 5_000, None, true),
        ];
        assert_eq!(
            commit_times(&versions, Ict::Off),
            [t(0, 1_000), t(1, 1_001), t(2, 1_002), t(3, 5_000)]
        );
    }

    #[test]
    fn a_timestamp_names_the_newest_version_committed_at_or_before_it() {
        let files = vec![
            v(0, 1_000, None, true),
            v(1, 1_000, None, true), // 1_001 once monotonic
            v(2, 2_000, None, false),
            v(3, 3_000, None, true),
            v(4, 4_000, None, false),
        ];
        // ICT switched on at version 2 (ICT 2_500); file times after that do not count.
        let ict = Ict::From {
            version: 2,
            timestamp_ms: 2_500,
        };
        let with_ict = vec![
            v(0, 1_000, None, true),
            v(1, 1_000, None, true),
            v(2, 9_999, Some(2_500), true),
            v(3, 1, Some(3_500), true),
            v(4, 1, Some(4_500), false),
        ];
        let all_ict = vec![
            v(0, 0, Some(100), true),
            v(1, 0, Some(200), true),
            v(2, 0, Some(300), true),
        ];
        // (name, versions, ICT, instant, answer)
        let cases: Vec<(&str, &Vec<Version>, Ict, i64, PointAt)> = vec![
            (
                "exactly at a commit",
                &files,
                Ict::Off,
                1_000,
                PointAt::Restorable(t(0, 1_000)),
            ),
            (
                "the monotonic time of a same-second commit",
                &files,
                Ict::Off,
                1_001,
                PointAt::Restorable(t(1, 1_001)),
            ),
            (
                "between two commits: the earlier",
                &files,
                Ict::Off,
                3_999,
                PointAt::Restorable(t(3, 3_000)),
            ),
            (
                "the version at the instant is not restorable: refused with both neighbours",
                &files,
                Ict::Off,
                2_500,
                PointAt::NotRestorable {
                    at: t(2, 2_000),
                    before: Some(t(1, 1_001)),
                    after: Some(t(3, 3_000)),
                },
            ),
            (
                "the newest version not restorable: no neighbour after",
                &files,
                Ict::Off,
                9_000,
                PointAt::NotRestorable {
                    at: t(4, 4_000),
                    before: Some(t(3, 3_000)),
                    after: None,
                },
            ),
            (
                "before the first commit",
                &files,
                Ict::Off,
                999,
                PointAt::BeforeFirst {
                    first: Some(t(0, 1_000)),
                },
            ),
            (
                "ICT from version 2: after its enablement, in-commit timestamps",
                &with_ict,
                ict,
                3_600,
                PointAt::Restorable(t(3, 3_500)),
            ),
            (
                "exactly the enablement timestamp",
                &with_ict,
                ict,
                2_500,
                PointAt::Restorable(t(2, 2_500)),
            ),
            (
                "before the enablement: file times of the earlier commits only",
                &with_ict,
                ict,
                2_499,
                PointAt::Restorable(t(1, 1_001)),
            ),
            (
                "ICT: the version at the instant is not restorable",
                &with_ict,
                ict,
                5_000,
                PointAt::NotRestorable {
                    at: t(4, 4_500),
                    before: Some(t(3, 3_500)),
                    after: None,
                },
            ),
            (
                "ICT since creation",
                &all_ict,
                Ict::FromCreation,
                250,
                PointAt::Restorable(t(1, 200)),
            ),
            (
                "ICT since creation, before the first",
                &all_ict,
                Ict::FromCreation,
                50,
                PointAt::BeforeFirst {
                    first: Some(t(0, 100)),
                },
            ),
        ];
        for (name, versions, ict, at, expected) in cases {
            assert_eq!(point_at(at, versions, ict), expected, "{name}");
        }
    }

    #[test]
    fn only_commits_are_named() {
        // Version 5 is a checkpoint whose commit the backup lacks (its log starts there).
        let versions = [
            Version {
                version: 5,
                commit: false,
                file_ms: Some(1_000),
                ict_ms: None,
                restorable: true,
            },
            v(6, 2_000, None, true),
        ];
        assert_eq!(
            point_at(1_500, &versions, Ict::Off),
            PointAt::BeforeFirst {
                first: Some(t(6, 2_000))
            }
        );
        assert_eq!(
            point_at(2_000, &versions, Ict::Off),
            PointAt::Restorable(t(6, 2_000))
        );
    }

    #[test]
    fn enablement_from_the_configuration() {
        let cases = [
            (json!({}), Ict::Off),
            (json!({"delta.enableInCommitTimestamps": "false"}), Ict::Off),
            (
                json!({"delta.enableInCommitTimestamps": "true"}),
                Ict::FromCreation,
            ),
            (
                json!({"delta.enableInCommitTimestamps": "true", "delta.inCommitTimestampEnablementVersion": "3", "delta.inCommitTimestampEnablementTimestamp": "1700000000000"}),
                Ict::From {
                    version: 3,
                    timestamp_ms: 1_700_000_000_000,
                },
            ),
        ];
        for (configuration, expected) in cases {
            assert_eq!(Ict::of(&configuration), expected, "{configuration}");
        }
    }
}
