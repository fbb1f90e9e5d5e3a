//! Inventory reports written in S3's documented format, for the tests and the benchmarks:
//! moto produces no inventories, so the tests make their own, the way S3 lays them out.

use std::io::Write;
use std::sync::Arc;

use delta_kernel::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray,
};
use delta_kernel::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use delta_kernel::arrow::record_batch::RecordBatch;
use delta_kernel::parquet::arrow::ArrowWriter;
use md5::{Digest, Md5};
use serde_json::json;

use super::InventoryRow;
use crate::error::{Error, Result};

/// The CSV columns these reports carry (the documented names, in the documented order).
pub const CSV_SCHEMA: &str =
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass";

/// The Parquet message type of the same columns, as a manifest's `fileSchema` gives it.
pub const PARQUET_SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary storage_class (UTF8);}";

/// Form-encodes a key as a CSV report carries it (a space as `+`, `/` kept).
pub fn encode_csv_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b' ');
    percent_encoding::utf8_percent_encode(key, KEEP)
        .to_string()
        .replace(' ', "+")
}

fn opt(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// One gzipped CSV data file of `rows`, every field quoted as S3 writes them.
pub fn csv_gz(rows: &[InventoryRow]) -> Vec<u8> {
    let mut text = String::new();
    for r in rows {
        let fields = [
            r.bucket.clone(),
            encode_csv_key(&r.key),
            opt(r.version_id.as_ref()),
            opt(r.is_latest),
            opt(r.is_delete_marker),
            opt(r.size),
            opt(r
                .last_modified
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
            opt(r.etag.as_ref()),
            "STANDARD".to_string(),
        ];
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect();
        text.push_str(&quoted.join(","));
        text.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// One Parquet data file of `rows`, with the documented column names and types.
pub fn parquet(rows: &[InventoryRow]) -> Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_latest", DataType::Boolean, true),
        Field::new("is_delete_marker", DataType::Boolean, true),
        Field::new("size", DataType::Int64, true),
        Field::new(
            "last_modified_date",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("e_tag", DataType::Utf8, true),
        Field::new("storage_class", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.bucket.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.key.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.version_id.as_deref()),
        )),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.is_latest))),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.is_delete_marker),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.size.map(|s| s as i64)),
        )),
        Arc::new(TimestampMillisecondArray::from_iter(
            rows.iter()
                .map(|r| r.last_modified.map(|t| t.timestamp_millis())),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.etag.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|_| "STANDARD"),
        )),
    ];
    let err =
        |e: &dyn std::fmt::Display| Error::bad_input(format!("writing a Parquet inventory: {e}"));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(&e))?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, None).map_err(|e| err(&e))?;
    writer.write(&batch).map_err(|e| err(&e))?;
    writer.close().map_err(|e| err(&e))?;
    Ok(out)
}

/// The `manifest.json` of a report of `source_bucket` whose data files (key, content) are
/// in `destination_bucket`; `format` is `"CSV"` or `"Parquet"`.
pub fn manifest(
    source_bucket: &str,
    destination_bucket: &str,
    format: &str,
    files: &[(String, Vec<u8>)],
) -> String {
    let schema = if format == "Parquet" {
        PARQUET_SCHEMA
    } else {
        CSV_SCHEMA
    };
    let files: Vec<_> = files
        .iter()
        .map(|(key, data)| {
            let md5: String = Md5::digest(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            json!({"key": key, "size": data.len(), "MD5checksum": md5})
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{destination_bucket}"),
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": format,
        "fileSchema": schema,
        "files": files,
    }))
    .expect("JSON of strings and numbers")
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::data::{read_csv_gz, read_parquet};
    use super::super::manifest::InventoryManifest;
    use super::*;

    fn rows() -> Vec<InventoryRow> {
        let row = |key: &str,
                   version: Option<&str>,
                   latest: Option<bool>,
                   marker: Option<bool>,
                   size: Option<u64>| InventoryRow {
            bucket: "source-bucket".into(),
            key: key.into(),
            version_id: version.map(str::to_string),
            is_latest: latest,
            is_delete_marker: marker,
            size,
            etag: size.map(|s| format!("{s:032x}")),
            last_modified: DateTime::from_timestamp_millis(1_700_000_000_123),
        };
        vec![
            row(
                "t/part=a b/0.parquet",
                Some("v1"),
                Some(true),
                Some(false),
                Some(10),
            ),
            row("t/x+y=1%2F/é,\"q\".parquet", None, None, None, Some(0)),
            row(
                "t/_delta_log/00000000000000000000.json",
                Some("v2"),
                Some(false),
                Some(false),
                Some(7),
            ),
            row("t/gone", Some("v3"), Some(true), Some(true), None),
        ]
    }

    /// What the writers write, the readers read back: the same rows from CSV (keys
    /// form-encoded on the way) and from Parquet (keys as they are).
    #[test]
    fn reports_round_trip_in_both_formats() {
        let rows = rows();
        let gz = csv_gz(&rows);
        let text = {
            use std::io::Read;
            let mut s = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        };
        assert!(text.starts_with("\"source-bucket\",\"t/part%3Da+b/0.parquet\",\"v1\",\"true\",\"false\",\"10\",\"2023-11-14T22:13:20.123Z\""), "{text}");
        assert!(
            text.contains("\"t/x%2By%3D1%252F/%C3%A9%2C%22q%22.parquet\""),
            "{text}"
        );
        let manifest = InventoryManifest::parse(
            manifest("source-bucket", "inv", "CSV", &[("k".into(), gz.clone())]).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            read_csv_gz(&manifest.columns().unwrap(), &gz).unwrap(),
            rows
        );
        let pq = parquet(&rows).unwrap();
        assert_eq!(read_parquet(pq.into()).unwrap(), rows);
    }

    #[test]
    fn refuses_broken_files() {
        let manifest = InventoryManifest::parse(manifest("s", "d", "CSV", &[]).as_bytes()).unwrap();
        let columns = manifest.columns().unwrap();
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let cases = [
            ("not gzipped", b"\"a\",\"b\"\n".to_vec()),
            ("too few columns", gz("\"s\",\"k\"\n")),
            (
                "no key",
                gz("\"s\",\"\",\"\",\"\",\"\",\"1\",\"\",\"\",\"\"\n"),
            ),
            (
                "bad size",
                gz("\"s\",\"k\",\"\",\"\",\"\",\"x\",\"\",\"\",\"\"\n"),
            ),
            (
                "bad boolean",
                gz("\"s\",\"k\",\"\",\"yes\",\"\",\"1\",\"\",\"\",\"\"\n"),
            ),
        ];
        for (name, data) in cases {
            assert!(read_csv_gz(&columns, &data).is_err(), "{name}");
        }
        assert!(read_parquet(bytes::Bytes::from_static(b"PAR1 not really")).is_err());
    }
}
