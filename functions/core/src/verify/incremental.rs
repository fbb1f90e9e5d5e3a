//! The pure decisions of incremental verification: when a run may go on from a table's proven
//! state ([`plan`]), which log files are new ([`new_log`]), how the state and the new commits
//! combine ([`extend`]), how to check the new files' existence ([`existence_check`]), and what
//! in the source sends a run back to a full proof ([`source_escalation`],
//! [`live_missing_in_source`]).
//!
//! The rule throughout: the incremental path proves the happy case cheaply (new commits that
//! chain on, whose files the backup holds, a source that agrees); anything else is decided by
//! a full proof of the table in the same run, which reports it exactly as before.

use std::collections::BTreeMap;

use crate::delta::{classify_log_file, Commit, LogFileKind, LogFiles};
use crate::listing::TableListing;

use super::state::{LiveSet, StateHeader};

/// How a table is verified this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Every commit read again, the backup listed; why.
    Full(String),
    /// Only what came after the proven version.
    Incremental,
}

/// Whether a run may go on from `state`: it must be this table's, clean, and its full proof
/// younger than `full_proof_hours` (0: every run is a full proof). `may_go_on` is false when
/// the run was asked for explicitly (`{"tables": [...]}`: a full proof).
pub fn plan(
    state: Option<&StateHeader>,
    table: &str,
    now_ms: i64,
    full_proof_hours: u64,
    may_go_on: bool,
) -> Proof {
    let full = |why: &str| Proof::Full(why.to_string());
    if !may_go_on {
        return full("a full proof was asked for");
    }
    let Some(state) = state else {
        return full("no proven state yet");
    };
    if state.table != table {
        return full("the state names another table");
    }
    if !state.clean {
        return full("the last full proof found something to act on");
    }
    if full_proof_hours == 0 {
        return full("LIFEBOAT_FULL_PROOF_HOURS is 0");
    }
    let period_ms = full_proof_hours.saturating_mul(3_600_000) as i64;
    if now_ms.saturating_sub(state.full_proof_at_ms) >= period_ms {
        return Proof::Full(format!(
            "the full re-proof is due (every {full_proof_hours} h)"
        ));
    }
    Proof::Incremental
}

/// How to learn whether the backup holds the new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    /// One HEAD per file.
    Heads,
    /// One listing of the backup table (one request per 1,000 keys).
    Listing,
}

/// HEADs while they take no more requests than listing the backup table would.
pub fn existence_check(files: usize, backup_objects: u64) -> Existence {
    let pages = backup_objects.div_ceil(1000).max(1);
    if files as u64 <= pages {
        Existence::Heads
    } else {
        Existence::Listing
    }
}

/// The log files listed after the proven commit: the new commits by version, or why a full
/// proof is needed. `names` are relative to `_delta_log/`.
pub fn new_log<'a>(
    proven: u64,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<u64>, String> {
    let mut commits = Vec::new();
    let mut others: BTreeMap<u64, &str> = BTreeMap::new();
    for name in names {
        match classify_log_file(name) {
            (_, Some(v)) if v <= proven => {}
            (LogFileKind::Commit, Some(v)) => commits.push(v),
            (_, Some(v)) => {
                others.insert(v, name);
            }
            _ => {}
        }
    }
    commits.sort_unstable();
    for (i, v) in commits.iter().enumerate() {
        let expected = proven + 1 + i as u64;
        if *v != expected {
            return Err(format!(
                "commit {expected} is missing from the backup's log (the next one is {v})"
            ));
        }
    }
    let latest = commits.last().copied().unwrap_or(proven);
    if let Some((v, name)) = others.range(latest + 1..).next() {
        return Err(format!(
            "the backup's log has {name} past its newest commit {latest} (version {v})"
        ));
    }
    Ok(commits)
}

/// A file a new version needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Relative to the table root.
    pub path: String,
    pub size: u64,
    /// False for a deletion-vector file (`size` is a minimum).
    pub exact: bool,
}

impl Need {
    /// Whether an object of `size` bytes satisfies the need.
    pub fn met_by(&self, size: u64) -> bool {
        if self.exact {
            size == self.size
        } else {
            size >= self.size
        }
    }
}

/// What the new commits add to the proven state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The newest version now replayed.
    pub latest: u64,
    /// Files the new versions need that the proven version did not (each path once).
    pub needs: Vec<Need>,
}

/// Applies the new commits (`None`: unreadable) to the proven state's files: they must chain
/// on from `proven` with no gap, each readable, none naming a file outside the table. Returns
/// the files to check, or why a full proof is needed (the state is then not to be used).
pub fn extend(
    live: &mut LiveSet,
    proven: u64,
    commits: Vec<(u64, Option<Commit>)>,
) -> Result<Extension, String> {
    let mut needs: BTreeMap<String, Need> = BTreeMap::new();
    let mut latest = proven;
    for (version, commit) in commits {
        if version != latest + 1 {
            return Err(format!(
                "commit {} is missing from the backup's log",
                latest + 1
            ));
        }
        let Some(commit) = commit else {
            return Err(format!("commit {version} in the backup cannot be read"));
        };
        let outside = commit
            .adds
            .iter()
            .chain(&commit.cdc)
            .flat_map(|f| std::iter::once(&f.path).chain(f.dv.as_ref().map(|d| &d.path)))
            .find(|p| p.contains("://"));
        if let Some(path) = outside {
            return Err(format!("commit {version} names {path}, outside the table"));
        }
        let mut need = |path: &str, size: u64, exact: bool| {
            needs.insert(
                path.to_string(),
                Need {
                    path: path.to_string(),
                    size,
                    exact,
                },
            );
        };
        for cdc in &commit.cdc {
            need(&cdc.path, cdc.size, true);
        }
        let mut removed = std::collections::HashMap::new();
        for path in &commit.removes {
            if let Some(was) = live.get(path) {
                removed.insert(path.as_str(), was);
            }
            live.remove(path);
        }
        for add in &commit.adds {
            // A file re-added as it was (its deletion vector changed) was proven already.
            let was = live
                .get(&add.path)
                .or(removed.get(add.path.as_str()).copied());
            if was != Some((add.size, true)) {
                need(&add.path, add.size, true);
            }
            live.insert(&add.path, add.size, true);
            if let Some(dv) = &add.dv {
                if live.get(&dv.path).is_none_or(|(s, _)| s < dv.min_size) {
                    need(&dv.path, dv.min_size, false);
                }
                live.insert(&dv.path, dv.min_size, false);
            }
        }
        latest = version;
    }
    Ok(Extension {
        latest,
        needs: needs.into_values().collect(),
    })
}

/// What in the source's log needs a full proof to report: no log left, a log that ends before
/// the backup's, a gap readers cannot cross.
pub fn source_escalation(source_log: &LogFiles, backup_latest: u64) -> Option<String> {
    if super::source_log::dropped(source_log) {
        return Some("the source has no log left".into());
    }
    match source_log.latest_version() {
        Some(s) if s < backup_latest => {
            return Some(format!(
                "the source's log ends at {s}, before the backup's {backup_latest}"
            ))
        }
        None => return Some("the source's log is empty".into()),
        _ => {}
    }
    super::source_log::broken(source_log).map(|_| "the source's log is broken".to_string())
}

/// The first file the proven version needs that the source lacks (or holds with another
/// size): the source lost files its current version needs, a full proof reports it.
pub fn live_missing_in_source(live: &LiveSet, source: &TableListing) -> Option<String> {
    live.iter().find_map(|(path, size, exact)| {
        let found = source.get(path).map(|o| o.size);
        let ok = match found {
            Some(s) if exact => s == size,
            Some(s) => s >= size,
            None => false,
        };
        (!ok).then(|| match found {
            None => format!("the source lacks {path}"),
            Some(s) => format!("the source holds {path} with {s} bytes, {size} expected"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{DvFile, LiveFile};
    use crate::ranges::VersionRange;
    use crate::store::ObjectInfo;

    fn header(clean: bool, full_proof_at_ms: i64) -> StateHeader {
        StateHeader {
            format: super::super::state::STATE_FORMAT,
            table: "s3://src/t".into(),
            proven_version: 9,
            proven_at_ms: full_proof_at_ms,
            full_proof_at_ms,
            clean,
            restorable: vec![VersionRange::new(0, 9)],
            unrestorable: vec![],
            oldest_restorable: None,
            newest_restorable: None,
            conflicts: 0,
            backup_objects: 20,
        }
    }

    #[test]
    fn when_a_full_proof_is_due() {
        const H: i64 = 3_600_000;
        let clean = header(true, 0);
        let dirty = header(false, 0);
        type Case<'a> = (
            &'a str,
            Option<&'a StateHeader>,
            &'a str,
            i64,
            u64,
            bool,
            bool,
        );
        let cases: Vec<Case> = vec![
            // name, state, table, now, hours, may go on, incremental?
            (
                "fresh clean state",
                Some(&clean),
                "s3://src/t",
                H,
                24,
                true,
                true,
            ),
            ("no state", None, "s3://src/t", H, 24, true, false),
            ("asked for", Some(&clean), "s3://src/t", H, 24, false, false),
            (
                "another table's",
                Some(&clean),
                "s3://src/u",
                H,
                24,
                true,
                false,
            ),
            (
                "last proof found problems",
                Some(&dirty),
                "s3://src/t",
                H,
                24,
                true,
                false,
            ),
            (
                "just before the day is out",
                Some(&clean),
                "s3://src/t",
                24 * H - 1,
                24,
                true,
                true,
            ),
            (
                "a day old",
                Some(&clean),
                "s3://src/t",
                24 * H,
                24,
                true,
                false,
            ),
            (
                "hourly re-proofs",
                Some(&clean),
                "s3://src/t",
                H,
                1,
                true,
                false,
            ),
            ("always full", Some(&clean), "s3://src/t", 1, 0, true, false),
            (
                "clock behind the proof",
                Some(&clean),
                "s3://src/t",
                -H,
                24,
                true,
                true,
            ),
        ];
        for (name, state, table, now, hours, may, incremental) in cases {
            let got = plan(state, table, now, hours, may);
            assert_eq!(got == Proof::Incremental, incremental, "{name}: {got:?}");
        }
    }

    #[test]
    fn heads_or_a_listing() {
        let cases = [
            (0, 0, Existence::Heads),
            (1, 0, Existence::Heads),
            (2, 999, Existence::Listing),
            (100, 200_000, Existence::Heads),
            (200, 200_000, Existence::Heads),
            (201, 200_000, Existence::Listing),
        ];
        for (files, objects, expected) in cases {
            assert_eq!(
                existence_check(files, objects),
                expected,
                "{files} {objects}"
            );
        }
    }

    #[test]
    fn what_is_new_in_the_log() {
        let name = |v: u64, rest: &str| format!("{v:020}.{rest}");
        type Case = (&'static str, Vec<String>, Result<Vec<u64>, &'static str>);
        let cases: Vec<Case> = vec![
            ("nothing new", vec![], Ok(vec![])),
            (
                "two commits, a checkpoint, the hint and sidecars",
                vec![
                    name(10, "json"),
                    name(11, "checkpoint.parquet"),
                    name(11, "json"),
                    "_last_checkpoint".into(),
                    "_sidecars/x.parquet".into(),
                ],
                Ok(vec![10, 11]),
            ),
            (
                "older files listed after the proven commit are ignored",
                vec![name(9, "json"), name(3, "crc"), name(10, "json")],
                Ok(vec![10]),
            ),
            (
                "a gap",
                vec![name(10, "json"), name(12, "json")],
                Err("commit 11"),
            ),
            ("starts late", vec![name(11, "json")], Err("commit 10")),
            (
                "a checkpoint past the newest commit",
                vec![name(10, "json"), name(12, "checkpoint.parquet")],
                Err("past its newest commit 10"),
            ),
        ];
        for (case, names, expected) in cases {
            let got = new_log(9, names.iter().map(String::as_str));
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{case}"),
                (Err(got), Err(says)) => assert!(got.contains(says), "{case}: {got}"),
                (got, expected) => panic!("{case}: {got:?}, expected {expected:?}"),
            }
        }
    }

    fn file(path: &str, size: u64) -> LiveFile {
        LiveFile {
            path: path.into(),
            size,
            dv: None,
        }
    }

    fn commit(adds: Vec<LiveFile>, removes: &[&str]) -> Option<Commit> {
        Some(Commit {
            adds,
            removes: removes.iter().map(|r| r.to_string()).collect(),
            ..Commit::default()
        })
    }

    #[test]
    fn state_and_new_commits_combine() {
        let proven = || {
            let mut live = LiveSet::default();
            live.insert("a.parquet", 10, true);
            live.insert("b.parquet", 20, true);
            live
        };
        let with_dv = LiveFile {
            dv: Some(DvFile {
                path: "dv.bin".into(),
                min_size: 5,
            }),
            ..file("a.parquet", 10)
        };
        let cdc = Commit {
            cdc: vec![file("_change_data/c.parquet", 3)],
            ..Commit::default()
        };
        type Case = (
            &'static str,
            Vec<(u64, Option<Commit>)>,
            Result<(u64, Vec<&'static str>, Vec<&'static str>), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "no new commit",
                vec![],
                Ok((9, vec![], vec!["a.parquet", "b.parquet"])),
            ),
            (
                "an append, then a delete",
                vec![
                    (10, commit(vec![file("c.parquet", 30)], &[])),
                    (11, commit(vec![], &["b.parquet"])),
                ],
                Ok((11, vec!["c.parquet"], vec!["a.parquet", "c.parquet"])),
            ),
            (
                "a deletion vector on a proven file: only the vector is new",
                vec![(10, commit(vec![with_dv], &["a.parquet"]))],
                Ok((10, vec!["dv.bin"], vec!["a.parquet", "b.parquet", "dv.bin"])),
            ),
            (
                "change data belongs to its version only",
                vec![(10, Some(cdc))],
                Ok((
                    10,
                    vec!["_change_data/c.parquet"],
                    vec!["a.parquet", "b.parquet"],
                )),
            ),
            (
                "an add that replaces a file with another size",
                vec![(10, commit(vec![file("a.parquet", 11)], &[]))],
                Ok((10, vec!["a.parquet"], vec!["a.parquet", "b.parquet"])),
            ),
            (
                "an unreadable commit",
                vec![(10, None)],
                Err("cannot be read"),
            ),
            (
                "a gap",
                vec![(10, commit(vec![], &[])), (12, commit(vec![], &[]))],
                Err("commit 11 is missing"),
            ),
            (
                "a file outside the table",
                vec![(10, commit(vec![file("s3://other/x.parquet", 1)], &[]))],
                Err("outside the table"),
            ),
        ];
        for (name, commits, expected) in cases {
            let mut live = proven();
            let got = extend(&mut live, 9, commits);
            match (got, expected) {
                (Ok(ext), Ok((latest, needs, files))) => {
                    assert_eq!(ext.latest, latest, "{name}");
                    let paths: Vec<&str> = ext.needs.iter().map(|n| n.path.as_str()).collect();
                    assert_eq!(paths, needs, "{name}");
                    let mut live: Vec<&str> = live.iter().map(|(p, _, _)| p).collect();
                    live.sort();
                    assert_eq!(live, files, "{name}");
                }
                (Err(got), Err(says)) => assert!(got.contains(says), "{name}: {got}"),
                (got, expected) => panic!("{name}: {got:?}, expected {expected:?}"),
            }
        }
        let need = Need {
            path: "dv.bin".into(),
            size: 5,
            exact: false,
        };
        assert!(need.met_by(5) && need.met_by(6) && !need.met_by(4));
    }

    fn listing(objects: &[(&str, u64)]) -> TableListing {
        TableListing::from_objects(
            "t/",
            objects.iter().map(|(k, size)| ObjectInfo {
                key: format!("t/{k}"),
                size: *size,
                etag: "e".into(),
                ..ObjectInfo::default()
            }),
        )
        .unwrap()
    }

    #[test]
    fn what_in_the_source_needs_a_full_proof() {
        let commit = |v: u64| (format!("_delta_log/{v:020}.json"), 1u64);
        let log = |versions: &[u64]| {
            let objects: Vec<(String, u64)> = versions.iter().map(|v| commit(*v)).collect();
            let refs: Vec<(&str, u64)> = objects.iter().map(|(k, s)| (k.as_str(), *s)).collect();
            listing(&refs).log()
        };
        let cases: Vec<(&str, LogFiles, Option<&str>)> = vec![
            ("in step", log(&[0, 1, 2]), None),
            ("ahead of the backup", log(&[0, 1, 2, 3]), None),
            ("dropped", log(&[]), Some("no log")),
            ("regressed", log(&[0, 1]), Some("ends at 1")),
            ("broken", log(&[0, 2]), Some("broken")),
        ];
        for (name, source_log, expected) in cases {
            let got = source_escalation(&source_log, 2);
            match (got, expected) {
                (None, None) => {}
                (Some(got), Some(says)) => assert!(got.contains(says), "{name}: {got}"),
                (got, expected) => panic!("{name}: {got:?}, expected {expected:?}"),
            }
        }

        let mut live = LiveSet::default();
        live.insert("a.parquet", 10, true);
        live.insert("dv.bin", 5, false);
        let cases = [
            ("all there", vec![("a.parquet", 10), ("dv.bin", 8)], None),
            (
                "a data file gone",
                vec![("dv.bin", 8)],
                Some("lacks a.parquet"),
            ),
            (
                "another size",
                vec![("a.parquet", 11), ("dv.bin", 8)],
                Some("11 bytes"),
            ),
            (
                "a short vector file",
                vec![("a.parquet", 10), ("dv.bin", 4)],
                Some("dv.bin"),
            ),
        ];
        for (name, objects, expected) in cases {
            let got = live_missing_in_source(&live, &listing(&objects));
            match (got, expected) {
                (None, None) => {}
                (Some(got), Some(says)) => assert!(got.contains(says), "{name}: {got}"),
                (got, expected) => panic!("{name}: {got:?}, expected {expected:?}"),
            }
        }
    }
}
