//! A table's proven replay state, kept in the backup under
//! `_lifeboat/state/tables/<backup key of the table>/replay-state.json.gz` and written by the
//! verifier only: the last version it proved restorable, what its replay needs to go on (the
//! files that version needs, with their sizes), the proven restorable ranges and restore
//! points, and when the last full proof ran.
//!
//! The encoding is compact, since a table of 1M live files must load inside the Lambda: gzip
//! of one JSON header line, then one line per needed file, `[size,"path"]` (exact size: a data
//! file) or `[size,"path",0]` (a minimum size: a deletion-vector file). 1M files of ~40-byte
//! paths take ~60 MB as text, a few MB compressed, and ~100 MB once loaded
//! ([`LiveSet`]: a `HashMap<Box<str>, u64>`).

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::S3Location;
use crate::layout::{Layout, STATE_PREFIX};
use crate::ranges::VersionRange;

/// The state format this code writes and reads (another is ignored: a full proof follows).
pub const STATE_FORMAT: u32 = 1;
/// Where the verifier's per-table state lies under [`STATE_PREFIX`] (sharded restores keep
/// theirs under `restores/`).
pub const TABLES_STATE_DIR: &str = "tables/";
const STATE_NAME: &str = "replay-state.json.gz";

/// The key of `table`'s state in the backup bucket.
pub fn state_key(layout: &Layout, table: &S3Location) -> String {
    format!(
        "{STATE_PREFIX}{TABLES_STATE_DIR}{}{STATE_NAME}",
        layout.key(&table.bucket, &table.dir_prefix())
    )
}

/// A restore point as the report gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub version: u64,
    /// RFC 3339, as in the report.
    pub time: Option<String>,
    /// Milliseconds since the epoch (for the RPO).
    pub time_ms: Option<i64>,
}

/// Everything but the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHeader {
    pub format: u32,
    /// The source table, `s3://bucket/path`.
    pub table: String,
    /// The newest version replayed and proven restorable.
    pub proven_version: u64,
    /// When it was proven (ms since the epoch).
    pub proven_at_ms: i64,
    /// When the last full proof (every commit read again, the backup listed) ran.
    pub full_proof_at_ms: i64,
    /// The last full proof found nothing to act on (no critical or warning finding) and its
    /// newest version restorable: only then may a run go on from this state.
    pub clean: bool,
    /// Versions proven restorable.
    pub restorable: Vec<VersionRange>,
    /// Versions the last full proof found unrestorable (as reported).
    pub unrestorable: Vec<VersionRange>,
    pub oldest_restorable: Option<Point>,
    pub newest_restorable: Option<Point>,
    /// Conflict records the table had (a new one means a full proof).
    pub conflicts: usize,
    /// Objects in the backup table, about (to choose between HEADs and a listing).
    pub backup_objects: u64,
}

/// The files the proven version needs: path -> size; a deletion-vector file's entry is its
/// minimum size, marked by the top bit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSet {
    files: HashMap<Box<str>, u64>,
}

const MIN_SIZE: u64 = 1 << 63;

impl LiveSet {
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Adds or replaces a file; `exact` is false for a deletion-vector file (its size is a
    /// minimum). A deletion-vector file needed by several files keeps the largest minimum.
    pub fn insert(&mut self, path: &str, size: u64, exact: bool) {
        let size = size & !MIN_SIZE;
        if exact {
            self.files.insert(path.into(), size);
        } else {
            let entry = self.files.entry(path.into()).or_insert(MIN_SIZE);
            if *entry & MIN_SIZE != 0 {
                *entry = MIN_SIZE | (*entry & !MIN_SIZE).max(size);
            }
        }
    }

    pub fn remove(&mut self, path: &str) {
        self.files.remove(path);
    }

    /// `(path, size, exact)`.
    pub fn get(&self, path: &str) -> Option<(u64, bool)> {
        self.files
            .get(path)
            .map(|s| (*s & !MIN_SIZE, *s & MIN_SIZE == 0))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, bool)> + '_ {
        self.files
            .iter()
            .map(|(p, s)| (&**p, *s & !MIN_SIZE, *s & MIN_SIZE == 0))
    }
}

/// A table's state: the header and the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    pub header: StateHeader,
    pub live: LiveSet,
}

impl TableState {
    /// The gzip-compressed encoding.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let io = |e: std::io::Error| Error::delta(&self.header.table, format!("state: {e}"));
        serde_json::to_writer(&mut gz, &self.header)?;
        gz.write_all(b"\n").map_err(io)?;
        let mut paths: Vec<(&str, u64, bool)> = self.live.iter().collect();
        paths.sort_unstable();
        for (path, size, exact) in paths {
            let line = if exact {
                serde_json::to_string(&(size, path))?
            } else {
                serde_json::to_string(&(size, path, 0))?
            };
            gz.write_all(line.as_bytes()).map_err(io)?;
            gz.write_all(b"\n").map_err(io)?;
        }
        gz.finish().map_err(io)
    }

    /// Decodes [`Self::encode`]'s output; `None` for another format (a full proof follows).
    pub fn decode(body: &[u8]) -> Result<Option<Self>> {
        let bad = |what: String| Error::bad_input(format!("verifier state: {what}"));
        let mut reader = std::io::BufReader::new(flate2::read::GzDecoder::new(body));
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| bad(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_u64()) != Some(STATE_FORMAT as u64) {
            return Ok(None);
        }
        let header: StateHeader = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        let mut live = LiveSet::default();
        let mut rest = String::new();
        reader
            .read_to_string(&mut rest)
            .map_err(|e| bad(e.to_string()))?;
        for line in rest.lines().filter(|l| !l.is_empty()) {
            let entry: (u64, String, Option<u8>) = match serde_json::from_str(line) {
                Ok(e) => e,
                Err(_) => {
                    let (size, path): (u64, String) =
                        serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                    (size, path, None)
                }
            };
            live.insert(&entry.1, entry.0, entry.2.is_none());
        }
        Ok(Some(TableState { header, live }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_compactly() {
        let mut live = LiveSet::default();
        for n in 0..10_000u64 {
            live.insert(
                &format!("part={:03}/part-{n:07}.parquet", n % 100),
                40 + n,
                true,
            );
        }
        live.insert("deletion_vector_x.bin", 10, false);
        live.insert("deletion_vector_x.bin", 30, false);
        live.insert("deletion_vector_x.bin", 20, false);
        live.insert("a \"quoted\"\tpath\n.parquet", 7, true);
        let state = TableState {
            header: StateHeader {
                format: STATE_FORMAT,
                table: "s3://src/t".into(),
                proven_version: 41,
                proven_at_ms: 2,
                full_proof_at_ms: 1,
                clean: true,
                restorable: vec![VersionRange::new(0, 41)],
                unrestorable: vec![],
                oldest_restorable: Some(Point {
                    version: 0,
                    time: None,
                    time_ms: Some(5),
                }),
                newest_restorable: None,
                conflicts: 0,
                backup_objects: 10_042,
            },
            live,
        };
        let body = state.encode().unwrap();
        // ~40 bytes a line before compression; well under 10 bytes a file after.
        assert!(body.len() < 10 * 10_002, "{} bytes", body.len());
        let back = TableState::decode(&body).unwrap().unwrap();
        assert_eq!(back, state);
        assert_eq!(back.live.get("deletion_vector_x.bin"), Some((30, false)));
        assert_eq!(
            back.live.get("a \"quoted\"\tpath\n.parquet"),
            Some((7, true))
        );
        // Another format is ignored, garbage is an error.
        let mut other = state.clone();
        other.header.format = 99;
        assert!(TableState::decode(&other.encode().unwrap())
            .unwrap()
            .is_none());
        assert!(TableState::decode(b"not gzip").is_err());
    }

    #[test]
    fn state_keys_sit_beside_restores() {
        let layout = Layout::new("backup", "{bucket}/").unwrap();
        let table = S3Location::parse("s3://src/db/t").unwrap();
        assert_eq!(
            state_key(&layout, &table),
            "_lifeboat/state/tables/src/db/t/replay-state.json.gz"
        );
    }
}
