//! The restore Lambda, invoked on demand (console test event or `aws lambda invoke`) with the
//! payload of `lifeboat::restore::RestoreRequest`. A dry run unless `"dry_run": false`.
//!
//! A restore larger than one invocation can copy stops a minute before the deadline and
//! invokes this function again (asynchronously) with the same payload: the copies already made
//! are skipped, so the follow-up continues where this one stopped.

#![recursion_limit = "256"]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use lifeboat::restore::{RestoreRequest, Restorer};
use serde_json::{json, Value};

/// Time kept back from the deadline to write the commit and answer.
const MARGIN: Duration = Duration::from_secs(60);
/// A restore that needs more follow-ups than this is stopped, to bound a runaway loop.
const MAX_CONTINUATIONS: u32 = 200;

fn diagnostic(e: lifeboat::Error) -> Diagnostic {
    Diagnostic {
        error_type: e.kind().to_string(),
        error_message: e.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lifeboat::telemetry::init_lambda_logging();
    let restorer = Restorer::from_env().await?;
    let lambda = aws_sdk_lambda::Client::new(&aws_config::load_from_env().await);
    let (restorer, lambda) = (&restorer, &lambda);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = RestoreRequest::from_value(&event.payload).map_err(diagnostic)?;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        // Lambda always gives a deadline in the future; a local runtime may give none, or one
        // long past (cargo lambda watch sends 1970): then there is no time limit to keep.
        let deadline = (event.context.deadline > now_ms).then(|| {
            let remaining = Duration::from_millis(event.context.deadline - now_ms);
            Instant::now() + remaining.saturating_sub(MARGIN)
        });
        let mut response = restorer.run(&request, deadline, |_, _| {}).await.map_err(diagnostic)?;
        let incomplete = response["result"]["complete"] == json!(false);
        if incomplete {
            let next = request.continuation.unwrap_or(0) + 1;
            if next > MAX_CONTINUATIONS {
                return Err(Diagnostic {
                    error_type: "Lifeboat.RestoreError".into(),
                    error_message: format!("the restore is still incomplete after {MAX_CONTINUATIONS} invocations; run it again to continue"),
                });
            }
            let mut payload = serde_json::to_value(&request).map_err(|e| diagnostic(e.into()))?;
            payload["continuation"] = json!(next);
            lambda
                .invoke()
                .function_name(&event.context.invoked_function_arn)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(payload.to_string()))
                .send()
                .await
                .map_err(|e| Diagnostic {
                    error_type: "Lifeboat.Retryable".into(),
                    error_message: format!("could not start the follow-up invocation: {e}; invoke again with the same payload to continue"),
                })?;
            response["continued_in"] = json!(format!("follow-up invocation {next} (asynchronous)"));
        }
        Ok::<Value, Diagnostic>(response)
    }))
    .await
}
