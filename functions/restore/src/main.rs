//! The restore Lambda. Not implemented yet: it answers every invocation with a clear error.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lifeboat::telemetry::init_lambda_logging();
    run(service_fn(|_event: LambdaEvent<Value>| async {
        Err::<Value, Error>(
            "the restore function is not yet implemented in this build of Lifeboat".into(),
        )
    }))
    .await
}
