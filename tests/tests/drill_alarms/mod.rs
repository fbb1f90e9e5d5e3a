//! Which alarm each drilled disaster fires, from what the functions actually emitted.
//!
//! The alarms are the backup template's own (`AWS::CloudWatch::Alarm` resources resolved with
//! default parameters by infra/lifeboat_infra.py: metric, dimensions, statistic, threshold,
//! comparison); infra/alarms.json (the contract) maps each disaster to the alarms it should
//! fire and each critical finding kind to its alarm. The metrics are the EMF lines the
//! `verify` and `replicate` functions printed during the drill (their cargo lambda logs).
//!
//! For each drill: every critical finding the verifier reported maps to its alarm, which must
//! be one the contract names for the disaster, and the verifier's emitted `CriticalFindings`
//! document must trip it; each disaster's finding alarms include at least one that fires; the
//! replicator's alarms (deletion spike, conflicts) are evaluated on its emitted sums, and the
//! deletion spike, whose threshold is a deployment parameter, is reported against the default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use lifeboat_tests::drill::Drill;
use lifeboat_tests::drill_lambda::LambdaFunction;
use lifeboat_tests::{repo_root, venv_bin};
use serde_json::Value;

/// The template's alarms, resolved with default parameters.
const RESOLVE_ALARMS: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1] + "/infra")
import lifeboat_infra as infra
resources = infra.synthetic_context(
    infra.load_template(infra.BACKUP_TEMPLATE), account="123456789012", region="us-east-1",
    stack_name="lifeboat",
    parameters={"SourceBucketNames": "lake", "CodeBucket": "artifacts", "SourceAccountId": "111111111111",
                "ReplicateCodeVersion": "v1", "VerifyCodeVersion": "v1", "RestoreCodeVersion": "v1"},
).resources()
print(json.dumps({k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}))
"#;

/// Where a function's log stands now: what it prints from here on belongs to what follows.
pub fn mark(function: &LambdaFunction) -> u64 {
    std::fs::metadata(&function.log)
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The EMF documents of one function from a mark on.
#[derive(Debug, Default)]
pub struct Emitted(Vec<Value>);

impl Emitted {
    fn read(log: &Path, from: u64) -> Self {
        let bytes = std::fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
        Emitted(
            text.lines()
                .filter_map(|l| l.find('{').map(|i| &l[i..]))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v.get("_aws").is_some())
                .collect(),
        )
    }

    /// What `function` printed since `from`, once `until` holds (the log is written a moment
    /// after the invocation answers), or after a few seconds.
    pub async fn since(
        function: &LambdaFunction,
        from: u64,
        until: impl Fn(&Emitted) -> bool,
    ) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let emitted = Self::read(&function.log, from);
            if until(&emitted) || Instant::now() > deadline {
                return emitted;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The values of `metric` in the documents with exactly `dimensions`.
    fn values(&self, metric: &str, dimensions: &BTreeMap<String, String>) -> Vec<f64> {
        self.0
            .iter()
            .filter(|doc| {
                let names: BTreeSet<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                names == dimensions.keys().map(String::as_str).collect()
                    && dimensions.iter().all(|(k, v)| doc[k] == v.as_str())
            })
            .filter_map(|doc| doc[metric].as_f64())
            .collect()
    }
}

/// A verify run (the scheduled event) and the metrics it emitted.
pub async fn verify_with_metrics(drill: &Drill) -> Result<(Value, Emitted)> {
    let from = mark(&drill.verify);
    let report = drill.verify_scheduled().await?;
    let total: BTreeMap<String, String> = [("Function".to_string(), "verify".to_string())].into();
    let emitted = Emitted::since(&drill.verify, from, |e| {
        !e.values("CriticalFindings", &total).is_empty()
    })
    .await;
    Ok((report, emitted))
}

struct Alarm {
    metric: String,
    dimensions: BTreeMap<String, String>,
    statistic: String,
    threshold: f64,
    comparison: String,
}

impl Alarm {
    fn of(props: &Value) -> Result<Self> {
        let number = |v: &Value| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        Ok(Alarm {
            metric: props["MetricName"].as_str().context("MetricName")?.into(),
            dimensions: props["Dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    (
                        d["Name"].as_str().unwrap_or_default().to_string(),
                        d["Value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            statistic: props["Statistic"].as_str().context("Statistic")?.into(),
            threshold: number(&props["Threshold"]).context("Threshold")?,
            comparison: props["ComparisonOperator"]
                .as_str()
                .context("ComparisonOperator")?
                .into(),
        })
    }

    /// The statistic over the run's data points (one period), `None` without any.
    fn statistic_of(&self, emitted: &Emitted) -> Option<f64> {
        let values = emitted.values(&self.metric, &self.dimensions);
        if values.is_empty() {
            return None;
        }
        Some(match self.statistic.as_str() {
            "Sum" => values.iter().sum(),
            "Maximum" => values.iter().cloned().fold(f64::MIN, f64::max),
            "Minimum" => values.iter().cloned().fold(f64::MAX, f64::min),
            _ => values.iter().sum::<f64>() / values.len() as f64,
        })
    }

    fn trips(&self, value: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => value >= self.threshold,
            "GreaterThanThreshold" => value > self.threshold,
            "LessThanThreshold" => value < self.threshold,
            "LessThanOrEqualToThreshold" => value <= self.threshold,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .filter(|(k, _)| k.as_str() != "Function" || self.dimensions.len() == 1)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let op = match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => "≥",
            "GreaterThanThreshold" => ">",
            "LessThanThreshold" => "<",
            _ => "≤",
        };
        format!(
            "{} {} {} {op} {}",
            self.metric,
            dims.join(","),
            self.statistic,
            self.threshold
        )
    }
}

fn template_alarms() -> Result<Value> {
    let out = std::process::Command::new(venv_bin("python"))
        .args(["-c", RESOLVE_ALARMS])
        .arg(repo_root())
        .current_dir(std::env::temp_dir())
        .output()
        .context("resolving the backup template's alarms")?;
    ensure!(
        out.status.success(),
        "resolving the template's alarms: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn contract() -> Result<Value> {
    let text = std::fs::read_to_string(repo_root().join("infra/alarms.json"))?;
    Ok(serde_json::from_str(&text)?)
}

/// Prints the alarm each of `disasters` (keys of infra/alarms.json `disasters`) fires, from
/// the critical findings in `tables` (the verifier's table reports of the run) and the
/// metrics the verifier (`verify`) and the replicator (`replicate`, since the disaster)
/// emitted, and checks them against the contract and the template.
pub fn show_alarms(
    drill: &Drill,
    disasters: &[&str],
    tables: &[&Value],
    verify: &Emitted,
    replicate: &Emitted,
) -> Result<()> {
    let contract = contract()?;
    let template = template_alarms()?;
    let alarm = |id: &str| -> Result<Alarm> {
        Alarm::of(
            template
                .get(id)
                .with_context(|| format!("{id} is not in the backup template"))?,
        )
    };
    let finding_alarms: BTreeSet<String> = contract["findings"]
        .as_object()
        .context("findings")?
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();

    // What the contract says these disasters fire.
    let mut expected: Vec<(String, &str)> = Vec::new();
    for disaster in disasters {
        let entry = contract["disasters"]
            .get(*disaster)
            .with_context(|| format!("{disaster} is not in infra/alarms.json disasters"))?;
        for id in entry["alarms"].as_array().into_iter().flatten() {
            let id = id.as_str().context("alarm id")?.to_string();
            if !expected.iter().any(|(e, _)| *e == id) {
                expected.push((id, disaster));
            }
        }
        if entry["alarms"].as_array().is_none_or(|a| a.is_empty()) {
            drill.say(&format!(
                "alarm: none for {disaster}: {}",
                entry["why"].as_str().unwrap_or("the contract names none")
            ));
        }
    }

    // What the verifier's findings raise: each critical kind's alarm, and the catch-all.
    let mut raised: Vec<(String, String)> = Vec::new();
    for t in tables {
        for f in t["findings"].as_array().into_iter().flatten() {
            if f["severity"] != "critical" {
                continue;
            }
            let kind = f["kind"].as_str().unwrap_or_default().to_string();
            let id = contract["findings"][&kind]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| "CriticalFindingsAlarm".to_string());
            for id in [id, "CriticalFindingsAlarm".to_string()] {
                if !raised.iter().any(|(r, _)| *r == id) {
                    raised.push((id, kind.clone()));
                }
            }
        }
    }
    for (id, kind) in &raised {
        ensure!(
            expected.iter().any(|(e, _)| e == id),
            "the verifier reported {kind}, which raises {id}, but infra/alarms.json does not name {id} for {disasters:?}"
        );
    }

    let mut fired: BTreeSet<String> = BTreeSet::new();
    for (id, disaster) in &expected {
        let a = alarm(id)?;
        let from_verify = a.dimensions.get("Function").map(String::as_str) == Some("verify");
        let emitted = if from_verify { verify } else { replicate };
        let value = a.statistic_of(emitted);
        let fires = value.is_some_and(|v| a.trips(v));
        let value_text = value.map_or("nothing emitted".to_string(), |v| format!("{v} emitted"));
        let because = raised
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, kind)| format!(", for the {kind} finding"))
            .unwrap_or_default();
        if fires {
            fired.insert(id.clone());
            drill.say(&format!(
                "alarm: {id} ({}): {value_text}{because} → fires",
                a.describe()
            ));
        } else if *id == "DeletionSpikeAlarm" {
            // The threshold is the deployment's DeletionSpikeThreshold; the drills delete a
            // handful of objects, a production drop thousands.
            let seen = value.unwrap_or(0.0);
            ensure!(
                seen > 0.0,
                "{disaster}: the replicator emitted no DeletionsSeen, so {id} cannot fire"
            );
            drill.say(&format!(
                "alarm: {id} ({}): {value_text} → fires where DeletionSpikeThreshold ≤ {seen} (the default {} is for production volumes)",
                a.describe(),
                a.threshold
            ));
        } else if raised.iter().any(|(r, _)| r == id) {
            bail!("{id}: the verifier reported the finding but emitted {value_text}, which does not trip {}", a.describe());
        } else if finding_alarms.contains(id) || *id == "CriticalFindingsAlarm" {
            drill.say(&format!(
                "alarm: {id} ({}): {value_text}: named for {disaster}, not raised by this run's findings",
                a.describe()
            ));
        } else {
            bail!(
                "{id} ({}) should fire for {disaster}: {value_text}",
                a.describe()
            );
        }
    }
    // And no other alarm on the verifier's findings trips.
    for (id, props) in template.as_object().context("alarms")? {
        let a = Alarm::of(props)?;
        if a.metric == "CriticalFindings" && !expected.iter().any(|(e, _)| e == id) {
            if let Some(v) = a.statistic_of(verify).filter(|v| a.trips(*v)) {
                bail!("{id} ({}) trips ({v} emitted) but infra/alarms.json does not name it for {disasters:?}", a.describe());
            }
        }
    }
    // Each disaster whose contract names verifier alarms raises at least one of them.
    for disaster in disasters {
        let names: Vec<&str> = contract["disasters"][*disaster]["alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|id| finding_alarms.contains(*id) || *id == "CriticalFindingsAlarm")
            .collect();
        ensure!(
            names.is_empty() || names.iter().any(|id| fired.contains(*id)),
            "{disaster}: none of {names:?} fired"
        );
    }
    Ok(())
}
