//! CloudWatch Embedded Metric Format: one JSON line per flush, which CloudWatch Logs turns into
//! metrics without any API call from the function.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "Lifeboat";

static TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends metric lines to standard error from now on: the CLI keeps standard output for the
/// JSON it prints.
pub fn emit_to_stderr() {
    TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A set of metrics sharing the same dimensions, printed as one EMF line.
#[derive(Debug, Clone, Default)]
pub struct Emf {
    dimensions: BTreeMap<String, String>,
    values: BTreeMap<String, (f64, &'static str)>,
}

impl Emf {
    pub fn new(dimensions: &[(&str, &str)]) -> Self {
        Emf {
            dimensions: dimensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            values: BTreeMap::new(),
        }
    }

    /// Adds `value` to the metric `name` (created at zero).
    pub fn add(&mut self, name: &str, value: f64, unit: &'static str) {
        let entry = self.values.entry(name.to_string()).or_insert((0.0, unit));
        entry.0 += value;
    }

    /// Sets the metric `name` to `value`.
    pub fn set(&mut self, name: &str, value: f64, unit: &'static str) {
        self.values.insert(name.to_string(), (value, unit));
    }

    /// Keeps the largest value seen for `name`.
    pub fn max(&mut self, name: &str, value: f64, unit: &'static str) {
        let entry = self.values.entry(name.to_string()).or_insert((value, unit));
        entry.0 = entry.0.max(value);
    }

    pub fn get(&self, name: &str) -> f64 {
        self.values.get(name).map(|v| v.0).unwrap_or(0.0)
    }

    /// The EMF document.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let metrics: Vec<Value> = self
            .values
            .iter()
            .map(|(name, (_, unit))| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [self.dimensions.keys().collect::<Vec<_>>()],
                    "Metrics": metrics,
                }],
            }),
        );
        for (k, v) in &self.dimensions {
            doc.insert(k.clone(), Value::String(v.clone()));
        }
        for (name, (value, _)) in &self.values {
            doc.insert(name.clone(), json!(value));
        }
        Value::Object(doc)
    }

    /// Prints the EMF line on standard output, where the Lambda runtime sends it to CloudWatch.
    pub fn emit(&self) {
        if self.values.is_empty() {
            return;
        }
        let line = self.to_json(chrono::Utc::now().timestamp_millis());
        if TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let mut emf = Emf::new(&[("Function", "replicate")]);
        emf.add("ObjectsCopied", 1.0, "Count");
        emf.add("ObjectsCopied", 2.0, "Count");
        emf.max("CopyLagMs", 5.0, "Milliseconds");
        emf.max("CopyLagMs", 3.0, "Milliseconds");
        let doc = emf.to_json(1000);
        assert_eq!(doc["ObjectsCopied"], json!(3.0));
        assert_eq!(doc["CopyLagMs"], json!(5.0));
        assert_eq!(doc["Function"], json!("replicate"));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            json!("Lifeboat")
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
    }
}
