//! The metastore side of a table: its AWS Glue Data Catalog definition, captured into the
//! backup so that a dropped entry can be registered again as it was.
//!
//! Engines that find tables through the catalog (Athena, Glue jobs, EMR and Spark with the
//! Glue catalog, Trino, Redshift Spectrum) lose a table when its entry is dropped, even when
//! its files are intact. Lifeboat keeps every distinct definition of a protected table under
//! [`crate::layout::CATALOG_PREFIX`], write-once, and re-registers it on restore.
//!
//! - [`decide`]: which entries are protected, whether a definition is new, what a restore does
//!   to the catalog (pure, table-driven tests);
//! - [`capture`]: the records in the backup (reads and write-once puts);
//! - [`glue`]: the [`Catalog`] over `aws-sdk-glue`; [`memory`]: one in memory for tests;
//! - [`event`]: the EventBridge "Glue Data Catalog Table State Change" event.

use std::collections::BTreeMap;
use std::fmt;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod capture;
pub mod decide;
pub mod event;
pub mod glue;
pub mod memory;

pub use capture::{CapturedDefinition, DefinitionStore};
pub use decide::{CatalogAction, CatalogChange};
pub use event::CatalogEvent;
pub use glue::GlueCatalog;
pub use memory::MemoryCatalog;

/// `database.table`, as Glue names a table (both lower case in Glue).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub database: String,
    pub name: String,
}

impl TableName {
    pub fn new(database: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            database: database.into(),
            name: name.into(),
        }
    }

    /// Parses `database.table` (`--register`, `"register"`).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().split_once('.') {
            Some((db, name))
                if valid_part(db) && valid_part(name) && !name.contains('.') =>
            {
                Ok(TableName::new(db, name))
            }
            _ => Err(Error::bad_input(format!(
                "register: {text:?} is not a catalog table name; give database.table (letters, digits, _ and -)"
            ))),
        }
    }
}

fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.name)
    }
}

/// A column (or partition key) of a definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// The storage descriptor: where the files are and how an engine reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(default)]
    pub compressed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_library: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub serde_parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// A table's catalog definition: what `CreateTable` needs to register it again.
///
/// `parameters` are the table properties (`spark.sql.sources.provider`, `table_type`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    pub database: String,
    pub name: String,
    /// `EXTERNAL_TABLE` for a lake table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub storage: StorageDefinition,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<ColumnDefinition>,
}

impl TableDefinition {
    pub fn table_name(&self) -> TableName {
        TableName::new(&self.database, &self.name)
    }

    /// The storage descriptor's location, as registered.
    pub fn location(&self) -> Option<&str> {
        self.storage.location.as_deref()
    }
}

/// The catalog operations Lifeboat needs, and nothing else (in particular, no delete).
///
/// Boxed futures keep it usable as `dyn Catalog`, so the verifier and the restorer carry an
/// optional catalog without another type parameter.
pub trait Catalog: Send + Sync {
    /// The definition of `table`, `None` when there is no such entry (or no such database).
    fn get_table<'a>(
        &'a self,
        table: &'a TableName,
    ) -> BoxFuture<'a, Result<Option<TableDefinition>>>;

    /// Every table of `database` (empty when the database does not exist).
    fn list_tables<'a>(&'a self, database: &'a str) -> BoxFuture<'a, Result<Vec<TableDefinition>>>;

    /// Registers `definition`; fails if an entry of that name exists.
    fn create_table<'a>(&'a self, definition: &'a TableDefinition) -> BoxFuture<'a, Result<()>>;

    /// Replaces the entry of `definition`'s name.
    fn update_table<'a>(&'a self, definition: &'a TableDefinition) -> BoxFuture<'a, Result<()>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_names() {
        let cases = [
            ("sales.orders", Some(("sales", "orders"))),
            (" sales.orders_v2 ", Some(("sales", "orders_v2"))),
            ("sales", None),
            ("sales.", None),
            (".orders", None),
            ("a.b.c", None),
            ("sa les.orders", None),
            ("s3://b/t", None),
        ];
        for (text, expected) in cases {
            let parsed = TableName::parse(text).ok();
            assert_eq!(
                parsed,
                expected.map(|(d, n)| TableName::new(d, n)),
                "{text}"
            );
        }
        assert!(TableName::parse("x")
            .unwrap_err()
            .to_string()
            .contains("database.table"));
    }
}
