//! The captured definitions in the backup bucket: one write-once JSON record per distinct
//! definition of an entry, under [`crate::layout::CATALOG_PREFIX`]. A record is never
//! replaced; a changed definition is a new record, so every definition a table ever had is
//! kept (and Object Lock keeps them for the retention period).

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::decide::{needs_capture, table_root};
use super::{TableDefinition, TableName};
use crate::error::{Error, Result};
use crate::layout::{Layout, CATALOG_PREFIX};
use crate::store::{list_all, PutResult, Store, WriteOptions};

/// One record: the definition, when it was captured, and the table root it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedDefinition {
    /// RFC 3339.
    pub captured_at: String,
    /// The Delta table the entry points at, `s3://bucket/path`.
    pub table_root: Option<String>,
    pub definition: TableDefinition,
    /// The record's key in the backup bucket.
    #[serde(skip)]
    pub key: String,
}

/// The `(database, table)` a record key belongs to.
fn entry_of(key: &str) -> Option<TableName> {
    let rest = key.strip_prefix(CATALOG_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(db), Some(name), Some(file)) if file.ends_with(".json") && !file.contains('/') => {
            Some(TableName::new(db, name))
        }
        _ => None,
    }
}

/// The captured definitions in one backup bucket.
pub struct DefinitionStore<'a, S> {
    pub store: &'a S,
    pub bucket: &'a str,
    pub kms_key_id: Option<String>,
}

impl<S: Store> DefinitionStore<'_, S> {
    async fn read(&self, key: &str) -> Result<Option<CapturedDefinition>> {
        let Some(body) = self.store.get(self.bucket, key, None).await? else {
            return Ok(None);
        };
        let mut record: CapturedDefinition = serde_json::from_slice(&body).map_err(|e| {
            Error::bad_input(format!(
                "captured definition s3://{}/{key}: {e}",
                self.bucket
            ))
        })?;
        record.key = key.to_string();
        Ok(Some(record))
    }

    /// The newest captured definition of `table`.
    pub async fn newest(&self, table: &TableName) -> Result<Option<CapturedDefinition>> {
        let prefix = Layout::catalog_prefix(&table.database, &table.name);
        let listing = list_all(self.store, self.bucket, &prefix).await?;
        match listing.iter().map(|o| o.key.as_str()).max() {
            Some(key) => self.read(key).await,
            None => Ok(None),
        }
    }

    /// The newest captured definition of every entry of `databases` ever captured.
    pub async fn newest_of_all(&self, databases: &[String]) -> Result<Vec<CapturedDefinition>> {
        let mut newest: BTreeMap<TableName, String> = BTreeMap::new();
        for database in databases {
            let prefix = format!("{CATALOG_PREFIX}{database}/");
            for object in list_all(self.store, self.bucket, &prefix).await? {
                if let Some(entry) = entry_of(&object.key) {
                    let slot = newest.entry(entry).or_default();
                    if object.key > *slot {
                        *slot = object.key;
                    }
                }
            }
        }
        let mut all = Vec::new();
        for key in newest.values() {
            all.extend(self.read(key).await?);
        }
        Ok(all)
    }

    /// Every captured definition of the entries that pointed at `root` (`s3://bucket/path`),
    /// the newest of each entry.
    pub async fn newest_for_root(
        &self,
        databases: &[String],
        root: &str,
    ) -> Result<Vec<CapturedDefinition>> {
        Ok(self
            .newest_of_all(databases)
            .await?
            .into_iter()
            .filter(|c| c.table_root.as_deref() == Some(root))
            .collect())
    }

    /// Records `definition` unless the newest record already holds it; returns the new key.
    pub async fn capture(
        &self,
        definition: &TableDefinition,
        newest: Option<&CapturedDefinition>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        if !needs_capture(definition, newest.map(|c| &c.definition)) {
            return Ok(None);
        }
        let record = CapturedDefinition {
            captured_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            table_root: table_root(definition).map(|l| l.to_string()),
            definition: definition.clone(),
            key: String::new(),
        };
        let body = serde_json::to_vec_pretty(&record)?;
        let digest = Md5::digest(serde_json::to_vec(definition)?);
        let digest: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let key = Layout::catalog_key(&definition.database, &definition.name, now, &digest);
        let options = WriteOptions {
            content_type: Some("application/json".into()),
            kms_key_id: self.kms_key_id.clone(),
            if_absent: true,
            ..WriteOptions::default()
        };
        match self
            .store
            .put(self.bucket, &key, Bytes::from(body), &options)
            .await?
        {
            // The same definition, captured at the same moment by another run.
            PutResult::PreconditionFailed => Ok(None),
            PutResult::Written { .. } => {
                tracing::info!(table = %definition.table_name(), key = %key, "catalog definition captured");
                Ok(Some(key))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StorageDefinition;
    use crate::store::memory::MemoryStore;

    #[test]
    fn record_keys_name_their_entry() {
        let cases = [
            (
                "_lifeboat/catalog/db/t/2026-01-01T00-00-00.000Z-ab.json",
                Some(("db", "t")),
            ),
            ("_lifeboat/catalog/db/t/nested/x.json", None),
            ("_lifeboat/catalog/db/t", None),
            ("_lifeboat/reports/latest.json", None),
        ];
        for (key, expected) in cases {
            assert_eq!(
                entry_of(key),
                expected.map(|(d, n)| TableName::new(d, n)),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn captures_are_write_once_and_versioned() {
        let store = MemoryStore::new();
        let records = DefinitionStore {
            store: &store,
            bucket: "backup",
            kms_key_id: None,
        };
        let mut d = TableDefinition {
            database: "db".into(),
            name: "t".into(),
            parameters: [("table_type".to_string(), "DELTA".to_string())]
                .into_iter()
                .collect(),
            storage: StorageDefinition {
                location: Some("s3://lake/t".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let first = records.capture(&d, None, t0).await.unwrap();
        assert!(first.is_some());
        let newest = records.newest(&d.table_name()).await.unwrap().unwrap();
        assert_eq!(newest.definition, d);
        assert_eq!(newest.table_root.as_deref(), Some("s3://lake/t"));
        // Unchanged: nothing written.
        let again = records
            .capture(&d, Some(&newest), t0 + chrono::Duration::seconds(60))
            .await
            .unwrap();
        assert_eq!(again, None);
        // Changed: a second record, which is now the newest.
        d.parameters.insert("comment".into(), "v2".into());
        let second = records
            .capture(&d, Some(&newest), t0 + chrono::Duration::seconds(120))
            .await
            .unwrap();
        assert!(second.is_some() && second != first);
        let all = records.newest_of_all(&["db".to_string()]).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].definition, d);
        assert_eq!(
            records
                .newest_for_root(&["db".into()], "s3://lake/t")
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(records
            .newest_for_root(&["db".into()], "s3://lake/u")
            .await
            .unwrap()
            .is_empty());
    }
}
