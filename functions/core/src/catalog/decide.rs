//! The catalog decisions, as plain functions of their inputs: which entries Lifeboat
//! protects, whether a definition is new, what drifted since it was captured, and what a
//! restore does to the catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{TableDefinition, TableName};
use crate::keys::S3Location;

/// Where a symlink-manifest table's location points, below its table root.
pub const SYMLINK_MANIFEST_DIR: &str = "_symlink_format_manifest";
const SYMLINK_INPUT_FORMAT: &str = "SymlinkTextInputFormat";

/// How an engine reads the table through the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Registered as Delta: `spark.sql.sources.provider=delta` (Spark, EMR, Glue jobs) or
    /// `table_type=DELTA` (Athena, Glue crawlers).
    Delta,
    /// A Hive table over the manifests `GENERATE symlink_format_manifest` writes.
    SymlinkManifest,
}

fn param<'a>(map: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The format of a definition, `None` for a table Lifeboat does not back up (Parquet, CSV,
/// Iceberg, a view).
pub fn format_of(d: &TableDefinition) -> Option<TableFormat> {
    let provider = param(&d.parameters, "spark.sql.sources.provider");
    let table_type = param(&d.parameters, "table_type");
    if provider.is_some_and(|p| p.eq_ignore_ascii_case("delta"))
        || table_type.is_some_and(|t| t.eq_ignore_ascii_case("delta"))
    {
        return Some(TableFormat::Delta);
    }
    let symlink_format = d
        .storage
        .input_format
        .as_deref()
        .is_some_and(|f| f.ends_with(SYMLINK_INPUT_FORMAT));
    let symlink_location = d
        .location()
        .is_some_and(|l| l.trim_end_matches('/').ends_with(SYMLINK_MANIFEST_DIR));
    (symlink_format || symlink_location).then_some(TableFormat::SymlinkManifest)
}

/// The Delta table a definition stands for: its location, or for a Spark table whose location
/// is a placeholder, the serde `path`; without a trailing `_symlink_format_manifest`.
pub fn table_root(d: &TableDefinition) -> Option<S3Location> {
    let spark_path = param(&d.storage.serde_parameters, "path");
    let raw = match (d.location(), spark_path) {
        (Some(l), Some(p)) if l.contains("__PLACEHOLDER__") => p,
        (Some(l), _) => l,
        (None, Some(p)) => p,
        (None, None) => return None,
    };
    let raw = raw.trim().trim_end_matches('/');
    let raw = raw.strip_suffix(SYMLINK_MANIFEST_DIR).unwrap_or(raw);
    let rest = ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|scheme| raw.strip_prefix(scheme))?;
    S3Location::parse(&format!("s3://{rest}")).ok()
}

/// The table root of a protected entry: a Delta or symlink-manifest table under one of the
/// protected source buckets. `None` for every other entry.
pub fn protected_root(d: &TableDefinition, source_buckets: &[String]) -> Option<S3Location> {
    format_of(d)?;
    let root = table_root(d)?;
    source_buckets.contains(&root.bucket).then_some(root)
}

/// Whether `current` must be recorded: it differs from the newest captured definition.
pub fn needs_capture(current: &TableDefinition, newest_captured: Option<&TableDefinition>) -> bool {
    newest_captured != Some(current)
}

/// What changed in the catalog since an entry was captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The entry is gone (whatever became of its storage).
    Dropped,
    /// The entry now points somewhere else.
    LocationChanged { captured: String, current: String },
}

/// Compares the newest captured definition of an entry with what the catalog holds now.
pub fn drift(captured: &TableDefinition, current: Option<&TableDefinition>) -> Option<Drift> {
    let Some(current) = current else {
        return Some(Drift::Dropped);
    };
    let root = |d: &TableDefinition| {
        table_root(d)
            .map(|l| l.to_string())
            .or_else(|| d.location().map(str::to_string))
            .unwrap_or_default()
    };
    let (was, now) = (root(captured), root(current));
    (was != now).then_some(Drift::LocationChanged {
        captured: was,
        current: now,
    })
}

/// What a restore does to one catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum CatalogAction {
    /// No entry of that name: register the definition.
    Create,
    /// An entry for the same table with another definition (a broken re-creation, a lost
    /// column): put the definition back.
    Update,
    /// The entry is already as it should be.
    Leave,
    /// An entry of that name for another table: it is never overwritten.
    Refuse { reason: String },
}

/// The catalog change a restore plans (shown by the dry run) and, once carried out, made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogChange {
    /// `database.table`.
    pub table: String,
    /// Where the entry points.
    pub location: Option<String>,
    #[serde(flatten)]
    pub action: CatalogAction,
    /// The definition to register (what `GetTable` returns afterwards).
    pub definition: TableDefinition,
    /// After a real run: whether the change was made.
    #[serde(default)]
    pub done: bool,
}

impl CatalogChange {
    /// The change as one line of a dry run.
    pub fn describe(&self) -> String {
        let at = self.location.as_deref().unwrap_or("(no location)");
        match &self.action {
            CatalogAction::Create => format!("register {} at {at} (CreateTable)", self.table),
            CatalogAction::Update => format!(
                "put back the captured definition of {} at {at} (UpdateTable)",
                self.table
            ),
            CatalogAction::Leave => format!("{} already points at {at}: unchanged", self.table),
            CatalogAction::Refuse { reason } => {
                format!("{} is left alone: {reason}", self.table)
            }
        }
    }
}

/// What to do so that `wanted` is registered, given the entry of that name (if any).
pub fn restore_action(
    wanted: &TableDefinition,
    existing: Option<&TableDefinition>,
) -> CatalogAction {
    let Some(existing) = existing else {
        return CatalogAction::Create;
    };
    if existing == wanted {
        return CatalogAction::Leave;
    }
    let (want_root, have_root) = (table_root(wanted), table_root(existing));
    if want_root.is_some() && want_root == have_root {
        return CatalogAction::Update;
    }
    CatalogAction::Refuse {
        reason: format!(
            "the catalog already has an entry {} for another location ({}); overwriting it would break whatever reads that table. Drop or rename that entry first if it is the wrong one, then run the restore again",
            wanted.table_name(),
            existing.location().unwrap_or("no location")
        ),
    }
}

/// The definition a clone at `target` is registered with as `name`: the source's captured
/// definition with its location moved (a symlink table keeps pointing at its manifests), or,
/// when nothing was captured, a plain Delta table.
pub fn clone_definition(
    captured: Option<&TableDefinition>,
    name: &TableName,
    target: &S3Location,
) -> TableDefinition {
    let Some(captured) = captured else {
        return TableDefinition {
            database: name.database.clone(),
            name: name.name.clone(),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: [
                ("EXTERNAL".to_string(), "TRUE".to_string()),
                ("table_type".to_string(), "DELTA".to_string()),
            ]
            .into_iter()
            .collect(),
            storage: super::StorageDefinition {
                location: Some(target.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
    };
    let mut d = captured.clone();
    d.database = name.database.clone();
    d.name = name.name.clone();
    let symlink = d
        .location()
        .is_some_and(|l| l.trim_end_matches('/').ends_with(SYMLINK_MANIFEST_DIR));
    d.storage.location = Some(if symlink {
        format!("{target}/{SYMLINK_MANIFEST_DIR}")
    } else {
        target.to_string()
    });
    if let Some(path) = d
        .storage
        .serde_parameters
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("path"))
        .map(|(_, v)| v)
    {
        *path = target.to_string();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StorageDefinition;

    fn def(
        params: &[(&str, &str)],
        location: Option<&str>,
        input: Option<&str>,
    ) -> TableDefinition {
        TableDefinition {
            database: "db".into(),
            name: "t".into(),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            storage: StorageDefinition {
                location: location.map(str::to_string),
                input_format: input.map(str::to_string),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const SYMLINK: &str = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat";
    const PARQUET: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";

    #[test]
    fn which_entries_are_protected() {
        let buckets = vec!["lake".to_string()];
        let cases: [(&str, TableDefinition, Option<&str>); 10] = [
            (
                "spark delta",
                def(
                    &[("spark.sql.sources.provider", "delta")],
                    Some("s3://lake/sales/orders"),
                    None,
                ),
                Some("s3://lake/sales/orders"),
            ),
            (
                "athena delta",
                def(&[("table_type", "DELTA")], Some("s3://lake/orders/"), None),
                Some("s3://lake/orders"),
            ),
            (
                "case",
                def(
                    &[("Spark.Sql.Sources.Provider", "Delta")],
                    Some("s3a://lake/o"),
                    None,
                ),
                Some("s3://lake/o"),
            ),
            (
                "symlink",
                def(
                    &[],
                    Some("s3://lake/o/_symlink_format_manifest"),
                    Some(SYMLINK),
                ),
                Some("s3://lake/o"),
            ),
            (
                "symlink by format",
                def(&[], Some("s3://lake/o/manifests"), Some(SYMLINK)),
                Some("s3://lake/o/manifests"),
            ),
            (
                "parquet",
                def(&[], Some("s3://lake/o"), Some(PARQUET)),
                None,
            ),
            (
                "iceberg",
                def(&[("table_type", "ICEBERG")], Some("s3://lake/o"), None),
                None,
            ),
            (
                "other bucket",
                def(&[("table_type", "DELTA")], Some("s3://elsewhere/o"), None),
                None,
            ),
            (
                "no location",
                def(&[("table_type", "DELTA")], None, None),
                None,
            ),
            (
                "not s3",
                def(&[("table_type", "DELTA")], Some("hdfs://nn/o"), None),
                None,
            ),
        ];
        for (name, d, expected) in cases {
            assert_eq!(
                protected_root(&d, &buckets)
                    .map(|l| l.to_string())
                    .as_deref(),
                expected,
                "{name}"
            );
        }
        let mut spark = def(
            &[("spark.sql.sources.provider", "delta")],
            Some("s3://lake/o-__PLACEHOLDER__"),
            None,
        );
        spark
            .storage
            .serde_parameters
            .insert("path".into(), "s3://lake/real".into());
        assert_eq!(
            protected_root(&spark, &buckets).unwrap().to_string(),
            "s3://lake/real"
        );
    }

    #[test]
    fn what_is_captured_and_what_drifted() {
        let a = def(&[("table_type", "DELTA")], Some("s3://lake/o"), None);
        let mut b = a.clone();
        b.parameters.insert("comment".into(), "new".into());
        let mut moved = a.clone();
        moved.storage.location = Some("s3://lake/o2".into());
        let mut slash = a.clone();
        slash.storage.location = Some("s3://lake/o/".into());

        assert!(needs_capture(&a, None));
        assert!(!needs_capture(&a, Some(&a)));
        assert!(needs_capture(&b, Some(&a)));

        let cases = [
            (&a, None, Some(Drift::Dropped)),
            (&a, Some(&a), None),
            (&a, Some(&b), None),
            (&a, Some(&slash), None),
            (
                &a,
                Some(&moved),
                Some(Drift::LocationChanged {
                    captured: "s3://lake/o".into(),
                    current: "s3://lake/o2".into(),
                }),
            ),
        ];
        for (i, (captured, current, expected)) in cases.into_iter().enumerate() {
            assert_eq!(drift(captured, current), expected, "case {i}");
        }
    }

    #[test]
    fn what_a_restore_does_to_the_catalog() {
        let wanted = def(&[("table_type", "DELTA")], Some("s3://lake/o"), None);
        let mut edited = wanted.clone();
        edited.parameters.clear();
        let mut other = wanted.clone();
        other.storage.location = Some("s3://lake/someone-else".into());
        let cases = [
            ("no entry", None, "create"),
            ("same", Some(&wanted), "leave"),
            ("same table, other definition", Some(&edited), "update"),
            ("another table", Some(&other), "refuse"),
        ];
        for (name, existing, expected) in cases {
            let action = restore_action(&wanted, existing);
            let tag = serde_json::to_value(&action).unwrap()["action"].clone();
            assert_eq!(tag, expected, "{name}");
        }
        let CatalogAction::Refuse { reason } = restore_action(&wanted, Some(&other)) else {
            unreachable!()
        };
        assert!(
            reason.contains("s3://lake/someone-else") && reason.contains("db.t"),
            "{reason}"
        );
    }

    #[test]
    fn clone_definitions() {
        let name = TableName::new("scratch", "orders_restored");
        let target = S3Location::parse("s3://lake/restored/orders").unwrap();
        let delta = def(&[("table_type", "DELTA")], Some("s3://lake/orders"), None);
        let symlink = def(
            &[],
            Some("s3://lake/orders/_symlink_format_manifest"),
            Some(SYMLINK),
        );
        let cases = [
            (Some(&delta), "s3://lake/restored/orders"),
            (
                Some(&symlink),
                "s3://lake/restored/orders/_symlink_format_manifest",
            ),
            (None, "s3://lake/restored/orders"),
        ];
        for (captured, location) in cases {
            let d = clone_definition(captured, &name, &target);
            assert_eq!(d.table_name(), name);
            assert_eq!(d.location(), Some(location));
            assert_eq!(table_root(&d), Some(target.clone()));
            assert!(format_of(&d).is_some());
        }
    }
}
