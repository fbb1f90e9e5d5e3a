//! Inclusive ranges of versions: the one shape every JSON output uses for them
//! (`{"first": 0, "last": 4}`), and how they read in a sentence (`0..4, 7`).

use serde::{Deserialize, Serialize};

/// An inclusive range of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionRange {
    pub first: u64,
    pub last: u64,
}

impl VersionRange {
    pub fn new(first: u64, last: u64) -> Self {
        VersionRange { first, last }
    }

    pub fn contains(&self, version: u64) -> bool {
        self.first <= version && version <= self.last
    }
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}..{}", self.first, self.last)
        }
    }
}

/// Appends `first..=last` to ranges sorted by `first`, merging it with the last range when
/// they touch or overlap.
pub fn push_range(ranges: &mut Vec<VersionRange>, first: u64, last: u64) {
    match ranges.last_mut() {
        Some(r) if first <= r.last.saturating_add(1) => r.last = r.last.max(last),
        _ => ranges.push(VersionRange { first, last }),
    }
}

/// The ranges as a person reads them: `0..4, 7`, at most five named; `none` when empty.
pub fn ranges_text(ranges: &[VersionRange]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    let mut parts: Vec<String> = ranges.iter().take(5).map(|r| r.to_string()).collect();
    if ranges.len() > 5 {
        parts.push("...".into());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_read_well() {
        let mut r = Vec::new();
        for (a, b) in [(0, 1), (2, 2), (5, 7), (6, 9), (11, 11)] {
            push_range(&mut r, a, b);
        }
        assert_eq!(
            r,
            vec![
                VersionRange::new(0, 2),
                VersionRange::new(5, 9),
                VersionRange::new(11, 11)
            ]
        );
        assert_eq!(ranges_text(&r), "0..2, 5..9, 11");
        assert_eq!(ranges_text(&[]), "none");
        let many: Vec<VersionRange> = (0..7).map(|v| VersionRange::new(v * 3, v * 3)).collect();
        assert_eq!(ranges_text(&many), "0, 3, 6, 9, 12, ...");
        assert_eq!(
            serde_json::to_value(VersionRange::new(3, 4)).unwrap(),
            serde_json::json!({"first": 3, "last": 4})
        );
    }
}
