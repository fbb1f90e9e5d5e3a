//! What the conformance sweeps over ../shared/delta-test-data share: the tables dealt into
//! shards (each shard a test of its own, with its own local AWS, so nextest runs them side by
//! side), and many versions read in one Python process (`delta_tool.py reads`: DuckDB's delta
//! extension, which applies deletion vectors and reads V2 checkpoints, and deltalake where
//! DuckDB cannot read a version).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::{shared_delta_tables, LocalAws};

/// The versions a table's `_delta_log` names (commits, checkpoints, compactions, `.crc`).
pub fn log_versions(dir: &Path) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(dir.join("_delta_log"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let digits = name.get(..20)?;
                    (digits.bytes().all(|b| b.is_ascii_digit()) && name.len() > 20)
                        .then(|| digits.parse().ok())
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// The shared tables whose log names at least `min_versions` versions, dealt into `shards`
/// by weight (a sweep's work on a table grows with the versions it samples, at most
/// `sampled`, times its log's length; plus ten per MB of data), heaviest first onto the
/// lightest shard; the tables of shard `shard`, each with its index in the full list (for
/// unique paths).
pub fn shared_tables_shard(
    shard: usize,
    shards: usize,
    min_versions: usize,
    sampled: usize,
) -> Vec<(usize, String, PathBuf)> {
    let mut tables: Vec<(usize, String, PathBuf, u64)> = shared_delta_tables()
        .into_iter()
        .enumerate()
        .filter_map(|(index, (name, dir))| {
            let versions = log_versions(&dir).len();
            (versions >= min_versions).then(|| {
                let weight = (versions.min(sampled) * versions) as u64 + dir_size(&dir) / 100_000;
                (index, name, dir, weight)
            })
        })
        .collect();
    tables.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
    let mut loads = vec![0u64; shards];
    let mut mine = Vec::new();
    for (index, name, dir, weight) in tables {
        let lightest = (0..shards).min_by_key(|&s| (loads[s], s)).unwrap();
        loads[lightest] += weight;
        if lightest == shard {
            mine.push((index, name, dir));
        }
    }
    mine.sort_by_key(|t| t.0);
    mine
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One version as a reader read it: its reader, row count and digest, or why no reader could.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Rows {
        reader: String,
        rows: u64,
        sha256: String,
    },
    Unreadable(String),
}

impl Read {
    fn from_value(value: &Value) -> Read {
        match (value["rows"].as_u64(), value["sha256"].as_str()) {
            (Some(rows), Some(sha256)) => Read::Rows {
                reader: value["reader"].as_str().unwrap_or("deltalake").to_string(),
                rows,
                sha256: sha256.to_string(),
            },
            _ => Read::Unreadable(value["error"].as_str().unwrap_or("no answer").to_string()),
        }
    }

    pub fn reader(&self) -> Option<&str> {
        match self {
            Read::Rows { reader, .. } => Some(reader),
            Read::Unreadable(_) => None,
        }
    }

    /// Equal rows (count and digest); the version read is not compared.
    pub fn same_rows(&self, other: &Read) -> bool {
        matches!((self, other), (Read::Rows { rows: a, sha256: x, .. }, Read::Rows { rows: b, sha256: y, .. }) if a == b && x == y)
    }

    pub fn describe(&self) -> String {
        match self {
            Read::Rows {
                reader,
                rows,
                sha256,
            } => format!("{rows} rows {} ({reader})", &sha256[..12]),
            Read::Unreadable(why) => format!("unreadable: {why}"),
        }
    }
}

/// What to read of one table (local directory or `s3://`).
#[derive(Debug, Clone, Default)]
pub struct ReadSpec {
    pub uri: String,
    pub versions: Vec<u64>,
    /// The reader to use for a version (to read a copy as the original was read).
    pub readers: BTreeMap<u64, String>,
    /// Versions whose change data feed (0..V) to read.
    pub cdf: Vec<u64>,
}

/// What was read of one table.
#[derive(Debug, Clone, Default)]
pub struct Reads {
    pub versions: BTreeMap<u64, Read>,
    pub cdf: BTreeMap<u64, Read>,
}

/// Reads every spec in one `delta_tool.py reads` process.
pub fn read_many(aws: &LocalAws, specs: &[ReadSpec]) -> Result<Vec<Reads>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let spec: Vec<Value> = specs
        .iter()
        .map(|s| {
            json!({
                "uri": s.uri,
                "versions": s.versions,
                "readers": s.readers.iter().map(|(v, r)| (v.to_string(), json!(r))).collect::<serde_json::Map<_, _>>(),
                "cdf": s.cdf,
            })
        })
        .collect();
    let out = aws.delta(&["reads", &serde_json::to_string(&spec)?])?;
    let tables = out.as_array().context("reads printed no list")?;
    let parse = |value: &Value| -> BTreeMap<u64, Read> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(v, r)| Some((v.parse().ok()?, Read::from_value(r))))
            .collect()
    };
    Ok(tables
        .iter()
        .zip(specs)
        .map(|(t, spec)| {
            let mut reads = Reads {
                versions: parse(&t["versions"]),
                cdf: parse(&t["cdf"]),
            };
            if let Some(err) = t["error"].as_str() {
                // The table as a whole could not be read (e.g. copied down): every version.
                for v in &spec.versions {
                    reads
                        .versions
                        .entry(*v)
                        .or_insert_with(|| Read::Unreadable(err.to_string()));
                }
            }
            reads
        })
        .collect())
}

/// Every action of a local table's JSON commits, in version order (checkpoints are not read).
pub fn json_actions(dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("_delta_log"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 25 && n.ends_with(".json"))
    });
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether any of a local table's commits turns the change data feed on.
pub fn has_change_data_feed(dir: &Path) -> bool {
    json_actions(dir)
        .iter()
        .any(|a| a["metaData"]["configuration"]["delta.enableChangeDataFeed"] == "true")
}

/// Up to `most` of `versions` (sorted): all of them when they fit, else the first, the last,
/// a middle one and evenly spaced others.
pub fn sample(versions: &[u64], most: usize) -> Vec<u64> {
    if versions.len() <= most || most < 3 {
        return versions.to_vec();
    }
    let last = versions.len() - 1;
    let mut picked: Vec<usize> = (0..most).map(|i| i * last / (most - 1)).collect();
    // The middle one in place of its nearest neighbour (never the first or the last).
    let middle = last / 2;
    if !picked.contains(&middle) {
        let nearest = (1..most - 1)
            .min_by_key(|&i| picked[i].abs_diff(middle))
            .unwrap();
        picked[nearest] = middle;
    }
    picked.sort_unstable();
    picked.dedup();
    picked.into_iter().map(|i| versions[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_keep_the_first_middle_and_last() {
        assert_eq!(sample(&[1, 2, 3], 5), vec![1, 2, 3]);
        let all: Vec<u64> = (0..21).collect();
        let s = sample(&all, 5);
        assert!(
            s.contains(&0) && s.contains(&10) && s.contains(&20),
            "{s:?}"
        );
        assert_eq!(s.len(), 5);
        for n in 3..40 {
            let all: Vec<u64> = (100..100 + n).collect();
            let s = sample(&all, 12);
            assert!(s.len() <= 12 && s.len() == all.len().min(12), "{n}: {s:?}");
            assert!(
                s.contains(&100) && s.contains(&(100 + n - 1)) && s.contains(&(100 + (n - 1) / 2))
            );
        }
    }
}
