//! Configuration from environment variables, shared by the functions and the CLI.
//!
//! Parsed once at cold start; every error names the variable and what it should hold.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::keys::S3Location;
use crate::layout::Layout;

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
/// The largest object a single CopyObject can copy.
pub const MAX_SINGLE_COPY_BYTES: u64 = 5 * GIB;
/// S3's smallest part (all but the last).
pub const MIN_PART_BYTES: u64 = 5 * MIB;

#[derive(Debug, Clone)]
pub struct Config {
    pub backup_bucket: String,
    /// Where things live in the backup bucket (`LIFEBOAT_BACKUP_PREFIX`).
    layout: Layout,
    pub source_buckets: Vec<String>,
    pub include_prefixes: Vec<String>,
    pub exclude_patterns: Vec<String>,
    exclude: GlobSet,
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
    pub copy_concurrency: usize,
    pub storage_class: Option<String>,
    pub kms_key_id: Option<String>,
    pub queue_url: Option<String>,
    pub tables: Vec<S3Location>,
    /// `LIFEBOAT_CONDITIONAL_COPY`: copy with `If-None-Match: *` straight away instead of
    /// looking first (one request per new object instead of two). Only for servers that
    /// honour `If-None-Match` on CopyObject, as Amazon S3 does; off by default.
    pub conditional_copy: bool,
    /// `LIFEBOAT_GLUE_DATABASES`: the Glue databases whose Delta entries are captured and
    /// re-registered on restore; empty means the catalog side is off.
    pub glue_databases: Vec<String>,
    /// `LIFEBOAT_PER_TABLE_METRICS`: also emit one EMF document per table (dimension `Table`,
    /// about 5 custom metrics per table, each billed); off by default, the alarms need only
    /// the aggregates.
    pub per_table_metrics: bool,
    /// `LIFEBOAT_BACKUP_ACCOUNT_ID`: the account that owns the backup bucket, sent as
    /// `ExpectedBucketOwner` on every request to it; `None` sends none.
    pub backup_account_id: Option<String>,
    /// `LIFEBOAT_SOURCE_ACCOUNT_ID`: the account that owns the source buckets, sent as
    /// `ExpectedBucketOwner` (`ExpectedSourceBucketOwner` on copies from them), so that a
    /// source bucket deleted and re-created by someone else is never read or written.
    pub source_account_id: Option<String>,
    /// The restore work queue and shard sizes (`LIFEBOAT_RESTORE_*`, see
    /// [`crate::restore::shards::ShardSettings`]).
    pub restore_shards: crate::restore::shards::ShardSettings,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let backup_bucket = get("LIFEBOAT_BACKUP_BUCKET").ok_or_else(|| {
            Error::config(
                "LIFEBOAT_BACKUP_BUCKET",
                "required: the name of the backup bucket",
            )
        })?;
        let layout = Layout::new(
            backup_bucket.clone(),
            get("LIFEBOAT_BACKUP_PREFIX").unwrap_or_else(|| "{bucket}/".into()),
        )?;
        let source_buckets = list(get("LIFEBOAT_SOURCE_BUCKETS"));
        if source_buckets.is_empty() {
            return Err(Error::config(
                "LIFEBOAT_SOURCE_BUCKETS",
                "required: comma-separated names of the source buckets to protect",
            ));
        }
        if source_buckets.contains(&backup_bucket) {
            return Err(Error::config(
                "LIFEBOAT_SOURCE_BUCKETS",
                format!(
                    "the backup bucket {backup_bucket:?} is also a source bucket: that would copy the backup into itself; use a separate backup bucket"
                ),
            ));
        }
        let include_prefixes = list(get("LIFEBOAT_INCLUDE_PREFIXES"));
        let exclude_patterns = list(get("LIFEBOAT_EXCLUDE_PATTERNS"));
        let mut builder = GlobSetBuilder::new();
        for pattern in &exclude_patterns {
            let glob = Glob::new(pattern).map_err(|e| {
                Error::config(
                    "LIFEBOAT_EXCLUDE_PATTERNS",
                    format!("{pattern:?} is not a glob pattern: {e}"),
                )
            })?;
            builder.add(glob);
        }
        let exclude = builder.build().map_err(|e| {
            Error::config(
                "LIFEBOAT_EXCLUDE_PATTERNS",
                format!("cannot build the patterns: {e}"),
            )
        })?;

        let multipart_threshold_bytes = number(
            &get,
            "LIFEBOAT_MULTIPART_THRESHOLD_BYTES",
            MAX_SINGLE_COPY_BYTES,
        )?;
        if multipart_threshold_bytes == 0 || multipart_threshold_bytes > MAX_SINGLE_COPY_BYTES {
            return Err(Error::config(
                "LIFEBOAT_MULTIPART_THRESHOLD_BYTES",
                format!("{multipart_threshold_bytes} must be between 1 and {MAX_SINGLE_COPY_BYTES} (5 GiB, the largest single CopyObject)"),
            ));
        }
        let part_size_bytes = number(&get, "LIFEBOAT_PART_SIZE_BYTES", 256 * MIB)?;
        if !(MIN_PART_BYTES..=MAX_SINGLE_COPY_BYTES).contains(&part_size_bytes) {
            return Err(Error::config(
                "LIFEBOAT_PART_SIZE_BYTES",
                format!("{part_size_bytes} must be between {MIN_PART_BYTES} (5 MiB) and {MAX_SINGLE_COPY_BYTES} (5 GiB)"),
            ));
        }
        let copy_concurrency = number(&get, "LIFEBOAT_COPY_CONCURRENCY", 64)?;
        if !(1..=1024).contains(&copy_concurrency) {
            return Err(Error::config(
                "LIFEBOAT_COPY_CONCURRENCY",
                format!("{copy_concurrency} must be between 1 and 1024"),
            ));
        }
        let storage_class = get("LIFEBOAT_STORAGE_CLASS");
        if let Some(class) = &storage_class {
            const KNOWN: &[&str] = &[
                "STANDARD",
                "STANDARD_IA",
                "ONEZONE_IA",
                "INTELLIGENT_TIERING",
                "GLACIER_IR",
                "GLACIER",
                "DEEP_ARCHIVE",
                "REDUCED_REDUNDANCY",
            ];
            if !KNOWN.contains(&class.as_str()) {
                return Err(Error::config(
                    "LIFEBOAT_STORAGE_CLASS",
                    format!("{class:?} is not one of {}", KNOWN.join(", ")),
                ));
            }
        }
        let tables = list(get("LIFEBOAT_TABLES"))
            .iter()
            .map(|t| {
                S3Location::parse(t).map_err(|e| Error::config("LIFEBOAT_TABLES", e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;

        let conditional_copy = flag(&get, "LIFEBOAT_CONDITIONAL_COPY")?;
        let per_table_metrics = flag(&get, "LIFEBOAT_PER_TABLE_METRICS")?;
        let backup_account_id = account_id(&get, "LIFEBOAT_BACKUP_ACCOUNT_ID")?;
        let source_account_id = account_id(&get, "LIFEBOAT_SOURCE_ACCOUNT_ID")?;
        let glue_databases = list(get("LIFEBOAT_GLUE_DATABASES"));
        if let Some(bad) = glue_databases.iter().find(|d| {
            !d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(Error::config(
                "LIFEBOAT_GLUE_DATABASES",
                format!("{bad:?} is not a Glue database name: give comma-separated names (letters, digits, _ and -), or leave it empty to turn the catalog capture off"),
            ));
        }
        let restore_shards = crate::restore::shards::ShardSettings::from_lookup(&get)?;
        let config = Config {
            restore_shards,
            backup_bucket,
            layout,
            source_buckets,
            include_prefixes,
            exclude_patterns,
            exclude,
            multipart_threshold_bytes,
            part_size_bytes,
            copy_concurrency: copy_concurrency as usize,
            storage_class,
            kms_key_id: get("LIFEBOAT_KMS_KEY_ID"),
            queue_url: get("LIFEBOAT_QUEUE_URL"),
            tables,
            conditional_copy,
            glue_databases,
            per_table_metrics,
            backup_account_id,
            source_account_id,
        };
        Ok(config)
    }

    /// Where things live in the backup bucket.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn is_source_bucket(&self, bucket: &str) -> bool {
        self.source_buckets.iter().any(|b| b == bucket)
    }

    /// The account expected to own each bucket Lifeboat touches (the backup bucket and the
    /// source buckets), for `ExpectedBucketOwner`; buckets of an unconfigured account are
    /// left out.
    pub fn bucket_owners(&self) -> BTreeMap<String, String> {
        let mut owners = BTreeMap::new();
        if let Some(account) = &self.source_account_id {
            for bucket in &self.source_buckets {
                owners.insert(bucket.clone(), account.clone());
            }
        }
        if let Some(account) = &self.backup_account_id {
            owners.insert(self.backup_bucket.clone(), account.clone());
        }
        owners
    }

    /// Whether `key` is selected by the include prefixes and exclude patterns.
    pub fn selects(&self, key: &str) -> bool {
        let included = self.include_prefixes.is_empty()
            || self
                .include_prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str()));
        included && !self.exclude.is_match(key)
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A true/false variable, false when unset.
fn flag(get: &impl Fn(&str) -> Option<String>, variable: &'static str) -> Result<bool> {
    match get(variable).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(Error::config(
            variable,
            format!("{other:?} is not true or false"),
        )),
    }
}

/// A 12-digit AWS account id, `None` when unset.
fn account_id(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<String>> {
    match get(variable) {
        None => Ok(None),
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(id)),
        Some(other) => Err(Error::config(
            variable,
            format!("{other:?} is not an AWS account id (12 digits); leave it empty to send no ExpectedBucketOwner"),
        )),
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64> {
    match get(variable) {
        None => Ok(default),
        Some(text) => text.replace('_', "").parse::<u64>().map_err(|_| {
            Error::config(
                variable,
                format!("{text:?} is not a whole number of the right size"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        ("LIFEBOAT_BACKUP_BUCKET", "backup"),
        ("LIFEBOAT_SOURCE_BUCKETS", "src-a, src-b"),
    ];

    #[test]
    fn defaults() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.source_buckets, vec!["src-a", "src-b"]);
        assert_eq!(c.layout().key("src-a", "t/x.parquet"), "src-a/t/x.parquet");
        assert_eq!(c.multipart_threshold_bytes, 5 * GIB);
        assert_eq!(c.part_size_bytes, 256 * MIB);
        assert_eq!(c.copy_concurrency, 64);
        assert!(c.selects("anything"));
    }

    #[test]
    fn prefix_template_and_filters() {
        let mut vars = BASE.to_vec();
        vars.push(("LIFEBOAT_BACKUP_PREFIX", "mirror/{bucket}"));
        vars.push(("LIFEBOAT_INCLUDE_PREFIXES", "tables/"));
        vars.push(("LIFEBOAT_EXCLUDE_PATTERNS", "**/_temporary/**,*.tmp"));
        let c = config(&vars).unwrap();
        assert_eq!(
            c.layout().key("src-b", "tables/t/0.json"),
            "mirror/src-b/tables/t/0.json"
        );
        assert!(c.selects("tables/t/part-0.parquet"));
        assert!(!c.selects("other/t/part-0.parquet"));
        assert!(!c.selects("tables/t/_temporary/0/x"));
        assert!(!c.selects("tables/t/x.tmp"));
    }

    #[test]
    fn per_table_metrics_are_opt_in() {
        assert!(!config(&BASE).unwrap().per_table_metrics);
        for (value, expected) in [
            ("true", true),
            ("TRUE", true),
            ("false", false),
            ("", false),
        ] {
            let mut vars = BASE.to_vec();
            vars.push(("LIFEBOAT_PER_TABLE_METRICS", value));
            assert_eq!(
                config(&vars).unwrap().per_table_metrics,
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn bucket_owners_from_the_account_ids() {
        assert!(config(&BASE).unwrap().bucket_owners().is_empty());
        let mut vars = BASE.to_vec();
        vars.push(("LIFEBOAT_SOURCE_ACCOUNT_ID", "111111111111"));
        let owners = config(&vars).unwrap().bucket_owners();
        assert_eq!(
            owners.into_iter().collect::<Vec<_>>(),
            [
                ("src-a".to_string(), "111111111111".to_string()),
                ("src-b".to_string(), "111111111111".to_string())
            ]
        );
        vars.push(("LIFEBOAT_BACKUP_ACCOUNT_ID", " 222222222222 "));
        let owners = config(&vars).unwrap().bucket_owners();
        assert_eq!(owners["backup"], "222222222222");
        assert_eq!(owners["src-a"], "111111111111");
    }

    #[test]
    fn glue_databases() {
        let cases: [(&str, Option<&[&str]>); 4] = [
            ("", Some(&[])),
            ("sales", Some(&["sales"])),
            (" sales , lake_2 ", Some(&["sales", "lake_2"])),
            ("sales,a b", None),
        ];
        for (value, expected) in cases {
            let mut vars = BASE.to_vec();
            vars.push(("LIFEBOAT_GLUE_DATABASES", value));
            match (config(&vars), expected) {
                (Ok(c), Some(dbs)) => assert_eq!(c.glue_databases, dbs, "{value}"),
                (Err(e), None) => assert!(e.to_string().contains("LIFEBOAT_GLUE_DATABASES"), "{e}"),
                (got, _) => panic!("{value:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("LIFEBOAT_SOURCE_BUCKETS", "a")],
                "LIFEBOAT_BACKUP_BUCKET",
            ),
            (
                vec![("LIFEBOAT_BACKUP_BUCKET", "b")],
                "LIFEBOAT_SOURCE_BUCKETS",
            ),
            (
                vec![("LIFEBOAT_MULTIPART_THRESHOLD_BYTES", "lots")],
                "LIFEBOAT_MULTIPART_THRESHOLD_BYTES",
            ),
            (
                vec![("LIFEBOAT_MULTIPART_THRESHOLD_BYTES", "6000000000")],
                "LIFEBOAT_MULTIPART_THRESHOLD_BYTES",
            ),
            (
                vec![("LIFEBOAT_PART_SIZE_BYTES", "1024")],
                "LIFEBOAT_PART_SIZE_BYTES",
            ),
            (
                vec![("LIFEBOAT_COPY_CONCURRENCY", "0")],
                "LIFEBOAT_COPY_CONCURRENCY",
            ),
            (
                vec![("LIFEBOAT_STORAGE_CLASS", "CHEAP")],
                "LIFEBOAT_STORAGE_CLASS",
            ),
            (
                vec![("LIFEBOAT_EXCLUDE_PATTERNS", "a[")],
                "LIFEBOAT_EXCLUDE_PATTERNS",
            ),
            (vec![("LIFEBOAT_TABLES", "bucket/t")], "LIFEBOAT_TABLES"),
            (
                vec![("LIFEBOAT_CONDITIONAL_COPY", "maybe")],
                "LIFEBOAT_CONDITIONAL_COPY",
            ),
            (
                vec![("LIFEBOAT_PER_TABLE_METRICS", "on")],
                "LIFEBOAT_PER_TABLE_METRICS",
            ),
            (
                vec![("LIFEBOAT_BACKUP_ACCOUNT_ID", "1234")],
                "LIFEBOAT_BACKUP_ACCOUNT_ID",
            ),
            (
                vec![(
                    "LIFEBOAT_SOURCE_ACCOUNT_ID",
                    "arn:aws:iam::123456789012:root",
                )],
                "LIFEBOAT_SOURCE_ACCOUNT_ID",
            ),
            (
                vec![("LIFEBOAT_SOURCE_BUCKETS", "backup")],
                "LIFEBOAT_SOURCE_BUCKETS",
            ),
        ];
        for (overrides, variable) in cases {
            let mut vars = BASE.to_vec();
            vars.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
            vars.extend(overrides.iter().copied());
            if variable == "LIFEBOAT_BACKUP_BUCKET" {
                vars.retain(|(k, _)| *k != "LIFEBOAT_BACKUP_BUCKET");
            }
            if variable == "LIFEBOAT_SOURCE_BUCKETS"
                && overrides.len() == 1
                && overrides[0].0 == "LIFEBOAT_BACKUP_BUCKET"
            {
                vars.retain(|(k, _)| *k != "LIFEBOAT_SOURCE_BUCKETS");
            }
            let err = config(&vars).expect_err(variable).to_string();
            assert!(err.contains(variable), "{err} should name {variable}");
        }
    }
}
