//! Where things live in the backup bucket. This module is the one place that spells a backup
//! key, a metadata name or a reserved prefix; the replicator, the verifier and the restorer all
//! ask it.
//!
//! Invariants:
//! - a source object `s3://SRC/KEY` is kept at `PREFIX(SRC) + KEY`, where `PREFIX(SRC)` is
//!   `LIFEBOAT_BACKUP_PREFIX` with `{bucket}` replaced by `SRC`, and ends in `/` unless empty;
//!   a table in the backup is therefore itself a Delta table any reader can open;
//! - everything Lifeboat writes for itself lies under [`RESERVED_PREFIX`] (`_lifeboat/`), which
//!   no table key can reach (discovery and listings skip it).

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::keys::S3Location;

/// User-metadata names on every backup object (S3 adds the `x-amz-meta-` prefix).
pub mod meta {
    pub const SOURCE_BUCKET: &str = "lifeboat-source-bucket";
    /// Percent-encoded, since metadata must be ASCII.
    pub const SOURCE_KEY: &str = "lifeboat-source-key";
    pub const SOURCE_VERSION_ID: &str = "lifeboat-source-version-id";
    pub const SOURCE_ETAG: &str = "lifeboat-source-etag";
    pub const SOURCE_SIZE: &str = "lifeboat-source-size";
    /// RFC 3339; Delta's timestamp time travel falls back on it.
    pub const SOURCE_LAST_MODIFIED: &str = "lifeboat-source-last-modified";
    /// On an object a restore wrote: the ETag of the backup copy it was copied from, so a
    /// rerun knows its own copies whatever ETag S3 gave them.
    pub const RESTORED_FROM_ETAG: &str = "lifeboat-restored-from-etag";
}

/// Everything Lifeboat keeps for itself in the backup bucket.
pub const RESERVED_PREFIX: &str = "_lifeboat/";
/// Where conflicting content for a write-once key is kept (never over the original).
pub const CONFLICTS_PREFIX: &str = "_lifeboat/conflicts/";
/// Where the verifier's reports go.
pub const REPORTS_PREFIX: &str = "_lifeboat/reports/";
/// Where the verifier keeps per-table state it has proven (written by the verifier only).
pub const STATE_PREFIX: &str = "_lifeboat/state/";
/// Where the captured Glue Data Catalog definitions go, one write-once record per distinct
/// definition: `_lifeboat/catalog/<database>/<table>/<time>-<digest>.json` (the newest sorts
/// last).
pub const CATALOG_PREFIX: &str = "_lifeboat/catalog/";
/// Where a sharded restore keeps its progress: `_lifeboat/state/restores/<id>/` holds its
/// plan, one manifest per shard and one small record per finished shard (written by the
/// restorer only; [`Layout::restore_key`]).
pub const RESTORES_PREFIX: &str = "_lifeboat/state/restores/";
/// The name of the newest report under [`REPORTS_PREFIX`].
pub const LATEST_REPORT: &str = "latest.json";

/// The backup bucket's layout, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    bucket: String,
    /// `LIFEBOAT_BACKUP_PREFIX`, `{bucket}` not yet replaced.
    template: String,
}

impl Layout {
    /// The layout of `bucket` with the prefix template `template` (`{bucket}` stands for the
    /// source bucket). A template starting with `/` would make keys no reader can address.
    pub fn new(bucket: impl Into<String>, template: impl Into<String>) -> Result<Self> {
        let template = template.into();
        if template.starts_with('/') {
            return Err(Error::config(
                "LIFEBOAT_BACKUP_PREFIX",
                format!("{template:?} must not start with '/'"),
            ));
        }
        if template.starts_with(RESERVED_PREFIX) || template == "_lifeboat" {
            return Err(Error::config(
                "LIFEBOAT_BACKUP_PREFIX",
                format!("{template:?} lies under {RESERVED_PREFIX}, which Lifeboat keeps for its own records"),
            ));
        }
        Ok(Layout {
            bucket: bucket.into(),
            template,
        })
    }

    /// The backup bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix under which `source_bucket`'s objects are kept, with a trailing slash unless
    /// empty.
    pub fn prefix_for(&self, source_bucket: &str) -> String {
        let prefix = self.template.replace("{bucket}", source_bucket);
        let prefix = prefix.trim_start_matches('/');
        if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        }
    }

    /// Where `s3://source_bucket/key` is kept.
    pub fn key(&self, source_bucket: &str, key: &str) -> String {
        format!("{}{}", self.prefix_for(source_bucket), key)
    }

    /// The backup location of a source table (itself a readable Delta table).
    pub fn location(&self, table: &S3Location) -> S3Location {
        S3Location {
            bucket: self.bucket.clone(),
            prefix: self
                .key(&table.bucket, &table.prefix)
                .trim_matches('/')
                .to_string(),
        }
    }

    /// The source table a backup prefix (relative to `source_bucket`'s backup prefix) stands
    /// for.
    pub fn source_table(&self, source_bucket: &str, backup_prefix: &str) -> S3Location {
        let root = self.prefix_for(source_bucket);
        let key = backup_prefix.strip_prefix(&root).unwrap_or(backup_prefix);
        S3Location {
            bucket: source_bucket.to_string(),
            prefix: key.trim_matches('/').to_string(),
        }
    }

    /// Where the content that conflicted with the authoritative copy of
    /// `s3://source_bucket/key` is kept; `tag` tells the conflicting contents apart (their
    /// version id or ETag).
    pub fn conflict_key(&self, source_bucket: &str, key: &str, tag: &str) -> String {
        format!(
            "{CONFLICTS_PREFIX}{}{key}.{tag}",
            self.prefix_for(source_bucket)
        )
    }

    /// The prefix under which the conflicts of `table`'s files are kept.
    pub fn table_conflicts_prefix(&self, table: &S3Location) -> String {
        format!(
            "{CONFLICTS_PREFIX}{}",
            self.key(&table.bucket, &table.dir_prefix())
        )
    }

    /// The keys of a report generated at `at`: its own, and the newest report's.
    pub fn report_keys(at: DateTime<Utc>) -> [String; 2] {
        [
            format!(
                "{REPORTS_PREFIX}{}.json",
                at.format("%Y-%m-%dT%H-%M-%S%.3fZ")
            ),
            format!("{REPORTS_PREFIX}{LATEST_REPORT}"),
        ]
    }

    /// The prefix of the captured definitions of catalog table `database.table`.
    pub fn catalog_prefix(database: &str, table: &str) -> String {
        format!("{CATALOG_PREFIX}{database}/{table}/")
    }

    /// The key of a definition of `database.table` captured at `at`; `digest` tells apart two
    /// definitions captured in the same millisecond.
    pub fn catalog_key(database: &str, table: &str, at: DateTime<Utc>, digest: &str) -> String {
        format!(
            "{}{}-{digest}.json",
            Self::catalog_prefix(database, table),
            at.format("%Y-%m-%dT%H-%M-%S%.3fZ")
        )
    }

    /// The key of `name` (e.g. `plan.json`, `done/00000.json`) in sharded restore `id`'s
    /// progress record.
    pub fn restore_key(id: &str, name: &str) -> String {
        format!("{RESTORES_PREFIX}{id}/{name}")
    }

    /// Whether a backup key is one of Lifeboat's own records rather than a source object.
    pub fn is_reserved(key: &str) -> bool {
        key.starts_with(RESERVED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_template() {
        let cases = [
            ("{bucket}/", "src", "t/0.json", "src/t/0.json"),
            ("{bucket}", "src", "t/0.json", "src/t/0.json"),
            ("mirror/{bucket}", "src", "t/0.json", "mirror/src/t/0.json"),
            ("", "src", "t/0.json", "t/0.json"),
            ("fixed/", "src", "a b/c", "fixed/a b/c"),
        ];
        for (template, bucket, key, expected) in cases {
            let layout = Layout::new("backup", template).unwrap();
            assert_eq!(layout.key(bucket, key), expected, "{template}");
        }
    }

    #[test]
    fn locations_round_trip() {
        let layout = Layout::new("backup", "mirror/{bucket}").unwrap();
        let table = S3Location::parse("s3://src/db/t").unwrap();
        let backup = layout.location(&table);
        assert_eq!(backup.to_string(), "s3://backup/mirror/src/db/t");
        assert_eq!(
            layout.source_table("src", &format!("{}/", backup.prefix)),
            table
        );
    }

    #[test]
    fn reserved_records() {
        let layout = Layout::new("backup", "{bucket}/").unwrap();
        let table = S3Location::parse("s3://src/t").unwrap();
        assert_eq!(
            layout.conflict_key("src", "t/_delta_log/00.json", "v1"),
            "_lifeboat/conflicts/src/t/_delta_log/00.json.v1"
        );
        assert!(layout
            .conflict_key("src", "t/_delta_log/00.json", "v1")
            .starts_with(&layout.table_conflicts_prefix(&table)));
        let at = DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap();
        assert_eq!(
            Layout::report_keys(at),
            [
                "_lifeboat/reports/2023-11-14T22-13-20.005Z.json".to_string(),
                "_lifeboat/reports/latest.json".to_string()
            ]
        );
        assert!(Layout::is_reserved("_lifeboat/reports/latest.json"));
        assert!(!Layout::is_reserved("src/_lifeboat_not"));
    }

    #[test]
    fn bad_templates_name_the_variable() {
        for template in ["/x", "_lifeboat/x", "_lifeboat"] {
            let err = Layout::new("b", template).unwrap_err().to_string();
            assert!(err.contains("LIFEBOAT_BACKUP_PREFIX"), "{err}");
        }
    }
}
