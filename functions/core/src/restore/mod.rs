//! The restorer: plan, then carry out, a rollback, clone or repair of a table to a version the
//! backup can restore. Safe by default (a dry run unless told otherwise), never deletes,
//! idempotent: objects already in place with the same size and ETag are skipped, so a rerun
//! finishes an interrupted restore.
//!
//! - [`request`]: the payload and its checks;
//! - [`plan`]: the restore point and what to copy (reads only);
//! - [`commit`]: the RESTORE commit of a rollback (pure);
//! - [`execute`]: the copies and the commit;
//! - [`response`]: the typed response and the continuation decision.

use std::time::Instant;

use crate::config::Config;
use crate::copy::CopySettings;
use crate::error::Result;
use crate::store::Store;

pub mod catalog;
pub mod commit;
mod copies;
pub mod execute;
pub mod plan;
mod point;
pub mod request;
pub mod response;
pub mod shards;
pub mod timestamps;

pub use commit::PlannedCommit;
pub use execute::RestoreOutcome;
pub use plan::{CopyReason, PlannedCopy, RestorePlan, RestorePoint};
pub use request::{Mode, RestoreRequest};
pub use response::{Continuation, NextStep, RestoreResponse, MAX_CONTINUATIONS};

/// The restorer over any [`Store`].
pub struct Restorer<S> {
    store: S,
    config: Config,
    settings: CopySettings,
    /// The Glue Data Catalog, when `LIFEBOAT_GLUE_DATABASES` is set ([`catalog`]).
    catalog: Option<std::sync::Arc<dyn crate::catalog::Catalog>>,
    /// At most this many copies per run (then the run reports what remains, as when time
    /// runs out); `None`: no limit but the deadline.
    copy_limit: Option<u64>,
    /// The restore work queue ([`shards`]); `None`: every restore runs in one invocation.
    queue: Option<std::sync::Arc<dyn shards::WorkQueue>>,
}

impl Restorer<crate::s3::S3Store> {
    /// The restorer as the function and the CLI run it: configuration and the S3 client from
    /// the environment.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let clients = crate::s3::Clients::from_env().await;
        let glue = !config.glue_databases.is_empty();
        let store = clients.store().with_bucket_owners(config.bucket_owners());
        let queue = config.restore_shards.queue_url.clone();
        let mut restorer = Restorer::new(store, config);
        if let Some(url) = queue {
            restorer = restorer.with_queue(std::sync::Arc::new(shards::SqsQueue::new(
                clients.sqs.clone(),
                url,
            )));
        }
        Ok(match glue {
            true => restorer.with_catalog(std::sync::Arc::new(crate::catalog::GlueCatalog::new(
                clients.glue.clone(),
            ))),
            false => restorer,
        })
    }
}

impl<S: Store> Restorer<S> {
    pub fn new(store: S, config: Config) -> Self {
        let settings = CopySettings::from(&config);
        Restorer {
            store,
            config,
            settings,
            catalog: None,
            copy_limit: None,
            queue: None,
        }
    }

    /// Stops each run after `copies` copies, as a run that reached its deadline stops: what
    /// remains is reported, and a rerun goes on.
    pub fn with_copy_limit(mut self, copies: u64) -> Self {
        self.copy_limit = Some(copies);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Plans, and unless it is a dry run, executes: the response the Lambda and the CLI give.
    pub async fn run(
        &self,
        request: &RestoreRequest,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<RestoreResponse> {
        let mut plan = self.plan(request).await?;
        self.plan_catalog(request, &mut plan).await?;
        let sharded = self.plan_sharding(&mut plan);
        if request.dry_run {
            return Ok(RestoreResponse::new(request, plan));
        }
        if sharded {
            let started = self.start_sharded(request, &plan).await?;
            return Ok(RestoreResponse::new(request, plan).with_sharded(started));
        }
        let outcome = if catalog::catalog_only(&plan) {
            Self::nothing_copied(Instant::now())
        } else {
            self.execute(&plan, deadline, progress).await?
        };
        // The entry is registered once the table it points at is whole again.
        if outcome.complete {
            self.apply_catalog(&mut plan).await?;
        }
        Ok(RestoreResponse::new(request, plan).with_outcome(outcome))
    }
}
