//! Proving a table from its state: the full proof's state, the incremental run, and reading
//! and writing the state ([`super::state`], decisions in [`super::incremental`]).
//!
//! An incremental run, for a table whose state is clean and whose full proof is younger than
//! `LIFEBOAT_FULL_PROOF_HOURS`:
//! - lists the backup's `_delta_log/` from the proven commit on (`start-after`), the table's
//!   conflict records, and the source table (the source is always listed whole: that is how
//!   a dropped table, a regressed or broken log, or lost data files are seen at every run);
//! - reads only the new commits and applies them to the proven files;
//! - checks that the backup holds the files the new versions need (HEADs, or one listing of
//!   the backup when that takes fewer requests) and that the source's new log files and
//!   needed files agree with the backup's copies (the full proof's comparison on just those);
//! - checks that the source still holds every file the newest version needs.
//!
//! Whatever else it sees (a gap, an unreadable commit, a file missing anywhere, a source log
//! that regressed, a new conflict) sends the table to a full proof in the same run, which
//! reports it as it always has.

use std::collections::HashSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::delta::{commit_path, parse_commit, table_url, TableListing};
use crate::error::Result;
use crate::history::TableHistory;
use crate::keys::S3Location;
use crate::layout::meta;
use crate::ranges::push_range;
use crate::store::{list_all, list_all_after, ObjectInfo, Store, WriteOptions};

use super::compare::{compare, KeptAside};
use super::incremental::{self, Existence, Proof};
use super::report::{rfc3339, time_of_ms, Severity, TableReport};
use super::state::{self, LiveSet, Point, StateHeader, TableState, STATE_FORMAT};
use super::{log_version, Proving, Queue, Verifier};

const READ_CONCURRENCY: usize = 32;
const HEAD_CONCURRENCY: usize = 16;

/// What a full proof knows beyond its report and history.
pub(super) struct ProvenFull {
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
    pub conflicts: usize,
    pub diverged: bool,
    pub now_ms: i64,
}

impl ProvenFull {
    /// The state a full proof leaves: clean only when the newest version is restorable and
    /// nothing needs attention.
    pub fn state(&self, history: &TableHistory, report: &TableReport) -> TableState {
        let latest = history.latest_version();
        let newest = report.newest_restorable_version;
        let clean = !self.diverged
            && newest.is_some()
            && newest == latest
            && report.findings.iter().all(|f| f.severity == Severity::Info);
        let mut live = LiveSet::default();
        if clean {
            let latest = latest.expect("clean means a newest version");
            for need in history.needs.iter().filter(|n| n.last == latest) {
                live.insert(&need.path, need.size, need.exact);
            }
        }
        let point = |version: Option<u64>, ms: Option<i64>, time: &Option<String>| {
            version.map(|version| Point {
                version,
                time: time.clone(),
                time_ms: ms,
            })
        };
        TableState {
            header: StateHeader {
                format: STATE_FORMAT,
                table: report.table.clone(),
                proven_version: latest.unwrap_or(0),
                proven_at_ms: self.now_ms,
                full_proof_at_ms: self.now_ms,
                clean,
                restorable: history.ranges(true),
                unrestorable: report.unrestorable_versions.clone(),
                oldest_restorable: point(
                    report.oldest_restorable_version,
                    self.oldest_ms,
                    &report.oldest_restorable_commit_time,
                ),
                newest_restorable: point(
                    newest,
                    self.newest_ms,
                    &report.newest_restorable_commit_time,
                ),
                conflicts: self.conflicts,
                backup_objects: history.listing.len() as u64,
            },
            live,
        }
    }
}

impl<S: Store, Q: Queue> Verifier<S, Q> {
    /// Verifies `table` as `proving` says, reading and writing its state.
    pub async fn verify_proving(
        &self,
        table: &S3Location,
        proving: Proving,
    ) -> Result<TableReport> {
        if proving == Proving::Stateless {
            return self.verify_table(table).await;
        }
        let now = Utc::now();
        let key = state::state_key(self.config.layout(), table);
        let saved = match proving {
            Proving::Incremental => self.read_state(&key).await,
            _ => None,
        };
        let plan = incremental::plan(
            saved.as_ref().map(|s| &s.header),
            &table.to_string(),
            now.timestamp_millis(),
            self.settings.full_proof_hours,
            proving == Proving::Incremental,
        );
        if let (Proof::Incremental, Some(saved)) = (&plan, saved) {
            match self.verify_incremental(table, saved, now).await? {
                Ok((report, proven)) => {
                    self.write_state(&key, &proven).await;
                    return Ok(report);
                }
                Err(why) => {
                    tracing::info!(table = %table, why = %why, "a full proof follows");
                }
            }
        } else if let Proof::Full(why) = &plan {
            tracing::info!(table = %table, why = %why, "full proof");
        }
        let (report, proven) = self.verify_table_full(table).await?;
        self.write_state(&key, &proven).await;
        Ok(report)
    }

    /// The saved state, if there is a usable one (a damaged one means a full proof).
    async fn read_state(&self, key: &str) -> Option<TableState> {
        match self.store.get(&self.config.backup_bucket, key, None).await {
            Ok(Some(body)) => match TableState::decode(&body) {
                Ok(state) => state,
                Err(err) => {
                    tracing::warn!(key, error = %err, "unreadable verifier state; a full proof follows");
                    None
                }
            },
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(key, error = %err, "could not read the verifier state; a full proof follows");
                None
            }
        }
    }

    /// Writes the state; a failure only costs the next run a full proof.
    async fn write_state(&self, key: &str, state: &TableState) {
        let body = match state.encode() {
            Ok(body) => Bytes::from(body),
            Err(err) => {
                tracing::warn!(key, error = %err, "could not encode the verifier state");
                return;
            }
        };
        let options = WriteOptions {
            content_type: Some("application/gzip".into()),
            kms_key_id: self.config.kms_key_id.clone(),
            ..WriteOptions::default()
        };
        if let Err(err) = self
            .store
            .put(&self.config.backup_bucket, key, body, &options)
            .await
        {
            tracing::warn!(key, error = %err, "could not write the verifier state; the next run makes a full proof");
        }
    }

    /// The incremental run (see the module doc): the report and the new state, or why a full
    /// proof is needed.
    async fn verify_incremental(
        &self,
        table: &S3Location,
        saved: TableState,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(TableReport, TableState), String>> {
        let layout = self.config.layout();
        let backup = layout.location(table);
        let bucket = &backup.bucket;
        let proven = saved.header.proven_version;
        let log_prefix = backup.key("_delta_log/");
        let after = backup.key(&commit_path(proven));
        let conflicts_prefix = layout.table_conflicts_prefix(table);
        let (new_log, source, conflicts) = futures::try_join!(
            list_all_after(&self.store, bucket, &log_prefix, &after),
            TableListing::load(&self.store, table),
            list_all(&self.store, &self.config.backup_bucket, &conflicts_prefix),
        )?;
        if conflicts.len() != saved.header.conflicts {
            return Ok(Err(
                "the replicator kept new conflicting content aside".into()
            ));
        }
        let names = new_log
            .iter()
            .filter_map(|o| o.key.strip_prefix(&log_prefix));
        let versions = match incremental::new_log(proven, names) {
            Ok(v) => v,
            Err(why) => return Ok(Err(why)),
        };

        // Read the new commits, and only those.
        let root = table_url(&backup)?;
        let bodies: Vec<(u64, Result<Option<Bytes>>)> = stream::iter(versions)
            .map(|v| {
                let key = backup.key(&commit_path(v));
                async move { (v, self.store.get(bucket, &key, None).await) }
            })
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut commits = Vec::new();
        let mut newest_logged = None;
        let mut newest_ict = None;
        for (v, body) in bodies {
            let body = body?;
            let commit = body.as_ref().and_then(|b| parse_commit(&root, v, b).ok());
            newest_logged = commit.as_ref().and_then(|c| c.timestamp_ms);
            newest_ict = body.as_deref().and_then(in_commit_timestamp);
            commits.push((v, commit));
        }
        let mut live = saved.live;
        let extension = match incremental::extend(&mut live, proven, commits) {
            Ok(e) => e,
            Err(why) => return Ok(Err(why)),
        };

        // The backup holds every file the new versions need.
        let mut found: Vec<ObjectInfo> = Vec::new();
        match incremental::existence_check(extension.needs.len(), saved.header.backup_objects) {
            Existence::Heads => {
                let heads: Vec<Result<Option<ObjectInfo>>> = stream::iter(&extension.needs)
                    .map(|need| {
                        let key = backup.key(&need.path);
                        async move {
                            let head = self.store.head(bucket, &key, None).await?;
                            Ok(head.map(|h| ObjectInfo { key, ..h }))
                        }
                    })
                    .buffered(HEAD_CONCURRENCY)
                    .collect()
                    .await;
                for (need, head) in extension.needs.iter().zip(heads) {
                    match head? {
                        Some(h) if need.met_by(h.size) => found.push(h),
                        _ => {
                            return Ok(Err(format!(
                                "the backup lacks {} (or holds another size)",
                                need.path
                            )))
                        }
                    }
                }
            }
            Existence::Listing => {
                let listing = TableListing::load(&self.store, &backup).await?;
                for need in &extension.needs {
                    match listing.get(&need.path) {
                        Some(l) if need.met_by(l.size) => found.push(listing.object(&need.path, l)),
                        _ => {
                            return Ok(Err(format!(
                                "the backup lacks {} (or holds another size)",
                                need.path
                            )))
                        }
                    }
                }
            }
        }

        // The source: its log, the files its newest version needs, and its new files against
        // the backup's copies.
        let source_log = source.log();
        if let Some(why) = incremental::source_escalation(&source_log, extension.latest) {
            return Ok(Err(why));
        }
        if let Some(why) = incremental::live_missing_in_source(&live, &source) {
            return Ok(Err(why));
        }
        let needed: HashSet<&str> = extension.needs.iter().map(|n| n.path.as_str()).collect();
        let wanted =
            |path: &str| log_version(path).is_some_and(|v| v > proven) || needed.contains(path);
        let source_new = TableListing::from_objects(
            source.prefix(),
            source
                .iter()
                .filter(|(path, _)| wanted(path))
                .map(|(path, listed)| source.object(path, listed)),
        )?;
        let backup_new =
            TableListing::from_objects(&backup.dir_prefix(), new_log.into_iter().chain(found))?;
        let cutoff = now - chrono::Duration::seconds(self.settings.grace_seconds as i64);
        let mut comparison = compare(
            &source_new,
            &backup_new,
            &KeptAside::new(&conflicts_prefix, &conflicts),
            |k| self.config.selects(k),
            cutoff,
        );
        comparison.stale_hints_are_missing();
        if !comparison.missing.is_empty() || !comparison.corrupted.is_empty() {
            return Ok(Err(
                "the source holds new files the backup lacks or holds otherwise".into(),
            ));
        }
        let undecided = std::mem::take(&mut comparison.undecided);
        if !self.resolve_undecided(table, undecided).await?.is_empty() {
            return Ok(Err("a new source file differs from its backup copy".into()));
        }

        // The report, from the state and what this run proved.
        let mut header = saved.header;
        let newest = if extension.latest > proven {
            let ms = match newest_ict {
                Some(ict) => Some(ict),
                None => self
                    .recorded_time_ms(&backup, extension.latest)
                    .await?
                    .or(newest_logged),
            };
            Some(Point {
                version: extension.latest,
                time: ms.and_then(time_of_ms).map(rfc3339),
                time_ms: ms,
            })
        } else {
            header.newest_restorable.clone()
        };
        let now_ms = now.timestamp_millis();
        let mut report = TableReport::empty(table);
        report.latest_backup_version = Some(extension.latest);
        report.oldest_restorable_version = header.oldest_restorable.as_ref().map(|p| p.version);
        report.oldest_restorable_commit_time = header
            .oldest_restorable
            .as_ref()
            .and_then(|p| p.time.clone());
        report.newest_restorable_version = newest.as_ref().map(|p| p.version);
        report.newest_restorable_commit_time = newest.as_ref().and_then(|p| p.time.clone());
        report.rpo_seconds = newest
            .as_ref()
            .and_then(|p| p.time_ms)
            .map(|t| ((now_ms - t) / 1000).max(0));
        if let (Some(s), Some(n)) = (source_log.latest_version(), &newest) {
            report.lag_versions = Some(s as i64 - n.version as i64);
        }
        report.unrestorable_versions = header.unrestorable.clone();
        let healing = "none: the run found none missing";
        report.findings =
            comparison.findings(table, self.settings.grace_seconds, healing, |_| false);
        report.findings.sort_by_key(|f| f.severity);

        if extension.latest > proven {
            push_range(&mut header.restorable, proven + 1, extension.latest);
        }
        header.backup_objects += (extension.needs.len() + backup_new.len()) as u64;
        header.proven_version = extension.latest;
        header.proven_at_ms = now_ms;
        header.newest_restorable = newest;
        tracing::info!(table = %table, from = proven, to = extension.latest, "table verified incrementally");
        Ok(Ok((report, TableState { header, live })))
    }

    /// The source modification time recorded on the backup's copy of commit `version`, to
    /// the second (what Delta's file-time rule uses when a commit has no in-commit timestamp).
    async fn recorded_time_ms(&self, backup: &S3Location, version: u64) -> Result<Option<i64>> {
        let head = self
            .store
            .head(&backup.bucket, &backup.key(&commit_path(version)), None)
            .await?;
        Ok(head.and_then(|h| {
            h.metadata
                .get(meta::SOURCE_LAST_MODIFIED)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis().div_euclid(1000) * 1000)
        }))
    }
}

/// A commit's in-commit timestamp, if it has one.
fn in_commit_timestamp(body: &[u8]) -> Option<i64> {
    std::str::from_utf8(body).ok()?.lines().find_map(|line| {
        if !line.contains("\"commitInfo\"") {
            return None;
        }
        let action: Value = serde_json::from_str(line).ok()?;
        action["commitInfo"]["inCommitTimestamp"].as_i64()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_commit_timestamps() {
        let with = b"{\"commitInfo\":{\"timestamp\":5,\"inCommitTimestamp\":7}}\n{\"add\":{}}\n";
        assert_eq!(super::in_commit_timestamp(with), Some(7));
        assert_eq!(
            super::in_commit_timestamp(b"{\"commitInfo\":{\"timestamp\":5}}"),
            None
        );
    }
}
