//! The replicator's placement decision, as plain functions of what the backup holds and what
//! the event describes: copy, already there, keep aside as a conflict, or look again.
//!
//! Invariants:
//! - the first copy of a write-once key is authoritative: a later, different content never
//!   replaces it, it is kept aside under the layout's conflicts prefix;
//! - the same content (by the source identity recorded on the backup copy) is never copied
//!   twice;
//! - a copy onto a key that holds nothing is conditional (`If-None-Match: *`), so a concurrent
//!   duplicate cannot write a second version behind our back.

use std::collections::HashMap;

use crate::events::ObjectRef;
use crate::layout::meta;
use crate::store::ObjectInfo;

/// Where the content an event describes goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Copy it to the backup key; `if_absent` when nothing is there yet.
    Copy { if_absent: bool },
    /// The backup already holds this content.
    AlreadyThere,
    /// A write-once key holds other content: the new content goes aside, the original stays.
    KeepAside,
}

/// Where the content goes, given what the backup key holds (`None`: nothing, or not looked
/// at) and whether the key is write-once.
pub fn place(existing: Option<&ObjectInfo>, object: &ObjectRef, write_once: bool) -> Placement {
    match existing {
        None => Placement::Copy { if_absent: true },
        Some(held) if same_content(&held.metadata, held.size, object) => Placement::AlreadyThere,
        Some(_) if write_once => Placement::KeepAside,
        // A mutable key (`_last_checkpoint`, objects outside tables): a new version.
        Some(_) => Placement::Copy { if_absent: false },
    }
}

/// Where conflicting content goes, given what its conflict key holds already.
pub fn place_aside(kept: Option<&ObjectInfo>, object: &ObjectRef) -> Placement {
    match kept {
        Some(kept) if same_content(&kept.metadata, kept.size, object) => Placement::AlreadyThere,
        kept => Placement::Copy {
            if_absent: kept.is_none(),
        },
    }
}

/// After a copy was refused with 412: whether to look at the destination again. A conditional
/// copy is refused when the destination appeared meanwhile (a concurrent duplicate, or a retry
/// whose first answer was lost); otherwise the source no longer matches its pin.
pub fn look_again(if_absent: bool, destination_now: Option<&ObjectInfo>) -> bool {
    if_absent && destination_now.is_some()
}

/// Whether a backup object (its metadata and size) holds what `object` describes.
pub fn same_content(metadata: &HashMap<String, String>, size: u64, object: &ObjectRef) -> bool {
    if let (Some(theirs), Some(ours)) = (metadata.get(meta::SOURCE_VERSION_ID), &object.version_id)
    {
        return theirs == ours;
    }
    match (metadata.get(meta::SOURCE_ETAG), &object.etag) {
        (Some(theirs), Some(ours)) => theirs == ours && object.size.is_none_or(|s| s == size),
        _ => false,
    }
}

/// What tells one conflicting content from another under the conflicts prefix.
pub fn conflict_tag(object: &ObjectRef, now_ms: i64) -> String {
    object
        .version_id
        .clone()
        .or_else(|| object.etag.clone())
        .unwrap_or_else(|| now_ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(version: Option<&str>, etag: Option<&str>, size: Option<u64>) -> ObjectRef {
        ObjectRef {
            bucket: "src".into(),
            key: "t/_delta_log/00000000000000000001.json".into(),
            version_id: version.map(str::to_string),
            etag: etag.map(str::to_string),
            size,
            event_time: None,
            event_name: "ObjectCreated:Put".into(),
        }
    }

    fn held(version: Option<&str>, etag: Option<&str>, size: u64) -> ObjectInfo {
        let mut metadata = HashMap::new();
        if let Some(v) = version {
            metadata.insert(meta::SOURCE_VERSION_ID.to_string(), v.to_string());
        }
        if let Some(e) = etag {
            metadata.insert(meta::SOURCE_ETAG.to_string(), e.to_string());
        }
        ObjectInfo {
            key: "k".into(),
            size,
            etag: "backup-etag".into(),
            version_id: Some("b1".into()),
            last_modified: None,
            metadata,
        }
    }

    #[test]
    fn placement_table() {
        use Placement::*;
        let cases = [
            // (what the backup holds, the event, write-once, expected)
            (
                None,
                object(None, Some("e1"), Some(3)),
                true,
                Copy { if_absent: true },
            ),
            (
                None,
                object(Some("v1"), None, None),
                false,
                Copy { if_absent: true },
            ),
            (
                Some(held(None, Some("e1"), 3)),
                object(None, Some("e1"), Some(3)),
                true,
                AlreadyThere,
            ),
            (
                Some(held(Some("v1"), Some("e1"), 3)),
                object(Some("v1"), Some("e1"), Some(3)),
                true,
                AlreadyThere,
            ),
            // Same ETag, another size: not the same content.
            (
                Some(held(None, Some("e1"), 3)),
                object(None, Some("e1"), Some(4)),
                true,
                KeepAside,
            ),
            (
                Some(held(None, Some("e1"), 3)),
                object(None, Some("e2"), Some(3)),
                true,
                KeepAside,
            ),
            (
                Some(held(Some("v1"), Some("e1"), 3)),
                object(Some("v2"), Some("e1"), Some(3)),
                true,
                KeepAside,
            ),
            // A mutable key takes the new content as a new version.
            (
                Some(held(None, Some("e1"), 3)),
                object(None, Some("e2"), Some(3)),
                false,
                Copy { if_absent: false },
            ),
            // A backup object without Lifeboat's metadata is never taken for the same content.
            (
                Some(held(None, None, 3)),
                object(None, Some("e1"), Some(3)),
                true,
                KeepAside,
            ),
        ];
        for (existing, event, write_once, expected) in cases {
            assert_eq!(
                place(existing.as_ref(), &event, write_once),
                expected,
                "{existing:?} / {event:?} / write_once={write_once}"
            );
        }
    }

    #[test]
    fn conflicts_are_kept_once() {
        let event = object(None, Some("e2"), Some(3));
        assert_eq!(
            place_aside(None, &event),
            Placement::Copy { if_absent: true }
        );
        assert_eq!(
            place_aside(Some(&held(None, Some("e2"), 3)), &event),
            Placement::AlreadyThere
        );
        assert_eq!(
            place_aside(Some(&held(None, Some("e3"), 3)), &event),
            Placement::Copy { if_absent: false }
        );
    }

    #[test]
    fn precondition_failures() {
        let there = held(None, Some("e1"), 3);
        let cases = [
            (true, Some(&there), true),
            (true, None, false),
            (false, Some(&there), false),
            (false, None, false),
        ];
        for (if_absent, now, expected) in cases {
            assert_eq!(look_again(if_absent, now), expected, "{if_absent} {now:?}");
        }
    }

    #[test]
    fn conflict_tags() {
        assert_eq!(conflict_tag(&object(Some("v9"), Some("e"), None), 5), "v9");
        assert_eq!(conflict_tag(&object(None, Some("e"), None), 5), "e");
        assert_eq!(conflict_tag(&object(None, None, None), 5), "5");
    }
}
