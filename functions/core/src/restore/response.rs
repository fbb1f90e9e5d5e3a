//! What a restore answers, as one type the Lambda returns, the CLI prints and the tests read;
//! and the decision whether a restore goes on in a follow-up invocation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::execute::RestoreOutcome;
use super::plan::RestorePlan;
use super::request::RestoreRequest;

/// A restore larger than this many invocations is stopped, to bound a runaway loop.
pub const MAX_CONTINUATIONS: u32 = 200;

/// The response of a restore: the plan, and after a real run what was done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreResponse {
    pub dry_run: bool,
    pub plan: RestorePlan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RestoreOutcome>,
    /// What happens next, in a sentence: a dry run's, or an incomplete restore's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextStep>,
    /// The follow-up invocation this restore continues in, when it did not fit this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_in: Option<String>,
    /// A restore handed to the restore work queue in shards ([`super::shards`]): its id and
    /// how to follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharded: Option<super::shards::ShardedStart>,
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum NextStep {
    /// Nothing was written: send the same request as a real run to restore.
    RunForReal,
    /// Time ran out: the same request again continues; copies already made are skipped.
    Continue { remaining_objects: u64 },
}

impl NextStep {
    /// The step in the words of the Lambda's payload.
    pub fn for_payload(&self) -> String {
        match self {
            NextStep::RunForReal => "this was a dry run: nothing was written. Send the same payload with \"dry_run\": false to restore".into(),
            NextStep::Continue { remaining_objects } => format!(
                "{remaining_objects} object(s) remain: the restore continues in a follow-up invocation with the same payload; already copied objects are skipped"
            ),
        }
    }
}

/// Whether a restore is done, goes on in a follow-up invocation, or gives up.
#[derive(Debug)]
pub enum Continuation {
    Done,
    /// Invoke again with this request.
    FollowUp(RestoreRequest),
    /// Too many follow-ups: stop, and say how to go on.
    GiveUp(Error),
}

impl RestoreResponse {
    pub fn new(request: &RestoreRequest, plan: RestorePlan) -> Self {
        RestoreResponse {
            dry_run: request.dry_run,
            plan,
            result: None,
            next: request.dry_run.then_some(NextStep::RunForReal),
            continued_in: None,
            sharded: None,
        }
    }

    /// Records what a real run did.
    pub fn with_outcome(mut self, outcome: RestoreOutcome) -> Self {
        self.next = (!outcome.complete).then_some(NextStep::Continue {
            remaining_objects: outcome.remaining_objects,
        });
        self.result = Some(outcome);
        self
    }

    /// Whether a real run stopped before every copy was made.
    pub fn incomplete(&self) -> bool {
        self.result.as_ref().is_some_and(|r| !r.complete)
    }

    /// What follows `request`, which gave this response: nothing, a follow-up invocation
    /// (numbered), or giving up after `max` follow-ups.
    pub fn continuation(&self, request: &RestoreRequest, max: u32) -> Continuation {
        if !self.incomplete() {
            return Continuation::Done;
        }
        let next = request.continuation.unwrap_or(0) + 1;
        if next > max {
            return Continuation::GiveUp(Error::Restore(format!(
                "the restore is still incomplete after {max} invocations; run it again to continue"
            )));
        }
        Continuation::FollowUp(RestoreRequest {
            continuation: Some(next),
            ..request.clone()
        })
    }

    /// The response as JSON.
    pub fn to_value(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(self)?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(continuation: Option<u32>, dry_run: bool) -> RestoreRequest {
        let mut r = RestoreRequest::from_value(
            &json!({"table": "s3://src/t", "mode": "repair", "dry_run": dry_run}),
        )
        .unwrap();
        r.continuation = continuation;
        r
    }

    fn outcome(complete: bool) -> RestoreOutcome {
        RestoreOutcome {
            copied: 3,
            remaining_objects: if complete { 0 } else { 7 },
            complete,
            ..RestoreOutcome::default()
        }
    }

    #[test]
    fn continuation_table() {
        // (continuation of the request, outcome complete?, expected: None = done,
        // Some(Ok(n)) = follow-up n, Some(Err) = give up)
        type Expected = Option<std::result::Result<u32, ()>>;
        let cases: [(Option<u32>, bool, Expected); 5] = [
            (None, true, None),
            (None, false, Some(Ok(1))),
            (Some(4), false, Some(Ok(5))),
            (Some(MAX_CONTINUATIONS), false, Some(Err(()))),
            (Some(MAX_CONTINUATIONS), true, None),
        ];
        for (continuation, complete, expected) in cases {
            let request = request(continuation, false);
            let response = RestoreResponse::new(&request, RestorePlan::default())
                .with_outcome(outcome(complete));
            let got = match response.continuation(&request, MAX_CONTINUATIONS) {
                Continuation::Done => None,
                Continuation::FollowUp(next) => Some(Ok(next.continuation.unwrap())),
                Continuation::GiveUp(_) => Some(Err(())),
            };
            assert_eq!(got, expected, "{continuation:?} {complete}");
        }
        // A dry run never continues.
        let dry = request(None, true);
        let response = RestoreResponse::new(&dry, RestorePlan::default());
        assert!(matches!(
            response.continuation(&dry, MAX_CONTINUATIONS),
            Continuation::Done
        ));
        assert_eq!(response.next, Some(NextStep::RunForReal));
    }

    #[test]
    fn round_trips_as_json() {
        let request = request(None, false);
        let response =
            RestoreResponse::new(&request, RestorePlan::default()).with_outcome(outcome(false));
        let value = response.to_value().unwrap();
        assert_eq!(value["result"]["complete"], false);
        assert_eq!(value["next"]["step"], "continue");
        assert_eq!(value["next"]["remaining_objects"], 7);
        let back: RestoreResponse = serde_json::from_value(value).unwrap();
        assert_eq!(back.result, response.result);
        assert!(back
            .next
            .unwrap()
            .for_payload()
            .contains("7 object(s) remain"));
    }
}
