//! The verify Lambda, run on an EventBridge schedule (or invoked with `{"tables": [...]}`):
//! restore points and findings per table, a report under `_lifeboat/reports/`, EMF metrics,
//! and missing objects re-sent to the replicator's queue. All logic lives in `lifeboat::verify`.

// The handler future nests the copy engine and the SDK deeply; some feature sets of the
// dependency graph take the layout computation past the default limit of 128.
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use lifeboat::verify::Verifier;
use lifeboat_lambda::diagnostic;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lifeboat_lambda::init();
    let verifier = Verifier::from_env().await?;
    let verifier = &verifier;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        verifier.handle(&event.payload).await.map_err(diagnostic)
    }))
    .await
}
