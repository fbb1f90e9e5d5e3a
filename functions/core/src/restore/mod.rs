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

pub mod commit;
pub mod execute;
pub mod plan;
pub mod request;
pub mod response;

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
}

impl Restorer<crate::s3::S3Store> {
    /// The restorer as the function and the CLI run it: configuration and the S3 client from
    /// the environment.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let clients = crate::s3::Clients::from_env().await;
        Ok(Restorer::new(clients.store(), config))
    }
}

impl<S: Store> Restorer<S> {
    pub fn new(store: S, config: Config) -> Self {
        let settings = CopySettings::from(&config);
        Restorer {
            store,
            config,
            settings,
        }
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
        let plan = self.plan(request).await?;
        if request.dry_run {
            return Ok(RestoreResponse::new(request, plan));
        }
        let outcome = self.execute(&plan, deadline, progress).await?;
        Ok(RestoreResponse::new(request, plan).with_outcome(outcome))
    }
}
