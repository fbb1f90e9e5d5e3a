//! The verifier's catalog pass: capture the Glue definitions of protected tables into the
//! backup, and report captured entries that were dropped or moved.
//!
//! It runs on every verifier run when `LIFEBOAT_GLUE_DATABASES` is set, and on Glue's
//! EventBridge events for the entries they name. The verifier (not the replicator) does it:
//! it already reads the catalog to check it, its role is the one with `glue:Get*`, and the
//! replicator stays a function of S3 events alone with no new permission.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use crate::catalog::decide::{drift, protected_root, Drift};
use crate::catalog::{
    CapturedDefinition, Catalog, CatalogEvent, DefinitionStore, TableDefinition, TableName,
};
use crate::error::Result;
use crate::keys::S3Location;
use crate::store::Store;

use super::report::{Finding, FindingKind, Report, Severity, TableReport};
use super::{Queue, Verifier};

/// What one catalog pass found.
#[derive(Debug, Default)]
pub struct CatalogPass {
    /// Records written this pass.
    pub captured: Vec<String>,
    /// Findings, by the table root (`s3://bucket/path`) they are about.
    pub findings: Vec<(String, Finding)>,
}

/// The finding for an entry that drifted from its newest captured definition.
pub fn drift_finding(captured: &CapturedDefinition, drift: &Drift) -> Finding {
    let name = captured.definition.table_name();
    let root = captured.table_root.clone().unwrap_or_default();
    match drift {
        Drift::Dropped => Finding::new(
            FindingKind::CatalogEntryDropped,
            Severity::Critical,
            format!(
                "the Glue Data Catalog entry {name} (at {root}) is gone: engines that find tables through the catalog (Athena, Glue, EMR, Trino, Redshift Spectrum) no longer see the table. Its definition was captured at {}; `lifeboat restore {root} --mode rollback` registers it again (and brings back the files if they are gone too)",
                captured.captured_at
            ),
        ),
        Drift::LocationChanged { captured: was, current } => Finding::new(
            FindingKind::CatalogLocationChanged,
            Severity::Warning,
            format!(
                "the Glue Data Catalog entry {name} now points at {current}, not at {was} as captured at {}: check that the move was intended; the captured definition is kept in the backup",
                captured.captured_at
            ),
        )
        .with("current_location", current),
    }
    .with("catalog_table", name.to_string())
    .with("captured_at", &captured.captured_at)
    .with("captured_location", captured.definition.location())
}

impl<S: Store, Q: Queue> Verifier<S, Q> {
    /// Checks and captures the catalog entries of `LIFEBOAT_GLUE_DATABASES` with `catalog`.
    pub fn with_catalog(mut self, catalog: Arc<dyn Catalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Captures the current definitions of the protected entries (of `only`, else of every
    /// configured database) and compares the captured ones with the catalog.
    pub async fn catalog_pass(&self, only: Option<&[TableName]>) -> Result<CatalogPass> {
        let mut pass = CatalogPass::default();
        let Some(catalog) = &self.catalog else {
            return Ok(pass);
        };
        let databases = &self.config.glue_databases;
        if databases.is_empty() {
            return Ok(pass);
        }
        let records = DefinitionStore {
            store: &self.store,
            bucket: &self.config.backup_bucket,
            kms_key_id: self.config.kms_key_id.clone(),
        };
        let mut captured: BTreeMap<TableName, CapturedDefinition> = records
            .newest_of_all(databases)
            .await?
            .into_iter()
            .map(|c| (c.definition.table_name(), c))
            .collect();
        let mut current: BTreeMap<TableName, TableDefinition> = BTreeMap::new();
        match only {
            Some(names) => {
                captured.retain(|name, _| names.contains(name));
                for name in names.iter().filter(|n| databases.contains(&n.database)) {
                    if let Some(d) = catalog.get_table(name).await? {
                        current.insert(name.clone(), d);
                    }
                }
            }
            None => {
                for database in databases {
                    for d in catalog.list_tables(database).await? {
                        current.insert(d.table_name(), d);
                    }
                }
            }
        }
        let now = Utc::now();
        for (name, d) in &current {
            if protected_root(d, &self.config.source_buckets).is_some() {
                if let Some(key) = records.capture(d, captured.get(name), now).await? {
                    pass.captured.push(key);
                }
            }
        }
        for (name, record) in &captured {
            if let Some(drift) = drift(&record.definition, current.get(name)) {
                let root = record.table_root.clone().unwrap_or_default();
                pass.findings.push((root, drift_finding(record, &drift)));
            }
        }
        tracing::info!(
            captured = pass.captured.len(),
            findings = pass.findings.len(),
            "catalog checked"
        );
        Ok(pass)
    }

    /// Adds the catalog pass's findings to the tables' reports; a dropped entry whose table is
    /// not among them gets a report of its own when `all` tables were verified. A catalog that
    /// cannot be read is a finding, not a failed run.
    pub(crate) async fn with_catalog_findings(
        &self,
        mut reports: Vec<TableReport>,
        all: bool,
    ) -> Vec<TableReport> {
        if self.catalog.is_none() || self.config.glue_databases.is_empty() {
            return reports;
        }
        let pass = match self.catalog_pass(None).await {
            Ok(pass) => pass,
            Err(err) => {
                tracing::error!(error = %err, "catalog check failed");
                let mut report = TableReport::empty(&S3Location {
                    bucket: self.config.backup_bucket.clone(),
                    prefix: crate::layout::CATALOG_PREFIX.trim_end_matches('/').into(),
                });
                report.table = format!("glue:{}", self.config.glue_databases.join(","));
                report.findings.push(
                    Finding::new(
                        FindingKind::VerificationFailed,
                        Severity::Critical,
                        format!("the Glue Data Catalog could not be checked or captured: {err}"),
                    )
                    .with("retryable", err.is_retryable()),
                );
                reports.push(report);
                return reports;
            }
        };
        attach(&mut reports, pass.findings, all);
        reports
    }

    /// The verifier's answer to a Glue "Table State Change" (or "Database State Change")
    /// event: the named entries are captured if they changed and reported if they were
    /// dropped. The metrics are printed so that a drop pages within minutes; the scheduled
    /// run's report stays the one under `_lifeboat/reports/`.
    pub async fn handle_catalog_event(&self, input: &Value) -> Result<Value> {
        let event = CatalogEvent::parse(input)?;
        let started = Utc::now();
        let pass = self.catalog_pass(Some(&event.tables)).await?;
        let mut reports = Vec::new();
        attach(&mut reports, pass.findings, true);
        let report = Report::new(started, reports);
        for emf in report.critical_findings_metrics() {
            emf.emit();
        }
        tracing::info!(change = %event.change, tables = event.tables.len(),
            captured = pass.captured.len(), "catalog event handled");
        let mut value = serde_json::to_value(&report)?;
        value["catalog_event"] = serde_json::json!({
            "change": event.change,
            "tables": event.tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "captured": pass.captured,
        });
        Ok(value)
    }
}

/// Puts each finding in the report of its table; with `all`, a table without one gets one.
fn attach(reports: &mut Vec<TableReport>, findings: Vec<(String, Finding)>, all: bool) {
    for (root, finding) in findings {
        match reports.iter_mut().find(|r| r.table == root) {
            Some(report) => {
                report.findings.push(finding);
                report.findings.sort_by_key(|f| f.severity);
            }
            None if all => {
                let mut report = match S3Location::parse(&root) {
                    Ok(location) => TableReport::empty(&location),
                    Err(_) => continue,
                };
                report.findings.push(finding);
                reports.push(report);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StorageDefinition;

    fn captured() -> CapturedDefinition {
        CapturedDefinition {
            captured_at: "2026-01-01T00:00:00.000Z".into(),
            table_root: Some("s3://lake/orders".into()),
            definition: TableDefinition {
                database: "sales".into(),
                name: "orders".into(),
                storage: StorageDefinition {
                    location: Some("s3://lake/orders".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            key: String::new(),
        }
    }

    #[test]
    fn findings_by_drift_and_where_they_go() {
        let c = captured();
        let dropped = drift_finding(&c, &Drift::Dropped);
        assert_eq!(
            (dropped.kind, dropped.severity),
            (FindingKind::CatalogEntryDropped, Severity::Critical)
        );
        assert!(
            dropped.detail.contains("--mode rollback"),
            "{}",
            dropped.detail
        );
        assert_eq!(dropped.data["catalog_table"], "sales.orders");
        let moved = drift_finding(
            &c,
            &Drift::LocationChanged {
                captured: "s3://lake/orders".into(),
                current: "s3://lake/x".into(),
            },
        );
        assert_eq!(
            (moved.kind, moved.severity),
            (FindingKind::CatalogLocationChanged, Severity::Warning)
        );

        let table = S3Location::parse("s3://lake/orders").unwrap();
        let cases = [
            (vec![TableReport::empty(&table)], false, 1, 1),
            (vec![], false, 0, 0),
            (vec![], true, 1, 1),
        ];
        for (i, (mut reports, all, n_reports, n_findings)) in cases.into_iter().enumerate() {
            attach(
                &mut reports,
                vec![("s3://lake/orders".into(), dropped.clone())],
                all,
            );
            assert_eq!(reports.len(), n_reports, "case {i}");
            assert_eq!(
                reports.iter().map(|r| r.findings.len()).sum::<usize>(),
                n_findings,
                "case {i}"
            );
        }
        let report = Report::new(Utc::now(), {
            let mut r = vec![TableReport::empty(&table)];
            attach(&mut r, vec![("s3://lake/orders".into(), dropped)], false);
            r
        });
        let metrics: Vec<Value> = report
            .critical_findings_metrics()
            .iter()
            .map(|m| m.to_json(0))
            .collect();
        assert_eq!(metrics[0]["CriticalFindings"], 1.0);
        assert_eq!(metrics[1]["Kind"], "catalog_entry_dropped");
        assert_eq!(metrics[1]["CriticalFindings"], 1.0);
    }
}
