//! An inventory report's data files: gzipped CSV or Parquet.

use std::io::Read;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use delta_kernel::arrow::array::{Array, BooleanArray, Int64Array, StringArray};
use delta_kernel::arrow::compute::cast;
use delta_kernel::arrow::datatypes::{DataType, TimeUnit};
use delta_kernel::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::manifest::{Field, FileFormat};
use super::InventoryRow;
use crate::error::{Error, Result};

/// The rows of one data file; `columns` from the manifest's `fileSchema` (CSV only: a
/// Parquet file names its own columns).
pub fn read_file(
    format: FileFormat,
    columns: &[Option<Field>],
    data: Bytes,
) -> Result<Vec<InventoryRow>> {
    match format {
        FileFormat::Csv => read_csv_gz(columns, &data),
        FileFormat::Parquet => read_parquet(data),
        FileFormat::Orc => Err(Error::bad_input(
            "S3 Inventory reports in ORC are not supported",
        )),
    }
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::bad_input(format!("S3 Inventory data file: {what}"))
}

/// A gzipped CSV file without a header, its columns in `fileSchema` order. Keys are
/// URL-encoded (form encoding: `+` is a space), as the documentation says of CSV reports.
pub fn read_csv_gz(columns: &[Option<Field>], gz: &[u8]) -> Result<Vec<InventoryRow>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("not gzipped UTF-8 text: {e}")))?;
    crate::csv::records(&text)?
        .into_iter()
        .map(|record| {
            if record.len() != columns.len() {
                return Err(bad(format!(
                    "{} columns where fileSchema names {}: {record:?}",
                    record.len(),
                    columns.len()
                )));
            }
            let mut row = InventoryRow::empty();
            for (value, field) in record.into_iter().zip(columns) {
                let Some(field) = field else { continue };
                if value.is_empty() {
                    continue;
                }
                match field {
                    Field::Bucket => row.bucket = value,
                    Field::Key => row.key = crate::keys::decode_event_key(&value)?,
                    Field::VersionId => row.version_id = Some(value),
                    Field::IsLatest => row.is_latest = Some(boolean(&value)?),
                    Field::IsDeleteMarker => row.is_delete_marker = Some(boolean(&value)?),
                    Field::Size => {
                        row.size = Some(value.parse().map_err(|_| bad(format!("size {value:?}")))?)
                    }
                    Field::LastModifiedDate => {
                        row.last_modified = Some(
                            DateTime::parse_from_rfc3339(&value)
                                .map_err(|_| bad(format!("date {value:?}")))?
                                .with_timezone(&Utc),
                        )
                    }
                    Field::ETag => row.etag = Some(value.trim_matches('"').to_string()),
                }
            }
            row.validate()
        })
        .collect()
}

fn boolean(value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!("{value:?} is not true or false"))),
    }
}

/// A Parquet file, with the documented column names (`bucket`, `key`, `version_id`,
/// `is_latest`, `is_delete_marker`, `size`, `last_modified_date`, `e_tag`). Keys are taken as
/// they are: the documentation says URL-encoding of keys for the CSV format only.
pub fn read_parquet(data: Bytes) -> Result<Vec<InventoryRow>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .and_then(|b| b.build())
        .map_err(|e| bad(format!("not Parquet: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(bad)?;
        let mut out: Vec<InventoryRow> = (0..batch.num_rows())
            .map(|_| InventoryRow::empty())
            .collect();
        for (i, column) in batch.schema().fields().iter().enumerate() {
            let Some(field) = Field::from_column(column.name()) else {
                continue;
            };
            let array = batch.column(i);
            match field {
                Field::Bucket | Field::Key | Field::VersionId | Field::ETag => {
                    let strings = cast(array, &DataType::Utf8)
                        .map_err(|e| bad(format!("{}: {e}", column.name())))?;
                    let strings = strings
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| bad(column.name()))?;
                    for (row, value) in out.iter_mut().zip(strings.iter()) {
                        let Some(value) = value.filter(|v| !v.is_empty()) else {
                            continue;
                        };
                        match field {
                            Field::Bucket => row.bucket = value.to_string(),
                            Field::Key => row.key = value.to_string(),
                            Field::VersionId => row.version_id = Some(value.to_string()),
                            _ => row.etag = Some(value.trim_matches('"').to_string()),
                        }
                    }
                }
                Field::IsLatest | Field::IsDeleteMarker => {
                    let values = cast(array, &DataType::Boolean)
                        .map_err(|e| bad(format!("{}: {e}", column.name())))?;
                    let values = values
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| bad(column.name()))?;
                    for (row, value) in out.iter_mut().zip(values.iter()) {
                        if field == Field::IsLatest {
                            row.is_latest = value;
                        } else {
                            row.is_delete_marker = value;
                        }
                    }
                }
                Field::Size => {
                    let values =
                        cast(array, &DataType::Int64).map_err(|e| bad(format!("size: {e}")))?;
                    let values = values
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| bad("size"))?;
                    for (row, value) in out.iter_mut().zip(values.iter()) {
                        row.size = value
                            .map(|v| u64::try_from(v).map_err(|_| bad(format!("size {v}"))))
                            .transpose()?;
                    }
                }
                Field::LastModifiedDate => {
                    // TIMESTAMP_MILLIS: milliseconds since the epoch, whatever arrow calls it.
                    let millis = match array.data_type() {
                        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => {
                            cast(array, &DataType::Int64).map_err(bad)?
                        }
                        _ => continue,
                    };
                    let millis = millis
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| bad("last_modified_date"))?;
                    for (row, value) in out.iter_mut().zip(millis.iter()) {
                        row.last_modified = value.and_then(DateTime::from_timestamp_millis);
                    }
                }
            }
        }
        for row in out {
            rows.push(row.validate()?);
        }
    }
    Ok(rows)
}

impl InventoryRow {
    fn empty() -> Self {
        InventoryRow {
            bucket: String::new(),
            key: String::new(),
            version_id: None,
            is_latest: None,
            is_delete_marker: None,
            size: None,
            etag: None,
            last_modified: None,
        }
    }

    fn validate(self) -> Result<Self> {
        if self.bucket.is_empty() || self.key.is_empty() {
            return Err(bad(format!("a row without a bucket or a key: {self:?}")));
        }
        Ok(self)
    }
}
