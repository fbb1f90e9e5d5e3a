//! The invoke payload, and the checks that turn it into a restore Lifeboat can carry out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::S3Location;

/// How the table comes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In place, as a new commit whose snapshot equals the restore point.
    #[default]
    Rollback,
    /// Into an empty location, with history up to the restore point.
    Clone,
    /// In place, byte for byte, no new commit.
    Repair,
}

/// The invoke payload.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub table: String,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub mode: Mode,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "default_dry_run")]
    pub dry_run: bool,
    /// Clone only: register the clone in the Glue Data Catalog as `database.table` (a
    /// database of `LIFEBOAT_GLUE_DATABASES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    /// Set by the restorer on the follow-up invocations of a long restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<u32>,
}

fn default_dry_run() -> bool {
    true
}

const PAYLOAD_SHAPE: &str = r#"{"table": "s3://bucket/path/to/table", "mode": "rollback" | "clone" | "repair", "version": 42 | "timestamp": "2026-11-20T10:00:00Z" (optional, default: newest restorable), "target": "s3://bucket/new/path" (clone only), "register": "database.table" (clone only: a Glue entry for the clone), "dry_run": true (default)}"#;

impl RestoreRequest {
    /// Parses an invoke payload, with errors that show what is expected.
    pub fn from_value(value: &Value) -> Result<Self> {
        if !value.is_object() {
            return Err(Error::bad_input(format!(
                "the restore payload must be a JSON object like {PAYLOAD_SHAPE}"
            )));
        }
        if value.get("mode").is_none() {
            return Err(Error::bad_input(format!(
                "missing field `mode`: say how to restore, one of rollback (in place, as a new commit), clone (into an empty target) or repair (put back missing or damaged files). Payload: {PAYLOAD_SHAPE}"
            )));
        }
        serde_json::from_value(value.clone()).map_err(|e| {
            Error::bad_input(format!(
                "bad restore payload: {e}. Expected {PAYLOAD_SHAPE}"
            ))
        })
    }
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub source: S3Location,
    pub target: S3Location,
    pub timestamp: Option<DateTime<Utc>>,
}

pub fn resolve(request: &RestoreRequest, config: &Config) -> Result<Resolved> {
    let source =
        S3Location::parse(&request.table).map_err(|e| Error::bad_input(format!("table: {e}")))?;
    if source.prefix.is_empty() {
        return Err(Error::bad_input(format!(
            "table {} names a whole bucket; give the table's location, s3://bucket/path/to/table",
            request.table
        )));
    }
    if !config.is_source_bucket(&source.bucket) {
        return Err(Error::bad_input(format!(
            "table {} is not in a protected source bucket (LIFEBOAT_SOURCE_BUCKETS: {})",
            source,
            config.source_buckets.join(", ")
        )));
    }
    if request.version.is_some() && request.timestamp.is_some() {
        return Err(Error::bad_input("give `version` or `timestamp`, not both"));
    }
    let timestamp = match &request.timestamp {
        None => None,
        Some(text) => Some(parse_timestamp(text)?),
    };
    let target = match (request.mode, &request.target) {
        (Mode::Clone, None) => {
            return Err(Error::bad_input(
                "mode clone needs `target`: an empty location such as s3://bucket/restored/table",
            ))
        }
        (Mode::Clone, Some(target)) => {
            let target =
                S3Location::parse(target).map_err(|e| Error::bad_input(format!("target: {e}")))?;
            if target.bucket == config.backup_bucket {
                return Err(Error::bad_input("target must not be in the backup bucket: nothing writes there but the replicator"));
            }
            if !config.is_source_bucket(&target.bucket) {
                return Err(Error::bad_input(format!(
                    "target {target} is not in a protected source bucket (LIFEBOAT_SOURCE_BUCKETS: {}): clone into one of them, where the restorer may write and the clone is backed up in turn",
                    config.source_buckets.join(", ")
                )));
            }
            let inside = |a: &S3Location, b: &S3Location| {
                a.bucket == b.bucket
                    && (a.prefix == b.prefix
                        || a.prefix.starts_with(&b.dir_prefix())
                        || b.prefix.is_empty())
            };
            if inside(&target, &source) || inside(&source, &target) {
                return Err(Error::bad_input(format!(
                    "target {target} overlaps the table {source}; clone into a separate location (or use rollback/repair to restore in place)"
                )));
            }
            target
        }
        (mode, Some(_)) => {
            return Err(Error::bad_input(format!(
                "`target` is only for clone; {} restores the table in place",
                serde_json::to_value(mode)?.as_str().unwrap_or("this mode")
            )))
        }
        (_, None) => source.clone(),
    };
    Ok(Resolved {
        source,
        target,
        timestamp,
    })
}

/// The timestamp forms a restore accepts, as Delta's `TIMESTAMP AS OF` reads them: RFC 3339
/// (`2026-11-20T10:00:00Z`, `2026-11-20T11:00:00.250+01:00`); a date and time without a zone,
/// in UTC (`2026-11-20 10:00:00`, `2026-11-20T10:00:00.250`); a bare date, the START of that
/// day in UTC (`2026-11-20` is `2026-11-20T00:00:00Z`).
pub(crate) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(Error::bad_input(format!(
        "timestamp {text:?} is not a time: use RFC 3339 (2026-11-20T10:00:00Z), a UTC date and time (2026-11-20 10:00:00) or a date (2026-11-20, the start of that day in UTC)"
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn config() -> Config {
        let vars: HashMap<&str, &str> = [
            ("LIFEBOAT_BACKUP_BUCKET", "backup"),
            ("LIFEBOAT_SOURCE_BUCKETS", "src"),
        ]
        .into();
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn error_of(payload: Value) -> String {
        match RestoreRequest::from_value(&payload) {
            Err(e) => e.to_string(),
            Ok(request) => resolve(&request, &config())
                .expect_err("should be refused")
                .to_string(),
        }
    }

    #[test]
    fn payload_defaults_to_a_dry_run() {
        let r = RestoreRequest::from_value(&json!({"table": "s3://src/t", "mode": "rollback"}))
            .unwrap();
        assert!(r.dry_run);
        assert_eq!(r.mode, Mode::Rollback);
    }

    #[test]
    fn payload_errors_say_what_is_possible() {
        let cases = [
            (
                json!({"table": "s3://src/t", "mode": "rollback", "versoin": 3}),
                "unknown field `versoin`",
            ),
            (json!({"table": "s3://src/t"}), "missing field `mode`"),
            (json!({"mode": "clone"}), "missing field `table`"),
            (
                json!({"table": "s3://src/t", "mode": "undo"}),
                "unknown variant `undo`",
            ),
            (
                json!({"table": "s3://src/t", "mode": "rollback", "version": "three"}),
                "invalid type",
            ),
            (json!("rollback"), "must be a JSON object"),
            (
                json!({"table": "src/t", "mode": "rollback"}),
                "expected s3://bucket/path",
            ),
            (
                json!({"table": "s3://other/t", "mode": "rollback"}),
                "not in a protected source bucket",
            ),
            (
                json!({"table": "s3://src", "mode": "rollback"}),
                "names a whole bucket",
            ),
            (
                json!({"table": "s3://src/t", "mode": "rollback", "version": 1, "timestamp": "2026-01-01T00:00:00Z"}),
                "not both",
            ),
            (
                json!({"table": "s3://src/t", "mode": "rollback", "timestamp": "yesterday"}),
                "RFC 3339",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone"}),
                "needs `target`",
            ),
            (
                json!({"table": "s3://src/t", "mode": "repair", "target": "s3://src/u"}),
                "only for clone",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone", "target": "s3://src/t/copy"}),
                "overlaps",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone", "target": "s3://backup/x"}),
                "backup bucket",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone", "target": "s3://elsewhere/x"}),
                "target s3://elsewhere/x is not in a protected source bucket (LIFEBOAT_SOURCE_BUCKETS: src)",
            ),
            (
                json!({"table": "s3://src/t", "mode": "clone", "target": "s3://src-old/t"}),
                "target s3://src-old/t is not in a protected source bucket",
            ),
        ];
        let outside = RestoreRequest::from_value(
            &json!({"table": "s3://src/t", "mode": "clone", "target": "s3://elsewhere/x"}),
        )
        .unwrap();
        let refused = resolve(&outside, &config()).expect_err("a target outside the sources");
        assert_eq!(refused.kind(), "Lifeboat.BadInput");
        for (payload, expected) in cases {
            let message = error_of(payload.clone());
            assert!(
                message.contains(expected),
                "{payload}: {message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn timestamps_read_as_delta_reads_them() {
        let cases = [
            ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00.000Z"),
            ("2026-11-20T11:00:00.250+01:00", "2026-11-20T10:00:00.250Z"),
            ("2026-11-20 10:00:00", "2026-11-20T10:00:00.000Z"),
            ("2026-11-20 10:00:00.5", "2026-11-20T10:00:00.500Z"),
            ("2026-11-20T10:00:00", "2026-11-20T10:00:00.000Z"),
            // A bare date is the start of that day, UTC (not its end).
            ("2026-11-30", "2026-11-30T00:00:00.000Z"),
            (" 2026-11-30 ", "2026-11-30T00:00:00.000Z"),
        ];
        for (text, expected) in cases {
            let t = parse_timestamp(text).unwrap();
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                expected,
                "{text}"
            );
        }
        for bad in ["yesterday", "2026-11-31", "20261120", "2026-11-20 25:00:00"] {
            let err = parse_timestamp(bad).unwrap_err().to_string();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }
}
