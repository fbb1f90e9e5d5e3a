//! One listing of a table prefix, held compactly.
//!
//! The verifier holds a listing of the backup and one of the source for every table it checks;
//! for a table of 1M files a `HashMap<String, ObjectInfo>` takes about 350 bytes per object
//! (two listings: ~770 MB). Here an object takes 48 bytes plus its path relative to the table
//! root, stored page by page as S3 returns them (sorted, each page allocated once at its exact
//! size: no growth slack, no reallocation copies), and is looked up by binary search.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::keys::S3Location;
use crate::store::{ObjectInfo, Store};

/// An ETag in 24 bytes: the MD5 (and part count) of S3's usual ETags, else the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Etag {
    /// `<32 lowercase hex>` (parts 0) or `<32 lowercase hex>-<parts>` (multipart).
    Md5 {
        hash: [u8; 16],
        parts: u32,
    },
    Other(Box<str>),
}

impl Etag {
    /// From an ETag without quotes; `to_string` gives the same text back.
    pub fn parse(etag: &str) -> Self {
        let (hex, parts) = match etag.split_once('-') {
            Some((hex, parts)) => match parts.parse::<u32>() {
                Ok(n) if n > 0 && parts == n.to_string() => (hex, n),
                _ => return Etag::Other(etag.into()),
            },
            None => (etag, 0),
        };
        let mut hash = [0u8; 16];
        let digits = hex.as_bytes();
        if digits.len() != 32 {
            return Etag::Other(etag.into());
        }
        for (i, pair) in digits.chunks(2).enumerate() {
            match (lower_hex(pair[0]), lower_hex(pair[1])) {
                (Some(hi), Some(lo)) => hash[i] = hi << 4 | lo,
                _ => return Etag::Other(etag.into()),
            }
        }
        Etag::Md5 { hash, parts }
    }
}

fn lower_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

impl std::fmt::Display for Etag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Etag::Md5 { hash, parts } => {
                for b in hash {
                    write!(f, "{b:02x}")?;
                }
                if *parts > 0 {
                    write!(f, "-{parts}")?;
                }
                Ok(())
            }
            Etag::Other(text) => f.write_str(text),
        }
    }
}

/// One listed object (its path is kept by the page it belongs to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    name_start: u32,
    name_len: u32,
    pub size: u64,
    pub etag: Etag,
    /// Milliseconds since the epoch; `i64::MIN` when the listing gave no time.
    last_modified_ms: i64,
}

impl Listed {
    pub fn last_modified(&self) -> Option<DateTime<Utc>> {
        if self.last_modified_ms == i64::MIN {
            None
        } else {
            DateTime::from_timestamp_millis(self.last_modified_ms)
        }
    }
}

/// One page of a listing: the paths of its objects in one allocation, sorted.
#[derive(Debug, Clone)]
struct Page {
    names: Box<str>,
    objects: Box<[Listed]>,
}

impl Page {
    fn new(prefix: &str, mut objects: Vec<(String, ObjectInfo)>) -> Result<Self> {
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        objects.dedup_by(|a, b| a.0 == b.0);
        let mut names = String::with_capacity(objects.iter().map(|(n, _)| n.len()).sum());
        let mut listed = Vec::with_capacity(objects.len());
        for (name, info) in objects {
            let (Ok(name_start), Ok(name_len)) =
                (u32::try_from(names.len()), u32::try_from(name.len()))
            else {
                return Err(Error::delta(
                    prefix,
                    "the listing's paths exceed 4 GiB in one page; this table is too large to hold",
                ));
            };
            names.push_str(&name);
            listed.push(Listed {
                name_start,
                name_len,
                size: info.size,
                etag: Etag::parse(&info.etag),
                last_modified_ms: info
                    .last_modified
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(i64::MIN),
            });
        }
        Ok(Page {
            names: names.into_boxed_str(),
            objects: listed.into_boxed_slice(),
        })
    }

    fn name(&self, listed: &Listed) -> &str {
        let start = listed.name_start as usize;
        &self.names[start..start + listed.name_len as usize]
    }

    fn first(&self) -> Option<&str> {
        self.objects.first().map(|o| self.name(o))
    }

    fn last(&self) -> Option<&str> {
        self.objects.last().map(|o| self.name(o))
    }
}

/// Every object under a table prefix, by path relative to the table root, sorted.
#[derive(Debug, Clone, Default)]
pub struct TableListing {
    /// The table's prefix in its bucket (ends in `/`).
    prefix: String,
    pages: Vec<Page>,
    len: usize,
}

impl TableListing {
    /// Lists everything under `table` (one LIST request per 1,000 keys), holding one page of
    /// full `ObjectInfo`s at a time.
    pub async fn load<S: Store>(store: &S, table: &S3Location) -> Result<Self> {
        let prefix = table.dir_prefix();
        let mut listing = TableListing {
            prefix: prefix.clone(),
            ..Default::default()
        };
        let mut continuation = None;
        loop {
            let page = store
                .list_page(&table.bucket, &prefix, continuation)
                .await?;
            listing.push_page(page.objects)?;
            match page.next {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        listing.ensure_sorted()?;
        Ok(listing)
    }

    /// From objects already listed under `prefix` (keys outside it are ignored).
    pub fn from_objects(
        prefix: &str,
        objects: impl IntoIterator<Item = ObjectInfo>,
    ) -> Result<Self> {
        let mut listing = TableListing {
            prefix: prefix.to_string(),
            ..Default::default()
        };
        listing.push_page(objects.into_iter().collect())?;
        Ok(listing)
    }

    fn push_page(&mut self, objects: Vec<ObjectInfo>) -> Result<()> {
        let named: Vec<(String, ObjectInfo)> = objects
            .into_iter()
            .filter_map(|o| {
                let relative = o.key.strip_prefix(&self.prefix)?.to_string();
                Some((relative, o))
            })
            .collect();
        if named.is_empty() {
            return Ok(());
        }
        let page = Page::new(&self.prefix, named)?;
        self.len += page.objects.len();
        self.pages.push(page);
        Ok(())
    }

    /// S3 lists keys in order, page after page; a server that does not gets one sorted page.
    fn ensure_sorted(&mut self) -> Result<()> {
        let in_order = self.pages.windows(2).all(|w| w[0].last() < w[1].first());
        if in_order {
            return Ok(());
        }
        let all: Vec<ObjectInfo> = self
            .iter()
            .map(|(path, listed)| self.object(path, listed))
            .collect();
        let merged = TableListing::from_objects(&self.prefix, all)?;
        *self = merged;
        Ok(())
    }

    /// The table's prefix in its bucket (ends in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The listed object at `relative` (a path relative to the table root).
    pub fn get(&self, relative: &str) -> Option<&Listed> {
        let page = self
            .pages
            .partition_point(|p| p.last().is_some_and(|last| last < relative));
        let page = self.pages.get(page)?;
        let i = page
            .objects
            .binary_search_by(|o| page.name(o).cmp(relative))
            .ok()?;
        Some(&page.objects[i])
    }

    /// Every object, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Listed)> + '_ {
        self.pages
            .iter()
            .flat_map(|p| p.objects.iter().map(move |o| (p.name(o), o)))
    }

    /// Every path (relative to the table root), in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter().map(|(path, _)| path)
    }

    /// The object's full key in its bucket.
    pub fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }

    /// The object as a listing describes it (no version id, no metadata).
    pub fn object(&self, relative: &str, listed: &Listed) -> ObjectInfo {
        ObjectInfo {
            key: self.key(relative),
            size: listed.size,
            etag: listed.etag.to_string(),
            version_id: None,
            last_modified: listed.last_modified(),
            ..ObjectInfo::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info(key: &str, size: u64, etag: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            etag: etag.into(),
            version_id: None,
            last_modified: DateTime::from_timestamp_millis(1_700_000_000_123),
            ..ObjectInfo::default()
        }
    }

    #[test]
    fn etags_round_trip_and_compact() {
        for text in [
            "9bb58f26192e4ba00f01e2e7b136bbd8",
            "9bb58f26192e4ba00f01e2e7b136bbd8-12",
            "9BB58F26192E4BA00F01E2E7B136BBD8",
            "9bb58f26192e4ba00f01e2e7b136bbd8-0",
            "9bb58f26192e4ba00f01e2e7b136bbd8-012",
            "abc",
            "",
            "W/\"x\"",
        ] {
            let etag = Etag::parse(text);
            assert_eq!(etag.to_string(), text);
        }
        assert!(matches!(
            Etag::parse("9bb58f26192e4ba00f01e2e7b136bbd8-3"),
            Etag::Md5 { parts: 3, .. }
        ));
        assert!(matches!(
            Etag::parse("9BB58F26192E4BA00F01E2E7B136BBD8"),
            Etag::Other(_)
        ));
        assert_eq!(std::mem::size_of::<Etag>(), 24);
        assert_eq!(std::mem::size_of::<Listed>(), 48);
    }

    #[test]
    fn lookups_across_pages_and_out_of_order_servers() {
        let prefix = "backup/t/";
        let page = |keys: &[&str]| -> Vec<ObjectInfo> {
            keys.iter()
                .map(|k| info(&format!("{prefix}{k}"), k.len() as u64, "e"))
                .collect()
        };
        let mut listing = TableListing {
            prefix: prefix.into(),
            ..Default::default()
        };
        listing
            .push_page(page(&["_delta_log/0.json", "a/1", "a/2"]))
            .unwrap();
        listing.push_page(page(&["b", "c=%20/d"])).unwrap();
        listing
            .push_page(vec![info("elsewhere/x", 1, "e")])
            .unwrap();
        listing.ensure_sorted().unwrap();
        assert_eq!(listing.len(), 5);
        assert_eq!(listing.pages.len(), 2);
        for key in ["_delta_log/0.json", "a/1", "a/2", "b", "c=%20/d"] {
            assert_eq!(listing.get(key).unwrap().size, key.len() as u64, "{key}");
        }
        for key in ["", "a", "a/3", "bb", "z", "elsewhere/x"] {
            assert!(listing.get(key).is_none(), "{key}");
        }
        let o = listing.object("a/2", listing.get("a/2").unwrap());
        assert_eq!(o.key, "backup/t/a/2");
        assert_eq!(
            o.last_modified,
            DateTime::from_timestamp_millis(1_700_000_000_123)
        );

        // Pages out of order (not S3, but some servers): still found, in order.
        let mut listing = TableListing {
            prefix: prefix.into(),
            ..Default::default()
        };
        listing.push_page(page(&["m", "z"])).unwrap();
        listing.push_page(page(&["a", "n"])).unwrap();
        listing.ensure_sorted().unwrap();
        assert_eq!(listing.paths().collect::<Vec<_>>(), ["a", "m", "n", "z"]);
        assert!(listing.get("n").is_some() && listing.get("a").is_some());
    }

    proptest! {
        #[test]
        fn every_listed_path_is_found(mut keys in proptest::collection::btree_set("[a-c/=%]{0,6}", 0..60), split in 1usize..20) {
            keys.remove("");
            let keys: Vec<String> = keys.into_iter().collect();
            let mut listing = TableListing { prefix: "p/".into(), ..Default::default() };
            for chunk in keys.chunks(split) {
                listing.push_page(chunk.iter().map(|k| info(&format!("p/{k}"), 1, "e")).collect()).unwrap();
            }
            listing.ensure_sorted().unwrap();
            prop_assert_eq!(listing.len(), keys.len());
            for k in &keys {
                prop_assert!(listing.get(k).is_some());
                let absent = format!("{k}~");
                prop_assert!(listing.get(&absent).is_none());
            }
            prop_assert!(listing.paths().eq(keys.iter().map(|k| k.as_str())));
        }
    }
}
