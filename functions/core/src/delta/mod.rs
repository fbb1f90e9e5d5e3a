//! Delta log reading over the backup (or any) bucket: which log files exist, the live files of a
//! version, and, for every version, whether everything it needs is there.
//!
//! - [`log`]: the names under `_delta_log/` and what a listing says about the log;
//! - [`actions`]: commit files and the `add`/`remove` actions Lifeboat reads and writes;
//! - [`kernel`]: snapshots read with `delta_kernel` (classic, multi-part and V2 checkpoints with
//!   sidecars, deletion vectors, column mapping).
//!
//! Between checkpoint anchors, the verifier walks commit JSON files forward itself, one GET per
//! commit ([`crate::history`]), so that checking every version of a 10,000-version table costs
//! one read per log file rather than one replay per version.

use url::Url;

use crate::error::{Error, Result};
use crate::keys::S3Location;

pub mod actions;
pub mod hint;
pub mod kernel;
pub mod log;

pub use crate::listing::TableListing;
pub use actions::{dv_file, parse_commit, Commit, DvFile, FileEntry, LiveFile};
pub use kernel::{KernelReader, SnapshotDetail};
pub use log::{check_checkpoint_hint, classify_log_file, LogFileKind, LogFiles};

/// The path of commit `version`, relative to the table root.
pub fn commit_path(version: u64) -> String {
    format!("_delta_log/{version:020}.json")
}

/// The table root as a URL (`s3://bucket/prefix/`), as the kernel and Delta paths use it.
pub fn table_url(table: &S3Location) -> Result<Url> {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'=');
    let mut text = format!("s3://{}/", table.bucket);
    for segment in table.prefix.split('/').filter(|s| !s.is_empty()) {
        text.push_str(&percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string());
        text.push('/');
    }
    Url::parse(&text).map_err(|e| Error::BadLocation {
        location: table.to_string(),
        reason: e.to_string(),
    })
}

/// Turns a path from an `add`/`remove` action (URL-encoded, relative or absolute) into a path
/// relative to the table root, or keeps an absolute URL for files outside it.
pub fn resolve_action_path(root: &Url, path: &str) -> String {
    if path.contains("://") {
        if let Some(rest) = path.strip_prefix(root.as_str()) {
            return decode(rest);
        }
        return path.to_string();
    }
    decode(path)
}

fn decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}
