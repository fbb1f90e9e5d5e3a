//! The names under `_delta_log/`, and what a listing of a table says about its log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::listing::TableListing;

/// The kind of a file under `_delta_log/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFileKind {
    Commit,
    /// A classic single-file checkpoint.
    Checkpoint,
    /// Part `part` of `parts` of a multi-part checkpoint.
    CheckpointPart {
        part: u32,
        parts: u32,
    },
    /// A V2 checkpoint (`N.checkpoint.<uuid>.json|parquet`).
    CheckpointV2,
    /// `N.M.compacted.json`.
    Compacted {
        to: u64,
    },
    Crc,
    LastCheckpoint,
    Sidecar,
    Other,
}

/// Classifies a name relative to `_delta_log/`; returns the version it belongs to, if any.
pub fn classify_log_file(name: &str) -> (LogFileKind, Option<u64>) {
    if name == "_last_checkpoint" {
        return (LogFileKind::LastCheckpoint, None);
    }
    if name.starts_with("_sidecars/") {
        return (LogFileKind::Sidecar, None);
    }
    let parts: Vec<&str> = name.split('.').collect();
    let version = parts
        .first()
        .filter(|p| p.len() == 20 && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u64>().ok());
    let Some(version) = version else {
        return (LogFileKind::Other, None);
    };
    let kind = match parts.as_slice() {
        [_, "json"] => LogFileKind::Commit,
        [_, "crc"] => LogFileKind::Crc,
        [_, "checkpoint", "parquet"] => LogFileKind::Checkpoint,
        [_, "checkpoint", part, parts, "parquet"] => match (part.parse(), parts.parse()) {
            (Ok(part), Ok(parts)) => LogFileKind::CheckpointPart { part, parts },
            _ => LogFileKind::Other,
        },
        [_, "checkpoint", _uuid, "json" | "parquet"] => LogFileKind::CheckpointV2,
        [_, to, "compacted", "json"] => match to.parse() {
            Ok(to) => LogFileKind::Compacted { to },
            Err(_) => LogFileKind::Other,
        },
        _ => LogFileKind::Other,
    };
    (kind, Some(version))
}

impl TableListing {
    /// The log files, by version, with their kinds.
    pub fn log(&self) -> LogFiles {
        let mut log = LogFiles::default();
        for (relative, _) in self.iter() {
            let Some(name) = relative.strip_prefix("_delta_log/") else {
                continue;
            };
            let (kind, version) = classify_log_file(name);
            match (kind, version) {
                (LogFileKind::Commit, Some(v)) => {
                    log.commits.insert(v);
                }
                (
                    kind @ (LogFileKind::Checkpoint
                    | LogFileKind::CheckpointPart { .. }
                    | LogFileKind::CheckpointV2),
                    Some(v),
                ) => {
                    log.checkpoints
                        .entry(v)
                        .or_default()
                        .push((kind, relative.into()));
                }
                _ => {}
            }
            log.all.push(relative.into());
        }
        log
    }
}

/// The log of one table, as listed.
#[derive(Debug, Default, Clone)]
pub struct LogFiles {
    /// The versions with a commit file (`_delta_log/<version:020>.json`).
    pub commits: BTreeSet<u64>,
    /// Checkpoint files by version, with their paths relative to the table root.
    pub checkpoints: BTreeMap<u64, Vec<(LogFileKind, Box<str>)>>,
    /// Every path under `_delta_log/`, relative to the table root, sorted.
    pub all: Vec<Box<str>>,
}

impl LogFiles {
    pub fn latest_version(&self) -> Option<u64> {
        let commit = self.commits.last().copied();
        let checkpoint = self.checkpoints.keys().next_back().copied();
        commit.max(checkpoint)
    }

    pub fn earliest_version(&self) -> Option<u64> {
        let commit = self.commits.first().copied();
        let checkpoint = self.checkpoints.keys().next().copied();
        match (commit, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the checkpoint at `version` has all its files (every part of a multi-part
    /// checkpoint; sidecars of V2 checkpoints are checked when the kernel reads it).
    pub fn checkpoint_complete(&self, version: u64) -> bool {
        let Some(files) = self.checkpoints.get(&version) else {
            return false;
        };
        if files
            .iter()
            .any(|(k, _)| matches!(k, LogFileKind::Checkpoint | LogFileKind::CheckpointV2))
        {
            return true;
        }
        // Multi-part: some writer's complete set of parts 1..=n.
        let mut by_parts: HashMap<u32, Vec<u32>> = HashMap::new();
        for (kind, _) in files {
            if let LogFileKind::CheckpointPart { part, parts } = kind {
                by_parts.entry(*parts).or_default().push(*part);
            }
        }
        by_parts.into_iter().any(|(n, mut seen)| {
            seen.sort_unstable();
            seen.dedup();
            seen.len() as u32 == n && seen.first() == Some(&1) && seen.last() == Some(&n)
        })
    }

    /// Log paths (relative to the table root) that belong to versions up to `version`.
    pub fn paths_up_to(&self, version: u64) -> Vec<String> {
        self.all
            .iter()
            .filter(|p| {
                let name = &p["_delta_log/".len()..];
                match classify_log_file(name) {
                    (LogFileKind::Compacted { to }, _) => to <= version,
                    (_, Some(v)) => v <= version,
                    // Sidecars are referenced by V2 checkpoints; keep them all.
                    (LogFileKind::Sidecar, None) => true,
                    _ => false,
                }
            })
            .map(|p| p.to_string())
            .collect()
    }
}

/// Whether a `_last_checkpoint` hint agrees with the log it sits in: it names a checkpoint
/// version the log holds complete (every part, when it says `parts`), not after the log's
/// latest version. A reader trusts the hint and fails ("had a _last_checkpoint hint but didn't
/// find any checkpoints") when it does not; Lifeboat's own reads ignore it. `Err` says why.
/// A hint that does not parse (not JSON, no version: a partial write) is no problem: readers
/// treat it as absent and list the log (delta-kernel-rs, delta-rs, Delta Spark; the shared table
/// `golden_data/corrupted-last-checkpoint-kernel`).
pub fn check_checkpoint_hint(hint: &[u8], log: &LogFiles) -> Result<(), String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(hint) else {
        return Ok(());
    };
    let Some(version) = value.get("version").and_then(serde_json::Value::as_u64) else {
        return Ok(());
    };
    if !log.checkpoints.contains_key(&version) {
        return Err(format!(
            "_last_checkpoint points at a checkpoint of version {version}, which the log does not hold"
        ));
    }
    if !log.checkpoint_complete(version) {
        return Err(format!(
            "_last_checkpoint points at the checkpoint of version {version}, which is incomplete"
        ));
    }
    if let Some(parts) = value.get("parts").and_then(serde_json::Value::as_u64) {
        let listed = log.checkpoints[&version]
            .iter()
            .filter(|(kind, _)| matches!(kind, LogFileKind::CheckpointPart { parts: n, .. } if u64::from(*n) == parts))
            .count() as u64;
        if listed != parts {
            return Err(format!(
                "_last_checkpoint says the checkpoint of version {version} has {parts} parts; the log holds {listed}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    #[test]
    fn hints_against_the_log() {
        let mut log = LogFiles::default();
        log.commits.extend(0..=12);
        log.checkpoints.insert(
            10,
            vec![(
                LogFileKind::Checkpoint,
                "_delta_log/00000000000000000010.checkpoint.parquet".into(),
            )],
        );
        let cases: [(&str, bool); 7] = [
            (r#"{"version":10,"size":4}"#, true),
            (r#"{"version":15,"size":4}"#, false),
            (r#"{"version":11,"size":4}"#, false),
            (r#"{"version":10,"size":4,"parts":3}"#, false),
            // Readers ignore a hint they cannot parse, and list the log.
            (r#"{"size":4}"#, true),
            ("not json", true),
            ("", true),
        ];
        for (hint, ok) in cases {
            assert_eq!(
                check_checkpoint_hint(hint.as_bytes(), &log).is_ok(),
                ok,
                "{hint}"
            );
        }
    }
}
