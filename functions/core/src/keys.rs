//! Object keys: decoding event keys, `s3://` locations, and where a source object lives in the
//! backup bucket.

use std::fmt;

use crate::error::{Error, Result};

/// Decodes a key as S3 event notifications carry it: form encoding, where `+` is a space and
/// `%XX` a byte. Decoded exactly once, so a real `%2F` inside a partition value survives as
/// `%2F` when the notification carried `%252F`.
pub fn decode_event_key(raw: &str) -> Result<String> {
    let plus_as_space = raw.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&plus_as_space).collect();
    String::from_utf8(bytes)
        .map_err(|_| Error::bad_input(format!("object key {raw:?} is not UTF-8 once decoded")))
}

/// Encodes a key for use in an `x-amz-copy-source` header (`bucket/key`), where everything but
/// unreserved characters and `/` must be percent-encoded.
pub fn encode_copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let mut source = format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, KEEP)
    );
    if let Some(version) = version_id {
        source.push_str("?versionId=");
        source.push_str(&percent_encoding::utf8_percent_encode(version, KEEP).to_string());
    }
    source
}

/// Encodes a value for S3 user metadata, which must be printable US-ASCII.
pub fn encode_metadata_value(value: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b'\x7f');
    percent_encoding::utf8_percent_encode(value, KEEP).to_string()
}

/// Reverses [`encode_metadata_value`].
pub fn decode_metadata_value(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

/// A location `s3://bucket/prefix`, the prefix without leading or trailing slash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    pub fn parse(location: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadLocation {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        let rest = location
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://bucket/path"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// The key of `relative` under this location.
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{}", self.prefix, relative)
        }
    }

    /// The prefix with a trailing slash, for listing what lies under it ("" for a bucket root).
    pub fn dir_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Whether a key is a table's `_delta_log/_last_checkpoint`, the one Delta file rewritten in
/// place.
pub fn is_last_checkpoint(key: &str) -> bool {
    key == "_delta_log/_last_checkpoint" || key.ends_with("/_delta_log/_last_checkpoint")
}

/// Whether a key is a Delta log file that must never change once written (everything under
/// `_delta_log/` except `_last_checkpoint`).
pub fn is_immutable_log_key(key: &str) -> bool {
    let in_log = key.starts_with("_delta_log/") || key.contains("/_delta_log/");
    in_log && !is_last_checkpoint(key)
}

/// The folders a key lies in, deepest first, each ending in `/` (the bucket root is `""`):
/// where a Delta table that owns the key could have its `_delta_log/`.
pub fn ancestor_folders(key: &str) -> Vec<&str> {
    let mut folders: Vec<&str> = key.match_indices('/').map(|(i, _)| &key[..=i]).collect();
    folders.reverse();
    folders.push("");
    folders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoding_once() {
        assert_eq!(decode_event_key("a+b%2Bc").unwrap(), "a b+c");
        assert_eq!(
            decode_event_key("x%3DA%252FA/f.parquet").unwrap(),
            "x=A%2FA/f.parquet"
        );
        assert_eq!(
            decode_event_key("t%2F_delta_log%2F0.json").unwrap(),
            "t/_delta_log/0.json"
        );
        assert_eq!(decode_event_key("caf%C3%A9").unwrap(), "café");
        assert!(decode_event_key("bad%FF").is_err());
    }

    #[test]
    fn copy_source_is_encoded() {
        assert_eq!(
            encode_copy_source("b", "x=A%2FA/a b+c.parquet", Some("v 1")),
            "b/x%3DA%252FA/a%20b%2Bc.parquet?versionId=v%201"
        );
    }

    #[test]
    fn metadata_round_trips() {
        let key = "dé/a%b c";
        let encoded = encode_metadata_value(key);
        assert!(encoded.is_ascii());
        assert_eq!(decode_metadata_value(&encoded), key);
    }

    #[test]
    fn locations_parse() {
        let loc = S3Location::parse("s3://b/p/q/").unwrap();
        assert_eq!(loc.bucket, "b");
        assert_eq!(loc.prefix, "p/q");
        assert_eq!(loc.key("_delta_log/0.json"), "p/q/_delta_log/0.json");
        assert_eq!(loc.to_string(), "s3://b/p/q");
        assert!(S3Location::parse("b/p").is_err());
        assert!(S3Location::parse("s3:///p").is_err());
    }

    #[test]
    fn ancestors_deepest_first() {
        assert_eq!(
            ancestor_folders("t/p=1/part-0.parquet"),
            ["t/p=1/", "t/", ""]
        );
        assert_eq!(ancestor_folders("x.parquet"), [""]);
    }

    #[test]
    fn immutable_log_keys() {
        assert!(is_immutable_log_key(
            "t/_delta_log/00000000000000000000.json"
        ));
        assert!(is_immutable_log_key(
            "_delta_log/00000000000000000010.checkpoint.parquet"
        ));
        assert!(!is_immutable_log_key("t/_delta_log/_last_checkpoint"));
        assert!(!is_immutable_log_key("t/part-0.parquet"));
    }
}
