//! An inventory report's `manifest.json`, as documented: `sourceBucket`, `destinationBucket`
//! (an ARN, `arn:aws:s3:::name`), `version`, `creationTimestamp`, `fileFormat`, `fileSchema`
//! and `files`, each `{key, size, MD5checksum}` in the destination bucket.

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FileFormat {
    #[serde(rename = "CSV")]
    Csv,
    Parquet,
    #[serde(rename = "ORC")]
    Orc,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryManifest {
    pub source_bucket: String,
    pub destination_bucket: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    pub file_format: FileFormat,
    pub file_schema: String,
    pub files: Vec<DataFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataFile {
    pub key: String,
    pub size: u64,
    #[serde(rename = "MD5checksum")]
    pub md5_checksum: String,
}

/// The fields Lifeboat reads, whatever a format calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Bucket,
    Key,
    VersionId,
    IsLatest,
    IsDeleteMarker,
    Size,
    LastModifiedDate,
    ETag,
}

impl Field {
    /// The field a column name stands for: CSV's `fileSchema` names (`LastModifiedDate`) or
    /// Parquet's column names (`last_modified_date`); `None` for the columns not read.
    pub fn from_column(name: &str) -> Option<Field> {
        let folded: String = name
            .chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Some(match folded.as_str() {
            "bucket" => Field::Bucket,
            "key" => Field::Key,
            "versionid" => Field::VersionId,
            "islatest" => Field::IsLatest,
            "isdeletemarker" => Field::IsDeleteMarker,
            "size" => Field::Size,
            "lastmodifieddate" => Field::LastModifiedDate,
            "etag" => Field::ETag,
            _ => return None,
        })
    }
}

impl InventoryManifest {
    pub fn parse(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json)
            .map_err(|e| Error::bad_input(format!("S3 Inventory manifest.json: {e}")))
    }

    /// The destination bucket's name (the manifest gives its ARN).
    pub fn destination_bucket_name(&self) -> &str {
        self.destination_bucket
            .strip_prefix("arn:aws:s3:::")
            .or_else(|| self.destination_bucket.rsplit_once(":::").map(|(_, b)| b))
            .unwrap_or(&self.destination_bucket)
    }

    /// The data files' columns, in order, from `fileSchema`: a comma-separated list for CSV
    /// (`Bucket, Key, VersionId, ...`), a Parquet message type for Parquet (`message
    /// s3.inventory { required binary bucket (UTF8); ... }`). ORC is refused. Bucket and Key
    /// are required.
    pub fn columns(&self) -> Result<Vec<Option<Field>>> {
        let names: Vec<String> = match self.file_format {
            FileFormat::Orc => {
                return Err(Error::bad_input(
                    "S3 Inventory reports in ORC are not supported: configure the inventory \
                     with the CSV or Parquet format (or backfill by prefix: \
                     `lifeboat backfill s3://bucket/prefix`)",
                ))
            }
            FileFormat::Csv => self
                .file_schema
                .split(',')
                .map(|c| c.trim().to_string())
                .collect(),
            FileFormat::Parquet => parquet_columns(&self.file_schema)?,
        };
        let columns: Vec<Option<Field>> = names.iter().map(|n| Field::from_column(n)).collect();
        for needed in [Field::Bucket, Field::Key] {
            if !columns.contains(&Some(needed)) {
                return Err(Error::bad_input(format!(
                    "S3 Inventory fileSchema {:?} has no {needed:?} column",
                    self.file_schema
                )));
            }
        }
        Ok(columns)
    }
}

/// The column names of a Parquet message type: the last word before each `;` (after
/// dropping a trailing `(ANNOTATION)`).
fn parquet_columns(schema: &str) -> Result<Vec<String>> {
    let body = schema
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map(|(body, _)| body)
        .ok_or_else(|| {
            Error::bad_input(format!(
                "S3 Inventory fileSchema {schema:?} is not a Parquet message type"
            ))
        })?;
    Ok(body
        .split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .filter_map(|field| {
            let field = match field.find('(') {
                Some(i) => field[..i].trim(),
                None => field,
            };
            field.split_whitespace().last().map(str::to_string)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSV manifest example of the S3 User Guide ("Inventory manifest").
    const CSV_MANIFEST: &str = r#"{
        "sourceBucket": "amzn-s3-demo-source-bucket",
        "destinationBucket": "arn:aws:s3:::example-inventory-destination-bucket",
        "version": "2016-11-30",
        "creationTimestamp" : "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm, ObjectAccessControlList, ObjectOwner",
        "files": [
            {
                "key": "Inventory/amzn-s3-demo-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
                "size": 2147483647,
                "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"
            }
        ]
    }"#;

    /// The Parquet manifest example of the same page.
    const PARQUET_MANIFEST: &str = r#"{
        "sourceBucket": "amzn-s3-demo-source-bucket",
        "destinationBucket": "arn:aws:s3:::example-destination-bucket",
        "version": "2016-11-30",
        "creationTimestamp" : "1514944800000",
        "fileFormat": "Parquet",
        "fileSchema": "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary storage_class (UTF8); optional boolean is_multipart_uploaded; optional binary replication_status (UTF8); optional binary encryption_status (UTF8); optional int64 object_lock_retain_until_date (TIMESTAMP_MILLIS); optional binary object_lock_mode (UTF8); optional binary object_lock_legal_hold_status (UTF8); optional binary intelligent_tiering_access_tier (UTF8); optional binary bucket_key_status (UTF8); optional binary checksum_algorithm (UTF8); optional binary object_access_control_list (UTF8); optional binary object_owner (UTF8);}",
        "files": [
            {
                "key": "inventory/example-source-bucket/data/d794c570-95bb-4271-9128-26023c8b4900.parquet",
                "size": 56291,
                "MD5checksum": "5825f2e18e1695c2d030b9f6eexample"
            }
        ]
    }"#;

    #[test]
    fn reads_the_documented_manifests() {
        use Field::*;
        let expected = [
            Some(Bucket),
            Some(Key),
            Some(VersionId),
            Some(IsLatest),
            Some(IsDeleteMarker),
            Some(Size),
            Some(LastModifiedDate),
            Some(ETag),
            None,
        ];
        for (json, format, bucket) in [
            (
                CSV_MANIFEST,
                FileFormat::Csv,
                "example-inventory-destination-bucket",
            ),
            (
                PARQUET_MANIFEST,
                FileFormat::Parquet,
                "example-destination-bucket",
            ),
        ] {
            let m = InventoryManifest::parse(json.as_bytes()).unwrap();
            assert_eq!(m.file_format, format);
            assert_eq!(m.source_bucket, "amzn-s3-demo-source-bucket");
            assert_eq!(m.destination_bucket_name(), bucket);
            assert_eq!(m.files.len(), 1);
            let columns = m.columns().unwrap();
            assert_eq!(columns.len(), 20, "{format:?}");
            assert_eq!(columns[..9], expected, "{format:?}");
        }
    }

    #[test]
    fn refuses_orc_and_schemas_without_keys() {
        let orc = CSV_MANIFEST.replace("\"CSV\"", "\"ORC\"");
        let err = InventoryManifest::parse(orc.as_bytes())
            .unwrap()
            .columns()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ORC are not supported"), "{err}");
        let cases = [
            CSV_MANIFEST.replace("Bucket, Key, ", ""),
            CSV_MANIFEST.replace("Key, VersionId", "VersionId"),
            PARQUET_MANIFEST.replace("required binary key (UTF8);", ""),
            PARQUET_MANIFEST.replace("message s3.inventory {", "message s3.inventory"),
        ];
        for json in cases {
            let m = InventoryManifest::parse(json.as_bytes()).unwrap();
            assert!(m.columns().is_err(), "{}", m.file_schema);
        }
        assert!(InventoryManifest::parse(b"{\"fileFormat\": \"CSV\"}").is_err());
        let unknown = CSV_MANIFEST.replace("\"CSV\"", "\"Avro\"");
        assert!(InventoryManifest::parse(unknown.as_bytes()).is_err());
    }
}
