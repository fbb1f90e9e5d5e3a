//! What the verifier is told: its settings beyond the shared [`crate::Config`], and the
//! payload it was invoked with.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::keys::S3Location;

/// How old a source object must be before its absence from the backup counts as missing.
pub const DEFAULT_GRACE_SECONDS: u64 = 15 * 60;

/// Verifier settings beyond the shared [`Config`].
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// `LIFEBOAT_GRACE_SECONDS`: source objects younger than this are pending, not missing.
    pub grace_seconds: u64,
    /// `LIFEBOAT_FULL_PROOF_HOURS`: how often a table's proven state is set aside and every
    /// commit read again (0: every run; [`super::incremental`]).
    pub full_proof_hours: u64,
    /// `LIFEBOAT_VERIFY_QUEUE_URL`: the verify queue the scheduled run fans the tables out to
    /// ([`super::fanout`]); none: every table is verified in the scheduled run itself.
    pub verify_queue_url: Option<String>,
    /// `LIFEBOAT_VERIFY_TABLES_PER_MESSAGE`: tables per verify-queue message.
    pub tables_per_message: usize,
}

/// The default of `LIFEBOAT_FULL_PROOF_HOURS`: a full re-proof a day.
pub const DEFAULT_FULL_PROOF_HOURS: u64 = 24;

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            grace_seconds: DEFAULT_GRACE_SECONDS,
            full_proof_hours: DEFAULT_FULL_PROOF_HOURS,
            verify_queue_url: None,
            tables_per_message: 1,
        }
    }
}

impl VerifySettings {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |name: &'static str, default: u64, unit: &str| -> Result<u64> {
            match lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(default),
                Some(text) => text.replace('_', "").parse::<u64>().map_err(|_| {
                    Error::config(name, format!("{text:?} is not a whole number of {unit}"))
                }),
            }
        };
        let grace_seconds = number("LIFEBOAT_GRACE_SECONDS", DEFAULT_GRACE_SECONDS, "seconds")?;
        let full_proof_hours = number(
            "LIFEBOAT_FULL_PROOF_HOURS",
            DEFAULT_FULL_PROOF_HOURS,
            "hours",
        )?;
        let tables_per_message = number("LIFEBOAT_VERIFY_TABLES_PER_MESSAGE", 1, "tables")?;
        let verify_queue_url = lookup("LIFEBOAT_VERIFY_QUEUE_URL")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Ok(VerifySettings {
            grace_seconds,
            full_proof_hours,
            verify_queue_url,
            tables_per_message: tables_per_message.max(1) as usize,
        })
    }
}

/// What invoked the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyInput {
    /// The schedule (or an empty payload): the configured or discovered tables.
    Scheduled,
    Tables(Vec<S3Location>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TablesRequest {
    tables: Option<Vec<String>>,
}

const INPUT_SHAPE: &str =
    r#"the scheduled EventBridge event, {} or {"tables": ["s3://bucket/path/to/table", ...]}"#;

impl VerifyInput {
    /// Parses a Lambda payload: an EventBridge event (its content is ignored), `{}` / `null`,
    /// or `{"tables": [...]}` (nothing else).
    pub fn parse(input: &Value) -> Result<Self> {
        if input.is_null() {
            return Ok(VerifyInput::Scheduled);
        }
        if input.get("detail-type").is_some() && input.get("source").is_some() {
            return Ok(VerifyInput::Scheduled);
        }
        let request: TablesRequest = serde_json::from_value(input.clone())
            .map_err(|e| Error::bad_input(format!("verify input must be {INPUT_SHAPE}: {e}")))?;
        match request.tables {
            None => Ok(VerifyInput::Scheduled),
            Some(tables) if tables.is_empty() => Err(Error::bad_input(
                "\"tables\" is empty: name at least one s3:// table, or leave it out to verify the configured or discovered tables",
            )),
            Some(tables) => Ok(VerifyInput::Tables(
                tables
                    .iter()
                    .map(|t| S3Location::parse(t))
                    .collect::<Result<_>>()?,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_shapes() {
        let scheduled = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event",
            "source": "aws.events", "time": "2026-01-01T00:00:00Z", "detail": {}});
        assert_eq!(
            VerifyInput::parse(&scheduled).unwrap(),
            VerifyInput::Scheduled
        );
        assert_eq!(
            VerifyInput::parse(&json!({})).unwrap(),
            VerifyInput::Scheduled
        );
        assert_eq!(
            VerifyInput::parse(&Value::Null).unwrap(),
            VerifyInput::Scheduled
        );
        assert_eq!(
            VerifyInput::parse(&json!({"tables": ["s3://b/t/x/", "s3://b"]})).unwrap(),
            VerifyInput::Tables(vec![
                S3Location::parse("s3://b/t/x").unwrap(),
                S3Location::parse("s3://b").unwrap()
            ])
        );
        for (bad, says) in [
            (json!({"table": "s3://b/t"}), "unknown field `table`"),
            (json!({"tables": "s3://b/t"}), "invalid type"),
            (json!({"tables": [1]}), "invalid type"),
            (json!({"tables": []}), "empty"),
            (json!({"tables": ["b/t"]}), "expected s3://"),
            (json!([1, 2]), "verify input must be"),
        ] {
            let err = VerifyInput::parse(&bad).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
            assert_eq!(err.kind(), "Lifeboat.BadInput");
        }
    }

    #[test]
    fn grace_setting() {
        let s = VerifySettings::from_lookup(|_| None).unwrap();
        assert_eq!(s.grace_seconds, 900);
        let s = VerifySettings::from_lookup(|_| Some("0".into())).unwrap();
        assert_eq!(s.grace_seconds, 0);
        let err = VerifySettings::from_lookup(|_| Some("soon".into())).unwrap_err();
        assert!(err.to_string().contains("LIFEBOAT_GRACE_SECONDS"), "{err}");
        assert_eq!(s.full_proof_hours, 0);
        let s = VerifySettings::from_lookup(|name| match name {
            "LIFEBOAT_VERIFY_QUEUE_URL" => Some("https://q".into()),
            "LIFEBOAT_VERIFY_TABLES_PER_MESSAGE" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (
                s.full_proof_hours,
                s.verify_queue_url.as_deref(),
                s.tables_per_message
            ),
            (24, Some("https://q"), 5)
        );
    }
}
