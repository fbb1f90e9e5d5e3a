//! Discovery: the tables the backup holds, found by walking its folders.

use std::collections::HashSet;

use crate::error::Result;
use crate::keys::S3Location;
use crate::layout::Layout;
use crate::store::Store;

use super::{Queue, Verifier};

/// Folder depth below a source bucket's backup prefix that discovery walks.
const DISCOVERY_MAX_DEPTH: usize = 12;

impl<S: Store, Q: Queue> Verifier<S, Q> {
    /// Every prefix in the backup, under each source bucket's backup prefix, that holds a
    /// `_delta_log/`, as source locations. Walks folders with delimiter listings and does not
    /// descend into a table.
    pub async fn discover_tables(&self) -> Result<Vec<S3Location>> {
        let bucket = &self.config.backup_bucket;
        let layout = self.config.layout();
        let mut tables = Vec::new();
        let mut walked = HashSet::new();
        for source in &self.config.source_buckets {
            let root = layout.prefix_for(source);
            if !walked.insert(root.clone()) {
                tracing::warn!(source_bucket = %source, prefix = %root,
                    "several source buckets share this backup prefix; its tables are attributed to the first");
                continue;
            }
            let mut level = vec![root.clone()];
            for _ in 0..=DISCOVERY_MAX_DEPTH {
                let mut next_level = Vec::new();
                for prefix in level {
                    let folders = self.folders(bucket, &prefix).await?;
                    if folders.iter().any(|f| f.ends_with("/_delta_log/"))
                        || folders.iter().any(|f| f == "_delta_log/")
                    {
                        tables.push(layout.source_table(source, &prefix));
                        continue;
                    }
                    next_level.extend(folders.into_iter().filter(|f| !Layout::is_reserved(f)));
                }
                if next_level.is_empty() {
                    break;
                }
                level = next_level;
            }
        }
        tables.sort();
        tracing::info!(tables = tables.len(), "tables discovered in the backup");
        Ok(tables)
    }

    async fn folders(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let mut continuation = None;
        loop {
            let page = self
                .store
                .list_folders(bucket, prefix, continuation)
                .await?;
            all.extend(page.folders);
            match page.next {
                Some(next) => continuation = Some(next),
                None => return Ok(all),
            }
        }
    }
}
