//! The replicator's placement decision, as a plain function of what the backup holds, whether
//! it is the content the event describes, and whether the key is write-once: copy, already
//! there, keep aside as a conflict, or look closer first.
//!
//! Invariants:
//! - every object of a Delta table is write-once: the first copy is authoritative, and a
//!   later, different content never replaces it; it is kept aside under the layout's
//!   conflicts prefix. Objects outside any table are last-writer-wins, with versions;
//! - the same content (decided by [`crate::identity`], never by ETag or version id alone) is
//!   never copied twice: a duplicate event, an in-place rewrite of the same bytes, a restore
//!   writing the original back;
//! - a copy onto a key that holds nothing is conditional (`If-None-Match: *`), so a concurrent
//!   duplicate cannot write a second version behind our back.

use crate::events::ObjectRef;
use crate::identity::Same;
use crate::store::ObjectInfo;

/// Where the content an event describes goes, or what to find out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Copy it to the backup key; `if_absent` when nothing is there yet.
    Copy { if_absent: bool },
    /// The backup already holds this content.
    AlreadyThere,
    /// A write-once key holds other content: the new content goes aside, the original stays.
    KeepAside,
    /// Metadata cannot tell whether the backup holds this content: look at the source's
    /// checksum, then at the bytes.
    LookCloser,
    /// The backup holds other content under a key that may belong to a table: find out.
    FindTable,
}

/// Where the content goes: `existing` is what the backup key holds (`None`: nothing, or not
/// looked at), `same` whether it is the event's content, `write_once` whether the key belongs
/// to a Delta table (`None`: not known yet).
pub fn place(existing: Option<&ObjectInfo>, same: Same, write_once: Option<bool>) -> Placement {
    match (existing, same, write_once) {
        (None, _, _) => Placement::Copy { if_absent: true },
        (Some(_), Same::Yes, _) => Placement::AlreadyThere,
        (Some(_), Same::Unknown, _) => Placement::LookCloser,
        (Some(_), Same::No, None) => Placement::FindTable,
        (Some(_), Same::No, Some(true)) => Placement::KeepAside,
        // A mutable key (`_last_checkpoint`, objects outside tables): a new version.
        (Some(_), Same::No, Some(false)) => Placement::Copy { if_absent: false },
    }
}

/// Where conflicting content goes, given what its conflict key holds already and whether
/// that is the same content.
pub fn place_aside(kept: Option<&ObjectInfo>, same: Same) -> Placement {
    match (kept, same) {
        (Some(_), Same::Yes) => Placement::AlreadyThere,
        (kept, _) => Placement::Copy {
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

/// The source object an event describes, as identity compares it.
pub fn event_object(object: &ObjectRef) -> ObjectInfo {
    ObjectInfo {
        key: object.key.clone(),
        size: object.size.unwrap_or(0),
        etag: object.etag.clone().unwrap_or_default(),
        version_id: object.version_id.clone(),
        last_modified: object.event_time,
        ..ObjectInfo::default()
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

    #[test]
    fn placement_table() {
        use Placement::*;
        let held = ObjectInfo::default();
        let cases = [
            // (what the backup holds, same content?, write-once?, expected)
            (None, Same::Unknown, None, Copy { if_absent: true }),
            (None, Same::No, Some(true), Copy { if_absent: true }),
            (Some(&held), Same::Yes, None, AlreadyThere),
            (Some(&held), Same::Yes, Some(true), AlreadyThere),
            (Some(&held), Same::Unknown, Some(true), LookCloser),
            (Some(&held), Same::No, None, FindTable),
            (Some(&held), Same::No, Some(true), KeepAside),
            (
                Some(&held),
                Same::No,
                Some(false),
                Copy { if_absent: false },
            ),
        ];
        for (existing, same, write_once, expected) in cases {
            assert_eq!(
                place(existing, same, write_once),
                expected,
                "{existing:?} / {same:?} / write_once={write_once:?}"
            );
        }
    }

    #[test]
    fn conflicts_are_kept_once() {
        let kept = ObjectInfo::default();
        let cases = [
            (None, Same::Unknown, Placement::Copy { if_absent: true }),
            (Some(&kept), Same::Yes, Placement::AlreadyThere),
            (Some(&kept), Same::No, Placement::Copy { if_absent: false }),
            (
                Some(&kept),
                Same::Unknown,
                Placement::Copy { if_absent: false },
            ),
        ];
        for (kept, same, expected) in cases {
            assert_eq!(place_aside(kept, same), expected, "{kept:?} {same:?}");
        }
    }

    #[test]
    fn precondition_failures() {
        let there = ObjectInfo::default();
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
