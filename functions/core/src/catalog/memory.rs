//! A [`Catalog`] in memory, for tests without a server.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Catalog, TableDefinition, TableName};
use crate::error::{Error, Result};

/// Entries by name; `CreateTable` on an existing name fails as Glue's does.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    tables: Mutex<BTreeMap<TableName, TableDefinition>>,
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes an entry, as metastore automation would (the trait itself has no delete).
    pub fn drop_table(&self, table: &TableName) -> Option<TableDefinition> {
        self.tables.lock().expect("catalog lock").remove(table)
    }

    fn refused(operation: &'static str, table: &TableName, message: &str) -> Error {
        Error::Catalog {
            operation,
            table: table.to_string(),
            message: message.to_string(),
            retryable: false,
            source: None,
        }
    }
}

impl Catalog for MemoryCatalog {
    fn get_table<'a>(
        &'a self,
        table: &'a TableName,
    ) -> BoxFuture<'a, Result<Option<TableDefinition>>> {
        let found = self
            .tables
            .lock()
            .expect("catalog lock")
            .get(table)
            .cloned();
        async move { Ok(found) }.boxed()
    }

    fn list_tables<'a>(&'a self, database: &'a str) -> BoxFuture<'a, Result<Vec<TableDefinition>>> {
        let found = self
            .tables
            .lock()
            .expect("catalog lock")
            .values()
            .filter(|d| d.database == database)
            .cloned()
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn create_table<'a>(&'a self, definition: &'a TableDefinition) -> BoxFuture<'a, Result<()>> {
        let name = definition.table_name();
        let mut tables = self.tables.lock().expect("catalog lock");
        let result = match tables.entry(name) {
            std::collections::btree_map::Entry::Occupied(entry) => Err(Self::refused(
                "CreateTable",
                entry.key(),
                "AlreadyExistsException: Table already exists.",
            )),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(definition.clone());
                Ok(())
            }
        };
        async move { result }.boxed()
    }

    fn update_table<'a>(&'a self, definition: &'a TableDefinition) -> BoxFuture<'a, Result<()>> {
        let name = definition.table_name();
        let mut tables = self.tables.lock().expect("catalog lock");
        let result = match tables.get_mut(&name) {
            Some(entry) => {
                *entry = definition.clone();
                Ok(())
            }
            None => Err(Self::refused(
                "UpdateTable",
                &name,
                "EntityNotFoundException: Table not found.",
            )),
        };
        async move { result }.boxed()
    }
}
