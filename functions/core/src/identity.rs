//! Content identity that holds on real S3: whether two objects hold the same bytes, decided
//! from what S3 gives for both whatever their encryption or part layout.
//!
//! An ETag is the MD5 of the content only for single-part objects without SSE-KMS; under
//! SSE-KMS it is opaque, a multipart upload has `<md5 of part md5s>-N`, and a copy gets a new
//! ETag of its own. A version id changes with every write, even of the same bytes. So "same
//! content" is decided, in order, by:
//! 1. the size (different sizes: different content);
//! 2. the identity of the source that the replicator recorded on the backup copy (its version
//!    id, then its ETag), or that a restore recorded on a copy it wrote (the backup ETag it
//!    copied);
//! 3. full-object checksums of the same algorithm (S3 gives every new object one, CRC64NVME by
//!    default, and a copy keeps the algorithm);
//! 4. equal ETags (an ETag names one content, even an opaque one);
//! 5. otherwise it cannot be told from metadata, and the caller compares the bytes.
//!
//! Listings carry neither metadata nor checksums, so a listing alone decides only one case
//! without a request: an object not modified since its backup copy was made
//! ([`unchanged_since_copy`]). That keeps the verifier at one LIST per 1,000 keys for a
//! healthy table.

use chrono::{DateTime, Utc};

use crate::layout::meta;
use crate::store::ObjectInfo;

/// Whether two objects hold the same content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Same {
    Yes,
    No,
    /// Metadata cannot tell: compare the bytes.
    Unknown,
}

impl Same {
    /// `Some(answer)` when decided.
    pub fn decided(self) -> Option<bool> {
        match self {
            Same::Yes => Some(true),
            Same::No => Some(false),
            Same::Unknown => None,
        }
    }
}

/// Whether `copy` (a backup copy, or a copy a restore wrote, with its metadata and checksum
/// from a HEAD) holds the content `object` describes (a source object from a HEAD, or from an
/// event: no checksum then).
pub fn same_content(copy: &ObjectInfo, object: &ObjectInfo) -> Same {
    if copy.size != object.size {
        return Same::No;
    }
    let recorded = |name: &str| copy.metadata.get(name).map(String::as_str);
    if let (Some(theirs), Some(ours)) = (recorded(meta::SOURCE_VERSION_ID), &object.version_id) {
        if theirs == ours {
            return Same::Yes;
        }
    }
    if recorded(meta::SOURCE_ETAG) == Some(object.etag.as_str()) && !object.etag.is_empty() {
        return Same::Yes;
    }
    let restored = |a: &ObjectInfo, b: &ObjectInfo| {
        a.metadata.get(meta::RESTORED_FROM_ETAG).map(String::as_str) == Some(b.etag.as_str())
    };
    if (restored(copy, object) || restored(object, copy)) && !object.etag.is_empty() {
        return Same::Yes;
    }
    if let (Some(a), Some(b)) = (&copy.checksum, &object.checksum) {
        if a.full_object && b.full_object && a.algorithm == b.algorithm {
            return if a.value == b.value {
                Same::Yes
            } else {
                Same::No
            };
        }
    }
    if !copy.etag.is_empty() && copy.etag == object.etag {
        return Same::Yes;
    }
    Same::Unknown
}

/// Whether a source object, as a listing shows it, is untouched since its backup copy was
/// made: the same size, and not modified after the copy's own last-modified time (the copy is
/// made after the write it copies; a later write shows a later time). Listings give seconds,
/// so a rewrite in the very second of the copy is not seen here; the replicator sees its
/// event and keeps it aside, and the verifier's next look after a restore or a resend does.
pub fn unchanged_since_copy(
    source_size: u64,
    source_modified: Option<DateTime<Utc>>,
    copy_size: u64,
    copy_modified: Option<DateTime<Utc>>,
) -> bool {
    source_size == copy_size
        && matches!((source_modified, copy_modified), (Some(s), Some(c)) if s <= c)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::Checksum;

    fn object(size: u64, etag: &str, version: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            key: "k".into(),
            size,
            etag: etag.into(),
            version_id: version.map(str::to_string),
            ..ObjectInfo::default()
        }
    }

    fn with_meta(mut o: ObjectInfo, pairs: &[(&str, &str)]) -> ObjectInfo {
        o.metadata = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>();
        o
    }

    fn with_sum(mut o: ObjectInfo, algorithm: &str, value: &str, full: bool) -> ObjectInfo {
        o.checksum = Some(Checksum {
            algorithm: algorithm.into(),
            value: value.into(),
            full_object: full,
        });
        o
    }

    #[test]
    fn identity_table() {
        let kms_copy = object(10, "8f3c0a9b1e2d4c5f6a7b8c9d0e1f2a3b", Some("b1"));
        let cases: Vec<(&str, ObjectInfo, ObjectInfo, Same)> = vec![
            (
                "sizes differ",
                kms_copy.clone(),
                object(11, "x", None),
                Same::No,
            ),
            (
                "the recorded source version",
                with_meta(kms_copy.clone(), &[(meta::SOURCE_VERSION_ID, "v1")]),
                object(10, "e", Some("v1")),
                Same::Yes,
            ),
            (
                "a new source version of the same bytes: the recorded ETag",
                with_meta(
                    kms_copy.clone(),
                    &[(meta::SOURCE_VERSION_ID, "v1"), (meta::SOURCE_ETAG, "e")],
                ),
                object(10, "e", Some("v2")),
                Same::Yes,
            ),
            (
                "a multipart source copied single-part under KMS: checksums",
                with_sum(
                    with_meta(kms_copy.clone(), &[(meta::SOURCE_ETAG, "abc-3")]),
                    "CRC64NVME",
                    "AAA=",
                    true,
                ),
                with_sum(object(10, "def", Some("v2")), "CRC64NVME", "AAA=", true),
                Same::Yes,
            ),
            (
                "garbage of the same length",
                with_sum(
                    with_meta(kms_copy.clone(), &[(meta::SOURCE_ETAG, "e")]),
                    "CRC64NVME",
                    "AAA=",
                    true,
                ),
                with_sum(object(10, "g", Some("v3")), "CRC64NVME", "BBB=", true),
                Same::No,
            ),
            (
                "checksums of different algorithms say nothing",
                with_sum(kms_copy.clone(), "CRC64NVME", "AAA=", true),
                with_sum(object(10, "g", None), "CRC32", "AAA=", true),
                Same::Unknown,
            ),
            (
                "composite checksums say nothing",
                with_sum(kms_copy.clone(), "CRC32", "AAA=-3", false),
                with_sum(object(10, "g", None), "CRC32", "AAA=-3", false),
                Same::Unknown,
            ),
            (
                "a copy a restore wrote",
                with_meta(
                    object(10, "r", None),
                    &[(meta::RESTORED_FROM_ETAG, "8f3c0a9b1e2d4c5f6a7b8c9d0e1f2a3b")],
                ),
                kms_copy.clone(),
                Same::Yes,
            ),
            (
                "equal ETags",
                object(10, "e", None),
                object(10, "e", None),
                Same::Yes,
            ),
            (
                "nothing to go on",
                kms_copy.clone(),
                object(10, "e", None),
                Same::Unknown,
            ),
        ];
        for (name, copy, source, expected) in cases {
            assert_eq!(same_content(&copy, &source), expected, "{name}");
        }
    }

    #[test]
    fn listings_decide_only_untouched_objects() {
        let t = |s: i64| DateTime::from_timestamp(s, 0);
        let cases = [
            (10, t(100), 10, t(101), true),
            (10, t(100), 10, t(100), true),
            (10, t(102), 10, t(101), false),
            (11, t(100), 10, t(101), false),
            (10, None, 10, t(101), false),
        ];
        for (size, modified, copy_size, copy_modified, expected) in cases {
            assert_eq!(
                unchanged_since_copy(size, modified, copy_size, copy_modified),
                expected,
                "{size} {modified:?} {copy_size} {copy_modified:?}"
            );
        }
    }
}
