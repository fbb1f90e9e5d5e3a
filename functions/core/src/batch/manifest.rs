//! The CSV manifest of a Batch Operations job, format `S3BatchOperations_CSV_20180820`.
//!
//! As documented: one object per line, `bucket,key` or `bucket,key,versionId`, no header; the
//! keys must be URL-encoded; either every line has a version ID or none has (the job's
//! `Fields` say which: `["Bucket", "Key"]` or `["Bucket", "Key", "VersionId"]`).

use crate::error::{Error, Result};

/// One object of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

/// The columns of a manifest written by [`write_manifest`], as the job's `Spec.Fields`.
pub fn fields(with_versions: bool) -> Vec<&'static str> {
    if with_versions {
        vec!["Bucket", "Key", "VersionId"]
    } else {
        vec!["Bucket", "Key"]
    }
}

/// URL-encodes a key for the manifest: everything but unreserved characters and `/` as
/// `%XX`, and never `+`, so the key reads back the same whether the service decodes `+` as a
/// space (form decoding) or as a plus (plain percent-decoding).
pub fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

/// Decodes a key as written by [`encode_key`] (plain percent-decoding).
pub fn decode_key(encoded: &str) -> Result<String> {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| Error::bad_input(format!("key {encoded:?} is not UTF-8 once decoded")))
}

/// The manifest for `entries`, and whether it carries version IDs (for the job's `Fields`).
/// Refuses an empty job, a mix of lines with and without version IDs (the service would
/// refuse the job), and bucket names or version IDs that would break the CSV.
pub fn write_manifest(entries: &[ManifestEntry]) -> Result<(String, bool)> {
    let Some(first) = entries.first() else {
        return Err(Error::bad_input(
            "a Batch Operations manifest needs at least one object",
        ));
    };
    let with_versions = first.version_id.is_some();
    let mut out = String::with_capacity(entries.len() * 64);
    for entry in entries {
        if entry.version_id.is_some() != with_versions {
            return Err(Error::bad_input(format!(
                "s3://{}/{}: a manifest has version IDs on every line or on none",
                entry.bucket, entry.key
            )));
        }
        let plain = |s: &str| !s.is_empty() && !s.contains([',', '"', '\n', '\r']);
        if !plain(&entry.bucket) || !entry.version_id.as_deref().is_none_or(plain) {
            return Err(Error::bad_input(format!(
                "s3://{}/{}: bucket or version ID not fit for a CSV manifest",
                entry.bucket, entry.key
            )));
        }
        out.push_str(&entry.bucket);
        out.push(',');
        out.push_str(&encode_key(&entry.key));
        if let Some(version) = &entry.version_id {
            out.push(',');
            out.push_str(version);
        }
        out.push('\n');
    }
    Ok((out, with_versions))
}

/// Reads a manifest written in this format back into entries (keys decoded).
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestEntry>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut cols = line.split(',');
            match (cols.next(), cols.next(), cols.next(), cols.next()) {
                (Some(bucket), Some(key), version, None) if !bucket.is_empty() => {
                    Ok(ManifestEntry {
                        bucket: bucket.to_string(),
                        key: decode_key(key)?,
                        version_id: version.filter(|v| !v.is_empty()).map(str::to_string),
                    })
                }
                _ => Err(Error::bad_input(format!("not a manifest line: {line:?}"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(key: &str, version: Option<&str>) -> ManifestEntry {
        ManifestEntry {
            bucket: "backup-bucket".into(),
            key: key.into(),
            version_id: version.map(str::to_string),
        }
    }

    /// The documented example's shape (bucket,key,versionId, no header) with keys that need
    /// encoding; the fixture is the expected file byte for byte.
    #[test]
    fn writes_the_documented_format() {
        let entries = [
            entry(
                "src/t/part=a b/0.parquet",
                Some("PZ9ibn9D5lP6p298B7S9_ceqx1n5EJ0p"),
            ),
            entry(
                "src/t/x+y=1%2F/é.parquet",
                Some("YY_ouuAJByNW1LRBfFMfxMge7XQWxMBF"),
            ),
            entry(
                "src/t/_delta_log/00000000000000000000.json",
                Some("3HL4kqtJlcpXroDTDmJ"),
            ),
        ];
        let (csv, with_versions) = write_manifest(&entries).unwrap();
        assert!(with_versions);
        assert_eq!(fields(with_versions), ["Bucket", "Key", "VersionId"]);
        let expected = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/batch-operations/manifest-with-versions.csv"
        ))
        .unwrap();
        assert_eq!(csv, expected);
        assert_eq!(parse_manifest(&csv).unwrap(), entries);
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, Vec<ManifestEntry>)] = &[
            ("empty", vec![]),
            (
                "mixed versions",
                vec![entry("a", Some("v1")), entry("b", None)],
            ),
            (
                "mixed versions, other way",
                vec![entry("a", None), entry("b", Some("v"))],
            ),
            ("comma in version", vec![entry("a", Some("v,1"))]),
            (
                "comma in bucket",
                vec![ManifestEntry {
                    bucket: "a,b".into(),
                    key: "k".into(),
                    version_id: None,
                }],
            ),
        ];
        for (name, entries) in cases {
            assert!(write_manifest(entries).is_err(), "{name}");
        }
        let (csv, with_versions) = write_manifest(&[entry("a b", None)]).unwrap();
        assert_eq!(
            (csv.as_str(), with_versions),
            ("backup-bucket,a%20b\n", false)
        );
    }

    #[test]
    fn keys_never_carry_a_plus_or_a_comma() {
        for (key, encoded) in [
            ("a+b", "a%2Bb"),
            ("a b", "a%20b"),
            ("a,b", "a%2Cb"),
            ("p=1/%2F", "p%3D1/%252F"),
            ("t/_delta_log/0.json", "t/_delta_log/0.json"),
        ] {
            assert_eq!(encode_key(key), encoded, "{key}");
        }
    }

    proptest! {
        #[test]
        fn keys_round_trip(key in "\\PC{1,80}") {
            let encoded = encode_key(&key);
            prop_assert!(!encoded.contains([',', '+', '"', ' ', '\n']));
            prop_assert_eq!(decode_key(&encoded).unwrap(), key.clone());
            // Form decoding (`+` as a space) gives the same key: there is no `+` to misread.
            prop_assert_eq!(crate::keys::decode_event_key(&encoded).unwrap(), key);
        }
    }
}
