//! Checkpoints a reader could not use: V2 checkpoints whose sidecars (or own file) the backup
//! lacks, and incomplete multi-part checkpoints. Restores leave them out.

use std::sync::Arc;

use super::{Problem, TableHistory};
use crate::delta::KernelReader;
use crate::error::{Error, Result};
use crate::store::Store;

impl TableHistory {
    /// A V2 checkpoint names sidecar files that hold its actions: one whose sidecars (or
    /// whose own file) the backup lacks cannot be used by a reader. Each V2 checkpoint the
    /// replay did not start from is read once with the kernel (V2 checkpoints are rare: one per
    /// checkpoint interval at most); a failure is a `BadCheckpoint`, and restores leave that
    /// checkpoint out so readers replay the commits instead.
    pub(super) async fn check_v2_checkpoints<S: Store>(
        &mut self,
        store: &S,
        kernel: &mut Option<Arc<KernelReader>>,
    ) -> Result<()> {
        let already: std::collections::HashSet<u64> = self
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::BadCheckpoint { version, .. } => Some(*version),
                _ => None,
            })
            .collect();
        let v2: Vec<u64> = self
            .log
            .checkpoints
            .iter()
            .filter(|(v, files)| {
                !already.contains(v)
                    && files
                        .iter()
                        .any(|(k, _)| *k == crate::delta::LogFileKind::CheckpointV2)
            })
            .map(|(v, _)| *v)
            .collect();
        for v in v2 {
            let reader = match kernel {
                Some(k) => k.clone(),
                None => {
                    let k = Arc::new(store.delta_reader(&self.table.bucket).await?);
                    *kernel = Some(k.clone());
                    k
                }
            };
            let location = self.table.clone();
            let read =
                tokio::task::spawn_blocking(move || reader.snapshot_files(&location, Some(v)))
                    .await
                    .map_err(|e| {
                        Error::delta(self.table.to_string(), format!("kernel task failed: {e}"))
                    })?;
            if let Err(err) = read {
                self.problems.push(Problem::BadCheckpoint {
                    version: v,
                    reason: format!("this V2 checkpoint cannot be read from the backup (a sidecar or the checkpoint itself is missing or damaged): {err}"),
                });
            }
        }
        Ok(())
    }

    /// Checkpoints a reader could not use: incomplete or unreadable in the backup. Restores
    /// leave them out, so readers of the restored table replay the commits instead.
    pub fn unusable_checkpoints(&self) -> std::collections::BTreeSet<u64> {
        let mut bad: std::collections::BTreeSet<u64> = self
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::BadCheckpoint { version, .. } => Some(*version),
                _ => None,
            })
            .collect();
        bad.extend(
            self.log
                .checkpoints
                .keys()
                .filter(|v| !self.log.checkpoint_complete(**v)),
        );
        bad
    }
}
