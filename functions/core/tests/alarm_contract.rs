//! The metrics the verifier emits against the alarms of the backup template, as
//! infra/alarms.json (the contract tests/infra/test_alarm_contract.py checks the template
//! against) names them: every alarm on a `Function=verify` metric finds a document with exactly
//! its metric, namespace and dimensions; a critical finding of each alarmed kind trips its own
//! alarm (at least 1) and the catch-all; a run without findings emits 0 for every kind, so the
//! alarms return to OK; per-table documents only when asked for.
//!
//! The replicator's alarmed metrics (`DeletionsSeen`, `Errors`, `Conflicts`) are emitted from
//! its invocation handler: the disaster drills (tests/tests/drills.rs) read them from the
//! replicate function's own EMF lines.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use lifeboat::keys::S3Location;
use lifeboat::metrics::NAMESPACE;
use lifeboat::verify::report::{Finding, FindingKind, Report, Severity, TableReport};
use serde_json::Value;

/// Finding kinds the contract alarms on whose checks may not exist yet: they join
/// `FindingKind::ALARMED` with their variants. Any other kind of the contract must be a
/// variant already.
const PENDING: &[(&str, &str)] = &[("source_object_overwritten", "#13")];

fn is_variant(kind: &str) -> bool {
    serde_json::from_value::<FindingKind>(Value::String(kind.to_string())).is_ok()
}

fn contract() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/alarms.json");
    let text = std::fs::read_to_string(path).expect("infra/alarms.json");
    serde_json::from_str(&text).expect("infra/alarms.json is JSON")
}

/// One emitted metric: its name, its dimensions and its value.
#[derive(Debug)]
struct Datum {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, String>,
    value: f64,
}

/// The EMF documents as CloudWatch reads them: one datum per metric of each document.
fn data(report: &Report, per_table: bool) -> Vec<Datum> {
    let mut all = Vec::new();
    for emf in report.metrics(per_table) {
        let doc = emf.to_json(0);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        let names: Vec<&str> = directive["Dimensions"][0]
            .as_array()
            .expect("one dimension set")
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        let dimensions: BTreeMap<String, String> = names
            .iter()
            .map(|n| (n.to_string(), doc[*n].as_str().unwrap().to_string()))
            .collect();
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            all.push(Datum {
                namespace: directive["Namespace"].as_str().unwrap().to_string(),
                name: name.to_string(),
                dimensions: dimensions.clone(),
                value: doc[name].as_f64().expect("a number"),
            });
        }
    }
    all
}

/// The value of `metric` in the document with exactly `dimensions`.
fn value(data: &[Datum], metric: &str, dimensions: &BTreeMap<String, String>) -> Option<f64> {
    let matching: Vec<&Datum> = data
        .iter()
        .filter(|d| d.name == metric && &d.dimensions == dimensions)
        .collect();
    assert!(
        matching.len() <= 1,
        "{metric} {dimensions:?} emitted twice in one run: {matching:?}"
    );
    matching.first().map(|d| d.value)
}

fn dimensions(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The alarm of each finding kind, with the dimensions its metric carries.
fn finding_alarms(contract: &Value) -> Vec<(String, String, BTreeMap<String, String>)> {
    let template = dimensions(&contract["finding_metric"]["dimensions"]);
    contract["findings"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(kind, alarm)| {
            let mut dims = template.clone();
            dims.insert("Kind".into(), kind.clone());
            (kind.clone(), alarm.as_str().unwrap().to_string(), dims)
        })
        .collect()
}

fn table(name: &str, findings: Vec<Finding>) -> TableReport {
    let mut t = TableReport::empty(&S3Location::parse(name).unwrap());
    t.newest_restorable_version = Some(1);
    t.rpo_seconds = Some(30);
    t.findings = findings;
    t
}

fn critical(kind: FindingKind) -> Finding {
    Finding::new(kind, Severity::Critical, "drilled")
}

#[test]
fn the_contract_is_in_the_namespace_the_functions_emit_to() {
    let contract = contract();
    assert_eq!(contract["namespace"], NAMESPACE);
    assert_eq!(contract["finding_metric"]["metric"], "CriticalFindings");
    assert_eq!(
        contract["per_table_metrics_env"], "LIFEBOAT_PER_TABLE_METRICS",
        "the variable Config reads"
    );
}

#[test]
fn every_alarmed_kind_is_one_the_verifier_reports_and_emits() {
    let contract = contract();
    let alarmed: BTreeSet<String> = FindingKind::ALARMED.iter().map(|k| k.name()).collect();
    let in_contract: BTreeSet<String> = contract["findings"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let checked: BTreeSet<String> = in_contract
        .iter()
        .filter(|k| is_variant(k))
        .cloned()
        .collect();
    assert_eq!(
        alarmed, checked,
        "FindingKind::ALARMED and the kinds of infra/alarms.json `findings` the verifier reports differ"
    );
    for kind in &in_contract - &checked {
        let issue = PENDING.iter().find(|(k, _)| *k == kind);
        assert!(
            issue.is_some(),
            "{kind} is alarmed in infra/alarms.json but is no FindingKind (a typo, or a check to list in PENDING)"
        );
    }
    for (kind, _) in PENDING {
        assert!(
            in_contract.contains(*kind),
            "{kind} is no longer alarmed: drop it from PENDING"
        );
    }
}

#[test]
fn a_critical_finding_of_each_kind_trips_its_alarm_and_the_catch_all() {
    let contract = contract();
    let catch_all = contract["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["alarm"] == "CriticalFindingsAlarm")
        .expect("CriticalFindingsAlarm in the contract");
    let catch_all_dims = dimensions(&catch_all["dimensions"]);
    for (kind, alarm, dims) in finding_alarms(&contract) {
        let Some(kind_enum) = FindingKind::ALARMED.iter().find(|k| k.name() == kind) else {
            continue; // not a FindingKind yet (PENDING), checked above
        };
        let report = Report::new(
            Utc::now(),
            vec![
                table("s3://lake/a", vec![critical(*kind_enum)]),
                table("s3://lake/b", vec![critical(*kind_enum)]),
                table("s3://lake/c", vec![]),
            ],
        );
        let data = data(&report, false);
        for datum in &data {
            assert_eq!(datum.namespace, NAMESPACE);
        }
        assert_eq!(
            value(&data, "CriticalFindings", &dims),
            Some(2.0),
            "{alarm} watches CriticalFindings {dims:?}"
        );
        assert_eq!(
            value(&data, "CriticalFindings", &catch_all_dims),
            Some(2.0),
            "CriticalFindingsAlarm for {kind}"
        );
        // Every other alarmed kind is emitted at 0 in the same run.
        for (other, other_alarm, other_dims) in finding_alarms(&contract) {
            if other != kind && alarmed(&other) {
                assert_eq!(
                    value(&data, "CriticalFindings", &other_dims),
                    Some(0.0),
                    "{other_alarm} in a run that found only {kind}"
                );
            }
        }
    }
}

fn alarmed(kind: &str) -> bool {
    FindingKind::ALARMED.iter().any(|k| k.name() == kind)
}

#[test]
fn a_clean_run_emits_every_verify_alarm_metric_below_its_threshold() {
    let contract = contract();
    let report = Report::new(
        Utc::now(),
        vec![table(
            "s3://lake/a",
            vec![Finding::new(
                FindingKind::ReplicationPending,
                Severity::Info,
                "young",
            )],
        )],
    );
    let data = data(&report, false);
    for metric in contract["metrics"].as_array().unwrap() {
        let dims = dimensions(&metric["dimensions"]);
        if dims.get("Function").map(String::as_str) != Some("verify") {
            continue; // the replicator's: see the module documentation
        }
        let name = metric["metric"].as_str().unwrap();
        let got = value(&data, name, &dims);
        assert!(
            got.is_some(),
            "{} watches {name} {dims:?}, which the verifier does not emit",
            metric["alarm"]
        );
    }
    for (kind, alarm, dims) in finding_alarms(&contract) {
        if alarmed(&kind) {
            assert_eq!(
                value(&data, "CriticalFindings", &dims),
                Some(0.0),
                "{alarm}: a clean run emits 0 so that the alarm clears"
            );
        }
    }
    assert_eq!(
        value(
            &data,
            "UnrestorableTables",
            &dimensions(&serde_json::json!({"Function": "verify"}))
        ),
        Some(0.0)
    );
}

#[test]
fn per_table_documents_only_when_asked_for() {
    let report = Report::new(
        Utc::now(),
        vec![
            table("s3://lake/a", vec![critical(FindingKind::TableDropped)]),
            table("s3://lake/b", vec![]),
        ],
    );
    let aggregate = data(&report, false);
    assert!(
        aggregate
            .iter()
            .all(|d| !d.dimensions.contains_key("Table")),
        "{aggregate:?}"
    );
    let per_table = data(&report, true);
    let tables: BTreeSet<&str> = per_table
        .iter()
        .filter_map(|d| d.dimensions.get("Table").map(String::as_str))
        .collect();
    assert_eq!(tables, BTreeSet::from(["s3://lake/a", "s3://lake/b"]));
    // The aggregates are the same either way.
    let without_tables: Vec<&Datum> = per_table
        .iter()
        .filter(|d| !d.dimensions.contains_key("Table"))
        .collect();
    assert_eq!(without_tables.len(), aggregate.len());
}
