//! The replicate Lambda: S3 object-created events (direct, via SQS, or EventBridge) in, server-side
//! copies into the backup bucket out. All logic lives in `lifeboat::replicate`.

// The handler future nests the copy engine and the SDK deeply; some feature sets of the
// dependency graph take the layout computation past the default limit of 128.
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use lifeboat::replicate::Replicator;
use lifeboat_lambda::diagnostic;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lifeboat_lambda::init();
    let replicator = Replicator::from_env().await?;
    let replicator = &replicator;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        replicator.handle(&event.payload).await.map_err(diagnostic)
    }))
    .await
}
