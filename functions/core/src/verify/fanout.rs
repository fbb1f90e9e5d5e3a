//! Verification fan-out: with `LIFEBOAT_VERIFY_QUEUE_URL`, the scheduled run discovers the
//! tables and hands them, `LIFEBOAT_VERIFY_TABLES_PER_MESSAGE` at a time, to the verify queue;
//! the verify function consumes that queue (an SQS batch in, an [`SqsBatchResponse`] out) and
//! verifies each table where its proven state allows ([`super::incremental`]).
//!
//! A scheduled run is a *round*, kept under `_lifeboat/reports/rounds/<round>/`:
//! - `manifest.json`: the round's tables, in order (a table's index names its report);
//! - `tables/<index:06>.json`: one report per table, written by whichever invocation verified it;
//! - `aggregated.json`: written once the aggregate report was assembled.
//!
//! `rounds/current.json` names the newest round. The aggregate report (`latest.json` and
//! `<time>.json`, what the metrics and alarms read) is assembled by **the invocation that
//! writes a round's last table report**: each invocation writes its reports, then lists the
//! round's `tables/` (one request per 1,000 tables) and aggregates when every table has one.
//! With S3's strong read-after-write listings, of two invocations finishing together the later
//! lister sees both reports, so a round is always aggregated, sometimes twice (the same
//! result). A round whose messages never all finish (one in the dead-letter queue) is closed
//! by the next scheduled run: its tables without a report count as `verification_failed`, so
//! the alarms fire instead of going quiet.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::keys::S3Location;
use crate::layout::REPORTS_PREFIX;
use crate::store::{list_all, PutResult, Store, WriteOptions};

use super::report::{rfc3339, Finding, FindingKind, Report, Severity, TableReport};
use super::{Proving, Queue, Verifier, TABLE_CONCURRENCY};

/// Where the rounds live.
pub const ROUNDS_DIR: &str = "rounds/";

/// The key of `name` in round `round`.
pub fn round_key(round: &str, name: &str) -> String {
    format!("{REPORTS_PREFIX}{ROUNDS_DIR}{round}/{name}")
}

/// The key naming the newest round.
pub fn current_key() -> String {
    format!("{REPORTS_PREFIX}{ROUNDS_DIR}current.json")
}

/// The key of table `index`'s report in round `round`.
pub fn table_report_key(round: &str, index: usize) -> String {
    round_key(round, &format!("tables/{index:06}.json"))
}

/// A round's id: the time it started (sorts in time order).
pub fn round_id(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H-%M-%S%.3fZ").to_string()
}

/// What a round is to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub round: String,
    /// RFC 3339.
    pub started_at: String,
    /// `s3://` table locations; a table's index is its position.
    pub tables: Vec<String>,
}

/// One message on the verify queue: some tables of a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMessage {
    pub round: String,
    /// `[index, "s3://..."]`.
    pub tables: Vec<(usize, String)>,
}

/// The round's tables in messages of `per_message` tables.
pub fn shards(round: &str, tables: &[String], per_message: usize) -> Vec<ShardMessage> {
    let indexed: Vec<(usize, String)> = tables.iter().cloned().enumerate().collect();
    indexed
        .chunks(per_message.max(1))
        .map(|chunk| ShardMessage {
            round: round.to_string(),
            tables: chunk.to_vec(),
        })
        .collect()
}

/// The round's table reports in manifest order; a table with no report (its message failed
/// every delivery) counts as a failed verification.
pub fn aggregate(manifest: &Manifest, reports: Vec<Option<TableReport>>) -> Vec<TableReport> {
    manifest
        .tables
        .iter()
        .zip(reports.into_iter().chain(std::iter::repeat(None)))
        .map(|(table, report)| match report {
            Some(report) => report,
            None => {
                let mut report = TableReport::empty(&S3Location {
                    bucket: String::new(),
                    prefix: String::new(),
                });
                report.table = table.clone();
                report.findings.push(
                    Finding::new(
                        FindingKind::VerificationFailed,
                        Severity::Critical,
                        format!(
                            "round {} ended without a report for this table: its verify message failed every delivery (see the verify queue's dead-letter queue)",
                            manifest.round
                        ),
                    )
                    .with("retryable", true),
                );
                report
            }
        })
        .collect()
}

impl<S: Store, Q: Queue> Verifier<S, Q> {
    fn json_options(&self) -> WriteOptions {
        WriteOptions {
            content_type: Some("application/json".into()),
            kms_key_id: self.config.kms_key_id.clone(),
            ..WriteOptions::default()
        }
    }

    async fn put_json(&self, key: &str, value: &impl Serialize) -> Result<()> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        match self
            .store
            .put(&self.config.backup_bucket, key, body, &self.json_options())
            .await?
        {
            PutResult::Written { .. } | PutResult::PreconditionFailed => Ok(()),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>> {
        match self
            .store
            .get(&self.config.backup_bucket, key, None)
            .await?
        {
            None => Ok(None),
            Some(body) => Ok(Some(serde_json::from_slice(&body).map_err(|e| {
                Error::bad_input(format!("{key} is not what Lifeboat wrote: {e}"))
            })?)),
        }
    }

    /// The scheduled run with a verify queue: closes the previous round if it never finished,
    /// then starts a new one and sends its tables to the queue. Returns what it did.
    pub async fn dispatch(&self, queue_url: &str) -> Result<Value> {
        let queue = self.queue.as_ref().ok_or_else(|| {
            Error::config(
                "LIFEBOAT_VERIFY_QUEUE_URL",
                "set, but the verifier has no SQS client",
            )
        })?;
        let closed = self.close_previous_round().await?;
        let started = Utc::now();
        let tables = self.tables_to_verify(None).await?;
        let round = round_id(started);
        let manifest = Manifest {
            round: round.clone(),
            started_at: rfc3339(started),
            tables: tables.iter().map(ToString::to_string).collect(),
        };
        self.put_json(&round_key(&round, "manifest.json"), &manifest)
            .await?;
        self.put_json(&current_key(), &json!({"round": round}))
            .await?;
        let messages = shards(&round, &manifest.tables, self.settings.tables_per_message);
        let bodies: Vec<String> = messages
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<_, _>>()?;
        let mut failed = Vec::new();
        for batch in bodies.chunks(10) {
            failed.extend(queue.send_batch(queue_url, batch).await?);
        }
        if !failed.is_empty() {
            return Err(Error::Sqs {
                operation: "SendMessageBatch",
                message: format!(
                    "{} verify message(s) of round {round} were not sent: {}",
                    failed.len(),
                    failed.join("; ")
                ),
                source: None,
            });
        }
        tracing::info!(round = %round, tables = tables.len(), messages = messages.len(), "verify round dispatched");
        if tables.is_empty() {
            // Nothing will arrive to aggregate it: the round is complete now.
            self.aggregate_round(&manifest).await?;
        }
        Ok(json!({
            "round": round,
            "tables": tables.len(),
            "messages": messages.len(),
            "closed_round": closed,
        }))
    }

    /// Aggregates the newest round if no invocation did (some table never reported).
    async fn close_previous_round(&self) -> Result<Option<Value>> {
        let Some(current) = self.get_json::<Value>(&current_key()).await? else {
            return Ok(None);
        };
        let Some(round) = current["round"].as_str() else {
            return Ok(None);
        };
        if self
            .store
            .head(
                &self.config.backup_bucket,
                &round_key(round, "aggregated.json"),
                None,
            )
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let Some(manifest) = self
            .get_json::<Manifest>(&round_key(round, "manifest.json"))
            .await?
        else {
            return Ok(None);
        };
        let report = self.aggregate_round(&manifest).await?;
        tracing::warn!(round = %round, failed = report.summary.failed_tables, "closed a round that never finished");
        Ok(Some(json!({"round": round, "summary": report.summary})))
    }

    /// The verify queue's SQS batch: verifies every table of every message, writes a report
    /// per table, and aggregates each round it finished. A message fails (SQS delivers it
    /// again, then moves it to the dead-letter queue) when it is malformed, a report could not
    /// be written, or a table failed with an error worth retrying.
    pub async fn consume(&self, event: SqsEvent) -> Result<SqsBatchResponse> {
        let mut batch = SqsBatchResponse::default();
        let mut work: Vec<(String, String, usize, S3Location)> = Vec::new();
        for record in &event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let parsed = record
                .body
                .as_deref()
                .ok_or_else(|| "no body".to_string())
                .and_then(|b| serde_json::from_str::<ShardMessage>(b).map_err(|e| e.to_string()))
                .and_then(|m| {
                    m.tables
                        .iter()
                        .map(|(i, t)| {
                            let table = S3Location::parse(t).map_err(|e| e.to_string())?;
                            if !self.config.is_source_bucket(&table.bucket) {
                                return Err(format!("{t}: not in LIFEBOAT_SOURCE_BUCKETS"));
                            }
                            Ok((m.round.clone(), *i, table))
                        })
                        .collect::<std::result::Result<Vec<_>, String>>()
                });
            match parsed {
                Ok(tables) => {
                    work.extend(tables.into_iter().map(|(r, i, t)| (id.clone(), r, i, t)))
                }
                Err(err) => {
                    tracing::error!(message_id = %id, error = %err, "not a verify message");
                    batch.add_failure(id);
                }
            }
        }
        let results: Vec<(String, String, Result<()>)> = stream::iter(work)
            .map(|(id, round, index, table)| async move {
                let report = self.verify_or_report(&table, Proving::Incremental).await;
                let retry = report
                    .finding(FindingKind::VerificationFailed)
                    .is_some_and(|f| {
                        f.data.get("retryable").and_then(Value::as_bool) == Some(true)
                    });
                let written = self
                    .put_json(&table_report_key(&round, index), &report)
                    .await;
                let result = match (written, retry) {
                    (Err(err), _) => Err(err),
                    (Ok(()), true) => Err(Error::bad_input(format!(
                        "{table}: verification failed with an error worth retrying"
                    ))),
                    (Ok(()), false) => Ok(()),
                };
                (id, round, result)
            })
            .buffer_unordered(TABLE_CONCURRENCY)
            .collect()
            .await;
        let mut rounds: Vec<String> = Vec::new();
        for (id, round, result) in results {
            if let Err(err) = result {
                tracing::error!(message_id = %id, error = %err, "verify message failed; SQS will deliver it again");
                if !batch
                    .batch_item_failures
                    .iter()
                    .any(|f| f.item_identifier == id)
                {
                    batch.add_failure(id);
                }
            }
            if !rounds.contains(&round) {
                rounds.push(round);
            }
        }
        for round in rounds {
            if let Err(err) = self.aggregate_if_complete(&round).await {
                // The next finisher, or the next scheduled run, aggregates it.
                tracing::error!(round = %round, error = %err, "could not aggregate the round");
            }
        }
        Ok(batch)
    }

    /// Aggregates `round` when every table has its report.
    async fn aggregate_if_complete(&self, round: &str) -> Result<Option<Report>> {
        let Some(manifest) = self
            .get_json::<Manifest>(&round_key(round, "manifest.json"))
            .await?
        else {
            return Ok(None);
        };
        let written = list_all(
            &self.store,
            &self.config.backup_bucket,
            &round_key(round, "tables/"),
        )
        .await?
        .len();
        if written < manifest.tables.len() {
            return Ok(None);
        }
        Ok(Some(self.aggregate_round(&manifest).await?))
    }

    /// Reads the round's table reports and writes the aggregate report (`latest.json`), prints
    /// its metrics and marks the round aggregated.
    pub async fn aggregate_round(&self, manifest: &Manifest) -> Result<Report> {
        let keys: Vec<String> = (0..manifest.tables.len())
            .map(|i| table_report_key(&manifest.round, i))
            .collect();
        let reports: Vec<Option<TableReport>> = stream::iter(keys)
            .map(|key| async move { self.get_json::<TableReport>(&key).await })
            .buffered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let tables = aggregate(manifest, reports);
        let tables = self.with_catalog_findings(tables, true).await;
        let started = DateTime::parse_from_rfc3339(&manifest.started_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let report = Report::new(started, tables);
        self.write_report(&report).await?;
        for emf in report.metrics(self.config.per_table_metrics) {
            emf.emit();
        }
        self.put_json(
            &round_key(&manifest.round, "aggregated.json"),
            &json!({"round": manifest.round, "aggregated_at": rfc3339(Utc::now()), "summary": report.summary}),
        )
        .await?;
        tracing::info!(round = %manifest.round, tables = report.tables.len(), "round aggregated");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_shard_in_order() {
        let tables: Vec<String> = (0..5).map(|i| format!("s3://src/t{i}")).collect();
        let cases = [
            (1, vec![1, 1, 1, 1, 1]),
            (2, vec![2, 2, 1]),
            (10, vec![5]),
            (0, vec![1; 5]),
        ];
        for (per, sizes) in cases {
            let got = shards("r", &tables, per);
            assert_eq!(
                got.iter().map(|m| m.tables.len()).collect::<Vec<_>>(),
                sizes,
                "{per}"
            );
            let indexes: Vec<usize> = got
                .iter()
                .flat_map(|m| m.tables.iter().map(|t| t.0))
                .collect();
            assert_eq!(indexes, (0..5).collect::<Vec<_>>());
        }
        let message = serde_json::to_value(&shards("r", &tables[..1], 1)[0]).unwrap();
        assert_eq!(
            message,
            json!({"round": "r", "tables": [[0, "s3://src/t0"]]})
        );
    }

    #[test]
    fn a_table_without_a_report_is_a_failed_verification() {
        let manifest = Manifest {
            round: "r1".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            tables: vec!["s3://src/a".into(), "s3://src/b".into()],
        };
        let mut a = TableReport::empty(&S3Location::parse("s3://src/a").unwrap());
        a.newest_restorable_version = Some(3);
        let tables = aggregate(&manifest, vec![Some(a)]);
        let report = Report::new(Utc::now(), tables);
        assert_eq!(report.tables[1].table, "s3://src/b");
        assert!(report.tables[1].failed());
        let s = &report.summary;
        assert_eq!(
            (
                s.tables_verified,
                s.restorable_tables,
                s.failed_tables,
                s.critical_findings
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(
            table_report_key("r1", 7),
            "_lifeboat/reports/rounds/r1/tables/000007.json"
        );
    }
}
