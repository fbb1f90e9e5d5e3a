//! For every version of a table in the backup: can it be restored from the backup alone?
//!
//! A version is restorable when a chain of log files reaches it from an anchor (commit 0, or a
//! complete checkpoint) with no gap, and every data and deletion-vector file it needs is in the
//! backup with the right size. Existence is checked against one listing of the table prefix.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::delta::{
    commit_path, parse_commit, table_url, KernelReader, LiveFile, LogFiles, TableListing,
};
use crate::error::{Error, Result};
use crate::keys::S3Location;
use crate::layout::meta;
use crate::ranges::{push_range, VersionRange};
use crate::store::Store;

mod checkpoints;
mod divergence;

pub use divergence::{divergence, valid_commit_at, CommitConflict, Divergence};

const LOG_READ_CONCURRENCY: usize = 32;

/// What one version looks like in the backup.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    pub version: u64,
    /// In-commit timestamp, else `commitInfo.timestamp` (ms since the epoch), when known.
    pub timestamp_ms: Option<i64>,
    /// The commit's in-commit timestamp, when it carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ict_ms: Option<i64>,
    pub restorable: bool,
    /// Files live in this version, when the log reaches it.
    pub live_files: Option<u64>,
    /// Why it is not restorable (the first reason found).
    pub reason: Option<String>,
}

/// A file the versions `first..=last` need.
#[derive(Debug, Clone, Serialize)]
pub struct FileNeed {
    /// Relative to the table root, or an absolute URL outside it.
    pub path: Box<str>,
    /// The exact size for data files; the minimum size for deletion-vector files.
    pub size: u64,
    pub exact: bool,
    pub first: u64,
    pub last: u64,
}

/// Something wrong in the backed-up table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    LogGap {
        first: u64,
        last: u64,
    },
    UnreadableCommit {
        version: u64,
        reason: String,
    },
    BadCheckpoint {
        version: u64,
        reason: String,
    },
    MissingFile {
        path: String,
        expected_size: u64,
        found_size: Option<u64>,
        first: u64,
        last: u64,
    },
    ExternalFile {
        path: String,
        first: u64,
        last: u64,
    },
}

/// The analysis of one table.
#[derive(Debug, Clone)]
pub struct TableHistory {
    pub table: S3Location,
    pub listing: TableListing,
    pub log: LogFiles,
    /// `earliest..=latest` in the log, in order.
    pub versions: Vec<VersionStatus>,
    pub needs: Vec<FileNeed>,
    pub problems: Vec<Problem>,
}

/// A file live since version `since` (24 bytes: a 1M-file table's live set stays small).
struct Open {
    size: u64,
    dv: Option<Box<crate::delta::DvFile>>,
    since: u64,
}

type Live = HashMap<Box<str>, Open>;

impl TableHistory {
    /// Lists and reads the table's log and checks every version.
    pub async fn analyze<S: Store>(store: &S, table: &S3Location) -> Result<Self> {
        let listing = TableListing::load(store, table).await?;
        Self::analyze_listed(store, table, listing).await
    }

    /// As [`Self::analyze`], with a listing already made.
    pub async fn analyze_listed<S: Store>(
        store: &S,
        table: &S3Location,
        listing: TableListing,
    ) -> Result<Self> {
        let log = listing.log();
        let mut history = TableHistory {
            table: table.clone(),
            listing,
            log,
            versions: Vec::new(),
            needs: Vec::new(),
            problems: Vec::new(),
        };
        let (Some(earliest), Some(latest)) =
            (history.log.earliest_version(), history.log.latest_version())
        else {
            return Ok(history);
        };
        let root = table_url(table)?;
        let mut kernel: Option<std::sync::Arc<KernelReader>> = None;

        let commit_versions: Vec<u64> = history
            .log
            .commits
            .range(earliest..=latest)
            .copied()
            .collect();
        let mut commits = stream::iter(commit_versions)
            .map(|v| {
                let key = table.key(&commit_path(v));
                async move { (v, store.get(&table.bucket, &key, None).await) }
            })
            .buffered(LOG_READ_CONCURRENCY);

        let mut live = Live::new();
        let mut current: Option<u64> = None;
        let mut gap_start: Option<u64> = None;
        for v in earliest..=latest {
            let mut commit = None;
            let mut status = VersionStatus {
                version: v,
                timestamp_ms: None,
                ict_ms: None,
                restorable: false,
                live_files: None,
                reason: None,
            };
            if history.log.commits.contains(&v) {
                let (read_v, body) = commits.next().await.expect("one read per listed commit");
                debug_assert_eq!(read_v, v);
                match body?
                    .ok_or_else(|| {
                        Error::delta(
                            table.to_string(),
                            format!("commit {v} vanished while reading"),
                        )
                    })
                    .and_then(|b| parse_commit(&root, v, &b))
                {
                    Ok(c) => {
                        status.timestamp_ms = c.timestamp_ms;
                        status.ict_ms = c.ict_ms;
                        commit = Some(c);
                    }
                    Err(err) => history.problems.push(Problem::UnreadableCommit {
                        version: v,
                        reason: err.to_string(),
                    }),
                }
            }

            let readable = commit.is_some();
            let chained = current == Some(v.wrapping_sub(1)) && v > 0 && readable;
            if chained {
                apply(
                    &mut live,
                    &mut history.needs,
                    commit.take().expect("checked"),
                    v,
                );
                current = Some(v);
            } else {
                if let Some(c) = current {
                    close_all(&mut live, &mut history.needs, c);
                }
                current = None;
                if history.log.checkpoint_complete(v) {
                    let reader = match &kernel {
                        Some(k) => k.clone(),
                        None => {
                            let k = std::sync::Arc::new(store.delta_reader(&table.bucket).await?);
                            kernel = Some(k.clone());
                            k
                        }
                    };
                    let location = table.clone();
                    let snapshot = tokio::task::spawn_blocking(move || {
                        reader.snapshot_files(&location, Some(v))
                    })
                    .await
                    .map_err(|e| {
                        Error::delta(table.to_string(), format!("kernel task failed: {e}"))
                    })?;
                    match snapshot {
                        Ok((_, files)) => {
                            for file in files {
                                open(&mut live, &mut history.needs, file, v);
                            }
                            current = Some(v);
                        }
                        Err(err) => history.problems.push(Problem::BadCheckpoint {
                            version: v,
                            reason: err.to_string(),
                        }),
                    }
                } else if history.log.checkpoints.contains_key(&v) {
                    history.problems.push(Problem::BadCheckpoint {
                        version: v,
                        reason:
                            "some parts of this multi-part checkpoint are missing from the backup"
                                .into(),
                    });
                }
                if current.is_none() && v == 0 {
                    if let Some(c) = commit.take() {
                        apply(&mut live, &mut history.needs, c, 0);
                        current = Some(0);
                    }
                }
            }

            if current == Some(v) {
                if let Some(first) = gap_start.take() {
                    history
                        .problems
                        .push(Problem::LogGap { first, last: v - 1 });
                }
                status.restorable = true;
                status.live_files = Some(live.len() as u64);
            } else {
                if gap_start.is_none() && v > earliest {
                    gap_start = Some(v);
                }
                status.reason = Some(if !history.log.commits.contains(&v) {
                    format!("commit {v} is missing from the backup and no complete checkpoint restarts the log here")
                } else if !readable {
                    format!("commit {v} in the backup cannot be read")
                } else {
                    format!("no complete checkpoint or commit 0 before version {v} that the log can be replayed from")
                });
            }
            history.versions.push(status);
        }
        if let Some(first) = gap_start {
            history.problems.push(Problem::LogGap {
                first,
                last: latest,
            });
        }
        if let Some(c) = current {
            close_all(&mut live, &mut history.needs, c);
        }
        history.check_files(earliest);
        history.check_v2_checkpoints(store, &mut kernel).await?;
        Ok(history)
    }

    fn check_files(&mut self, earliest: u64) {
        let mut problems = Vec::new();
        for need in &self.needs {
            let reason = if need.path.contains("://") {
                problems.push(Problem::ExternalFile {
                    path: need.path.to_string(),
                    first: need.first,
                    last: need.last,
                });
                format!(
                    "{} lies outside the table and is not backed up with it",
                    need.path
                )
            } else {
                let found = self.listing.get(&need.path).map(|o| o.size);
                let ok = match found {
                    Some(size) if need.exact => size == need.size,
                    Some(size) => size >= need.size,
                    None => false,
                };
                if ok {
                    continue;
                }
                problems.push(Problem::MissingFile {
                    path: need.path.to_string(),
                    expected_size: need.size,
                    found_size: found,
                    first: need.first,
                    last: need.last,
                });
                match found {
                    None => format!("{} is missing from the backup", need.path),
                    Some(size) => format!(
                        "{} has {size} bytes in the backup, {} expected",
                        need.path, need.size
                    ),
                }
            };
            for v in need.first..=need.last {
                let status = &mut self.versions[(v - earliest) as usize];
                if status.restorable {
                    status.restorable = false;
                    status.reason = Some(reason.clone());
                }
            }
        }
        self.problems.extend(problems);
    }

    pub fn latest_version(&self) -> Option<u64> {
        self.versions.last().map(|s| s.version)
    }

    pub fn status(&self, version: u64) -> Option<&VersionStatus> {
        let first = self.versions.first()?.version;
        self.versions.get(version.checked_sub(first)? as usize)
    }

    pub fn oldest_restorable(&self) -> Option<&VersionStatus> {
        self.versions.iter().find(|s| s.restorable)
    }

    pub fn newest_restorable(&self) -> Option<&VersionStatus> {
        self.versions.iter().rev().find(|s| s.restorable)
    }

    /// Inclusive ranges of versions that are, or are not, restorable.
    pub fn ranges(&self, restorable: bool) -> Vec<VersionRange> {
        let mut ranges = Vec::new();
        for s in self.versions.iter().filter(|s| s.restorable == restorable) {
            push_range(&mut ranges, s.version, s.version);
        }
        ranges
    }

    /// Files needed by any version in `first..=last`, each path once.
    pub fn files_needed(&self, first: u64, last: u64) -> Vec<&FileNeed> {
        let mut seen = std::collections::HashSet::new();
        self.needs
            .iter()
            .filter(|n| n.first <= last && n.last >= first)
            .filter(|n| seen.insert(&*n.path))
            .collect()
    }

    /// The commit time of `version`: from the log, else the source's last-modified time kept
    /// in the backup metadata of its commit (or checkpoint) file.
    ///
    /// As Delta tells time (the rule `TIMESTAMP AS OF` and `lifeboat restore --timestamp` use,
    /// see `restore::timestamps`): a commit's in-commit timestamp when it carries one, else the
    /// modification time of its commit file in the source (kept in the backup copy's metadata,
    /// to the second, as S3 reports it), else `commitInfo.timestamp`. So a time copied from a
    /// report names the version it was reported for.
    pub async fn commit_time_ms<S: Store>(&self, store: &S, version: u64) -> Result<Option<i64>> {
        let status = self.status(version);
        if let Some(ict) = status.and_then(|s| s.ict_ms) {
            return Ok(Some(ict));
        }
        let logged = status.and_then(|s| s.timestamp_ms);
        let file = if self.log.commits.contains(&version) {
            commit_path(version)
        } else {
            match self.log.checkpoints.get(&version).and_then(|c| c.first()) {
                Some((_, path)) => path.to_string(),
                None => return Ok(logged),
            }
        };
        let head = store
            .head(&self.table.bucket, &self.table.key(&file), None)
            .await?;
        let Some(file_ms) = head.as_ref().and_then(recorded_second) else {
            return Ok(logged);
        };
        // Delta makes file times monotonic: a commit's time is max(its file time, the previous
        // commit's + 1 ms). Commits written in the same second as this one (listings and
        // `lifeboat-source-last-modified` give seconds) each push it on by 1 ms.
        let mut same_second = 0;
        let mut previous = version;
        while previous > 0 && same_second < MONOTONIC_LOOKBACK {
            previous -= 1;
            if !self.log.commits.contains(&previous) {
                break;
            }
            let key = self.table.key(&commit_path(previous));
            let head = store.head(&self.table.bucket, &key, None).await?;
            if head.as_ref().and_then(recorded_second) != Some(file_ms) {
                break;
            }
            same_second += 1;
        }
        Ok(Some(file_ms + same_second))
    }
}

/// How many earlier commits [`TableHistory::commit_time_ms`] looks at for the same second.
const MONOTONIC_LOOKBACK: i64 = 100;

/// The source modification time a backup copy records, to the second.
fn recorded_second(head: &crate::store::ObjectInfo) -> Option<i64> {
    head.metadata
        .get(meta::SOURCE_LAST_MODIFIED)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis().div_euclid(1000) * 1000)
}

fn open(live: &mut Live, needs: &mut Vec<FileNeed>, file: LiveFile, version: u64) {
    let opened = Open {
        size: file.size,
        dv: file.dv.map(Box::new),
        since: version,
    };
    match live.entry(file.path.into_boxed_str()) {
        Entry::Occupied(mut entry) => {
            let previous = std::mem::replace(entry.get_mut(), opened);
            if version > previous.since {
                close(needs, entry.key().clone(), previous, version - 1);
            }
        }
        Entry::Vacant(entry) => {
            entry.insert(opened);
        }
    }
}

fn close(needs: &mut Vec<FileNeed>, path: Box<str>, open: Open, last: u64) {
    needs.push(FileNeed {
        path,
        size: open.size,
        exact: true,
        first: open.since,
        last,
    });
    if let Some(dv) = open.dv {
        needs.push(FileNeed {
            path: dv.path.into_boxed_str(),
            size: dv.min_size,
            exact: false,
            first: open.since,
            last,
        });
    }
}

fn close_all(live: &mut Live, needs: &mut Vec<FileNeed>, last: u64) {
    needs.reserve_exact(live.len());
    for (path, open) in live.drain() {
        close(needs, path, open, last);
    }
    live.shrink_to_fit();
}

/// Applies a commit: removes first, then adds (a file whose deletion vector changes is removed
/// and re-added in the same commit).
fn apply(live: &mut Live, needs: &mut Vec<FileNeed>, commit: crate::delta::Commit, version: u64) {
    // Change data files belong to the version that wrote them (its change data feed).
    for cdc in commit.cdc {
        needs.push(FileNeed {
            path: cdc.path.into_boxed_str(),
            size: cdc.size,
            exact: true,
            first: version,
            last: version,
        });
    }
    for path in &commit.removes {
        if let Some((path, previous)) = live.remove_entry(path.as_str()) {
            if version > previous.since {
                close(needs, path, previous, version - 1);
            }
        }
    }
    for add in commit.adds {
        open(live, needs, add, version);
    }
}
