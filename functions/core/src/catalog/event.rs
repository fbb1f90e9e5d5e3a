//! The EventBridge events Glue sends when an entry changes.
//!
//! Glue announces `UpdateTable` (and partition changes) as "Glue Data Catalog Table State
//! Change" (`detail.tableName`), and `CreateTable` / `DeleteTable` as "Glue Data Catalog
//! Database State Change" (`detail.changedTables`). The verifier takes both: either way it
//! looks at the named entries, captures what changed and reports what was dropped.

use serde::Deserialize;
use serde_json::Value;

use super::TableName;
use crate::error::{Error, Result};

pub const TABLE_STATE_CHANGE: &str = "Glue Data Catalog Table State Change";
pub const DATABASE_STATE_CHANGE: &str = "Glue Data Catalog Database State Change";

/// The entries an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEvent {
    /// `UpdateTable`, `CreateTable`, `DeleteTable`, `BatchCreatePartition`, ...
    pub change: String,
    pub tables: Vec<TableName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    database_name: String,
    #[serde(default)]
    type_of_change: String,
    #[serde(default)]
    table_name: Option<String>,
    #[serde(default)]
    changed_tables: Vec<String>,
}

impl CatalogEvent {
    /// Whether `input` is one of Glue's catalog events (by source and detail type).
    pub fn is_catalog_event(input: &Value) -> bool {
        input.get("source").and_then(Value::as_str) == Some("aws.glue")
            && matches!(
                input.get("detail-type").and_then(Value::as_str),
                Some(TABLE_STATE_CHANGE | DATABASE_STATE_CHANGE)
            )
    }

    pub fn parse(input: &Value) -> Result<Self> {
        let detail = input.get("detail").cloned().unwrap_or(Value::Null);
        let detail: Detail = serde_json::from_value(detail).map_err(|e| {
            Error::bad_input(format!(
                "Glue catalog event without a usable detail (databaseName, tableName or changedTables): {e}"
            ))
        })?;
        let names: Vec<String> = detail
            .table_name
            .into_iter()
            .chain(detail.changed_tables)
            .collect();
        if names.is_empty() {
            return Err(Error::bad_input(
                "Glue catalog event names no table (detail.tableName or detail.changedTables)",
            ));
        }
        Ok(CatalogEvent {
            change: detail.type_of_change,
            tables: names
                .into_iter()
                .map(|n| TableName::new(&detail.database_name, n))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The fixtures in AWS's documented format, as the integration tests send them.
    #[test]
    fn documented_fixtures() {
        let fill = |text: &str| {
            text.replace("{{database}}", "sales")
                .replace("{{table}}", "orders")
        };
        let cases = [
            (include_str!("../../../../tests/fixtures/eventbridge-glue-table-state-change.json"), "UpdateTable"),
            (include_str!("../../../../tests/fixtures/eventbridge-glue-database-state-change-delete-table.json"), "DeleteTable"),
        ];
        for (text, change) in cases {
            let event: Value = serde_json::from_str(&fill(text)).unwrap();
            assert!(CatalogEvent::is_catalog_event(&event), "{change}");
            let parsed = CatalogEvent::parse(&event).unwrap();
            assert_eq!(parsed.change, change);
            assert_eq!(parsed.tables, vec![TableName::new("sales", "orders")]);
        }
    }

    #[test]
    fn events() {
        let table = json!({"source": "aws.glue", "detail-type": TABLE_STATE_CHANGE,
            "detail": {"databaseName": "sales", "typeOfChange": "UpdateTable", "tableName": "orders"}});
        let database = json!({"source": "aws.glue", "detail-type": DATABASE_STATE_CHANGE,
            "detail": {"databaseName": "sales", "typeOfChange": "DeleteTable", "changedTables": ["orders", "items"]}});
        let scheduled =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let empty = json!({"source": "aws.glue", "detail-type": TABLE_STATE_CHANGE,
            "detail": {"databaseName": "sales", "typeOfChange": "UpdateTable"}});
        assert!(CatalogEvent::is_catalog_event(&table));
        assert!(CatalogEvent::is_catalog_event(&database));
        assert!(!CatalogEvent::is_catalog_event(&scheduled));
        assert_eq!(
            CatalogEvent::parse(&table).unwrap(),
            CatalogEvent {
                change: "UpdateTable".into(),
                tables: vec![TableName::new("sales", "orders")]
            }
        );
        let parsed = CatalogEvent::parse(&database).unwrap();
        assert_eq!(
            (parsed.change.as_str(), parsed.tables.len()),
            ("DeleteTable", 2)
        );
        assert!(CatalogEvent::parse(&empty)
            .unwrap_err()
            .to_string()
            .contains("names no table"));
        assert!(CatalogEvent::parse(&scheduled).is_err());
    }
}
