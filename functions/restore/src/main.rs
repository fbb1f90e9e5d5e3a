//! The restore Lambda, invoked on demand (console test event or `aws lambda invoke`) with the
//! payload of `lifeboat::restore::RestoreRequest`. A dry run unless `"dry_run": false`.
//!
//! A restore larger than one invocation can copy stops a minute before the deadline and
//! invokes this function again (asynchronously) with the same payload: the copies already made
//! are skipped, so the follow-up continues where this one stopped. Whether to go on is decided
//! in core ([`RestoreResponse::continuation`]); this binary only invokes.
//!
//! A restore larger than `LIFEBOAT_RESTORE_SHARD_THRESHOLD` data files, with
//! `LIFEBOAT_RESTORE_QUEUE_URL` set, is handed to the restore work queue in shards; the same
//! function consumes that queue (an SQS batch, answered with its partial batch failures), and
//! the invocation that finishes the last shard writes the log (`lifeboat::restore::shards`).

#![recursion_limit = "256"]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use lifeboat::restore::{
    Continuation, RestoreRequest, RestoreResponse, Restorer, MAX_CONTINUATIONS,
};
use lifeboat_lambda::diagnostic;
use serde_json::Value;

/// Time kept back from the deadline to write the commit and answer.
const MARGIN: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lifeboat_lambda::init();
    let restorer = Restorer::from_env().await?;
    let lambda = aws_sdk_lambda::Client::new(&aws_config::load_from_env().await);
    let (restorer, lambda) = (&restorer, &lambda);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = budget(event.context.deadline);
        if is_sqs(&event.payload) {
            let (batch, _) = restorer
                .handle_shards(&event.payload, deadline, |_, _| {})
                .await
                .map_err(diagnostic)?;
            return serde_json::to_value(batch).map_err(|e| diagnostic(e.into()));
        }
        let request = RestoreRequest::from_value(&event.payload).map_err(diagnostic)?;
        let mut response: RestoreResponse = restorer
            .run(&request, deadline, |_, _| {})
            .await
            .map_err(diagnostic)?;
        match response.continuation(&request, MAX_CONTINUATIONS) {
            Continuation::Done => {}
            Continuation::GiveUp(error) => return Err(diagnostic(error)),
            Continuation::FollowUp(next) => {
                let payload = serde_json::to_string(&next).map_err(|e| diagnostic(e.into()))?;
                lambda
                    .invoke()
                    .function_name(&event.context.invoked_function_arn)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(payload))
                    .send()
                    .await
                    .map_err(|e| Diagnostic {
                        error_type: "Lifeboat.Retryable".into(),
                        error_message: format!("could not start the follow-up invocation: {e}; invoke again with the same payload to continue"),
                    })?;
                response.continued_in = Some(format!(
                    "follow-up invocation {} (asynchronous)",
                    next.continuation.unwrap_or(1)
                ));
            }
        }
        serde_json::to_value(response).map_err(|e| diagnostic(e.into()))
    }))
    .await
}

/// Whether the function was invoked by the restore work queue's event source mapping.
fn is_sqs(payload: &Value) -> bool {
    payload["Records"][0]["eventSource"] == "aws:sqs"
}

/// When to stop copying: a minute before Lambda's deadline. Lambda always gives a deadline in
/// the future; a local runtime may give none, or one long past (cargo lambda watch sends 1970):
/// then there is no time limit to keep.
fn budget(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (deadline_ms > now_ms).then(|| {
        let remaining = Duration::from_millis(deadline_ms - now_ms);
        Instant::now() + remaining.saturating_sub(MARGIN)
    })
}
