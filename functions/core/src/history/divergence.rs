//! Divergence: where the source's log was rolled back and written on again, so that the
//! backup's log, which keeps the first copy of every commit, would otherwise chain the other
//! branch's later commits onto its own.

use serde::Serialize;

use super::TableHistory;
use crate::delta::{classify_log_file, commit_path, parse_commit, table_url, LogFileKind};
use crate::error::Result;
use crate::keys::S3Location;
use crate::store::Store;

/// Where the source's log diverged from the backup's: from `version` on, the two hold
/// different histories (a stale sync deleted commits, then writers committed new ones under
/// the same versions). The backup kept its own commit `version` (the new one is kept aside as a
/// conflict), but commits the replicator copied after that arrived from the other branch: from
/// `stitched_from` on, the backup's log chains the other branch's commits onto its own, a state
/// that never existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    pub version: u64,
    /// The first backup commit that belongs to the other branch (None: none copied yet).
    pub stitched_from: Option<u64>,
    /// When the other branch's commit `version` reached the replicator (RFC 3339).
    pub at: String,
}

/// The version of the commit at `path` of `table` (relative to the table, under
/// `_delta_log/`), and whether what is there now is a valid Delta commit (a commit of another
/// branch, rather than damage). `None` when `path` names no commit, or nothing is there.
pub async fn valid_commit_at<S: Store>(
    store: &S,
    table: &S3Location,
    path: &str,
) -> Result<Option<(u64, bool)>> {
    let Some(name) = path.strip_prefix("_delta_log/") else {
        return Ok(None);
    };
    let (LogFileKind::Commit, Some(version)) = classify_log_file(name) else {
        return Ok(None);
    };
    let Some(body) = store.get(&table.bucket, &table.key(path), None).await? else {
        return Ok(None);
    };
    let valid = parse_commit(&table_url(table)?, version, &body).is_ok();
    Ok(Some((version, valid)))
}

/// A conflict record for a commit: the version it would have been, and when it was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitConflict {
    pub version: u64,
    pub kept_at_ms: i64,
    /// Whether the kept content is a valid commit (another branch) rather than garbage.
    pub valid_commit: bool,
}

/// The divergence, if any: the lowest conflicted commit whose kept content is a valid commit,
/// and the first backup commit after it that was copied at or after that conflict was kept.
/// `copied_ms(v)` is when the backup's commit `v` was copied (its listing's time).
pub fn divergence(
    conflicts: &[CommitConflict],
    commits: impl IntoIterator<Item = u64>,
    copied_ms: impl Fn(u64) -> Option<i64>,
) -> Option<Divergence> {
    let first = conflicts
        .iter()
        .filter(|c| c.valid_commit)
        .min_by_key(|c| (c.version, c.kept_at_ms))?;
    // The kept time has the listing's precision (seconds): a commit copied in the same second
    // as the conflict counts as after it.
    let stitched_from = commits
        .into_iter()
        .filter(|v| *v > first.version)
        .find(|v| copied_ms(*v).is_some_and(|t| t / 1000 >= first.kept_at_ms / 1000));
    Some(Divergence {
        version: first.version,
        stitched_from,
        at: chrono::DateTime::from_timestamp_millis(first.kept_at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
    })
}

impl TableHistory {
    /// Marks the versions the backup holds only as a stitch of two branches unrestorable
    /// (see [`Divergence`]), given the table's conflict records; returns the divergence.
    /// Reads each conflicted commit once, to tell another branch from garbage.
    pub async fn exclude_diverged<S: Store>(
        &mut self,
        store: &S,
        conflicts: &[crate::store::ObjectInfo],
        conflicts_prefix: &str,
    ) -> Result<Option<Divergence>> {
        let root = table_url(&self.table)?;
        let mut records = Vec::new();
        for kept in conflicts {
            // `<prefix>_delta_log/<version:020>.json.<tag>`
            let Some(rest) = kept.key.strip_prefix(conflicts_prefix) else {
                continue;
            };
            let Some(name) = rest.strip_prefix("_delta_log/") else {
                continue;
            };
            let Some(version) = name
                .get(..20)
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|_| name[20..].starts_with(".json."))
            else {
                continue;
            };
            let body = store
                .get(&kept_bucket(&self.table), &kept.key, None)
                .await?;
            let valid_commit = body.is_some_and(|b| parse_commit(&root, version, &b).is_ok());
            records.push(CommitConflict {
                version,
                kept_at_ms: kept
                    .last_modified
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(0),
                valid_commit,
            });
        }
        let listing = &self.listing;
        let found = divergence(&records, self.log.commits.iter().copied(), |v| {
            listing
                .get(&commit_path(v))
                .and_then(|l| l.last_modified())
                .map(|t| t.timestamp_millis())
        });
        if let Some(Divergence {
            version,
            stitched_from: Some(from),
            ..
        }) = &found
        {
            for status in self.versions.iter_mut().filter(|s| s.version >= *from) {
                if status.restorable {
                    status.restorable = false;
                    status.reason = Some(format!(
                        "the source's log diverged from the backup's at version {version}: the backup's commits from {from} on were copied from the other branch and do not chain onto its own commit {version}"
                    ));
                }
            }
        }
        Ok(found)
    }
}

/// The conflicts of a backup table live in the backup bucket, where the table is.
fn kept_bucket(table: &S3Location) -> String {
    table.bucket.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_table() {
        let c = |version, kept_at_ms, valid_commit| CommitConflict {
            version,
            kept_at_ms,
            valid_commit,
        };
        // Backup commits 0..=6, copied at 1000*v ms, except 5 and 6 copied late (the other
        // branch's, after the conflict at 4 was kept at 20 s).
        let copied = |v: u64| {
            Some(match v {
                5 => 21_000,
                6 => 22_000,
                v => 1000 * v as i64,
            })
        };
        type Case = (
            &'static str,
            Vec<CommitConflict>,
            Option<(u64, Option<u64>)>,
        );
        let cases: Vec<Case> = vec![
            ("no conflict", vec![], None),
            (
                "garbage is corruption, not divergence",
                vec![c(4, 20_000, false)],
                None,
            ),
            (
                "another branch from 4, stitched from 5",
                vec![c(4, 20_000, true)],
                Some((4, Some(5))),
            ),
            (
                "the lowest valid conflict",
                vec![c(5, 21_500, true), c(4, 20_000, true), c(2, 1, false)],
                Some((4, Some(5))),
            ),
            (
                "nothing copied after it yet",
                vec![c(6, 30_000, true)],
                Some((6, None)),
            ),
        ];
        for (name, conflicts, expected) in cases {
            let got = divergence(&conflicts, 0..=6, copied).map(|d| (d.version, d.stitched_from));
            assert_eq!(got, expected, "{name}");
        }
    }
}
