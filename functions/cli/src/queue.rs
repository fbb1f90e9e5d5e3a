//! The one driver from the replicator's SQS queue into a replicate handler, doing what
//! Lambda's SQS event source mapping does: receive up to 10 messages, hand them over as one
//! SQS event, delete the messages the handler did not report in `batchItemFailures`, leave
//! those it did for SQS to deliver again.
//!
//! The handler is an async function from the SQS event to the handler's JSON response, so the
//! same driver feeds the in-process replicator (`lifeboat replicate --queue`, the demo, the
//! test harness) and the deployed Lambda binary (the drills). A handler error (the whole
//! invocation failed) stops the driver with that error and deletes nothing of the batch.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

/// SQS's largest receive, and Lambda's default batch size for SQS.
pub const BATCH_SIZE: i32 = 10;

/// What to do with the messages a handler reported as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Leave them in the queue, invisible until their visibility timeout ends, then SQS
    /// delivers them again (to a later run). The driver stops once the queue is empty.
    Leave,
    /// Deliver them again, as SQS does once their visibility timeout ends, but without the
    /// wait: each round drives the queue until it is empty, then makes that round's failed
    /// messages visible at once, until a round has no failures. Fails after `max_rounds`.
    Redeliver { max_rounds: usize },
}

/// The queue and how to drive it.
#[derive(Debug, Clone)]
pub struct QueueDriver {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// Seconds a received message stays invisible to other receivers (and, when it failed
    /// and is left, until SQS delivers it again).
    pub visibility_timeout: i32,
    /// How long the first receive after a non-empty one waits for messages to arrive.
    pub wait_seconds: i32,
    /// Consecutive empty receives that mean the queue is empty.
    pub empty_receives: usize,
    pub failed: Failed,
}

/// What one receive and invocation did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Batch {
    /// Messages received (and handed to the handler).
    pub messages: usize,
    /// Messages deleted from the queue.
    pub deleted: usize,
    /// The ids of the messages the handler reported as failed.
    pub failed: Vec<String>,
}

/// What driving the queue did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Drained {
    /// Handler invocations (one per non-empty receive).
    pub batches: usize,
    /// Deliveries: messages handed to the handler, a redelivered message counted each time.
    pub messages: usize,
    /// Messages deleted from the queue.
    pub deleted: usize,
    /// The ids of the messages still failing at the end (left in the queue).
    pub failed: Vec<String>,
    /// Deliveries in each round that delivered any (one round unless failed messages were
    /// redelivered).
    pub rounds: Vec<usize>,
}

impl Drained {
    fn add(&mut self, batch: &Batch) {
        self.batches += usize::from(batch.messages > 0);
        self.messages += batch.messages;
        self.deleted += batch.deleted;
    }
}

impl QueueDriver {
    /// Drives `queue_url` with `sqs`'s credentials: 300 s visibility, no wait, stop after two
    /// empty receives, failed messages left in the queue.
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        QueueDriver {
            sqs,
            queue_url: queue_url.into(),
            visibility_timeout: 300,
            wait_seconds: 0,
            empty_receives: 2,
            failed: Failed::Leave,
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receives one batch (waiting up to `wait_seconds` for it), hands it to `handler` as an
    /// SQS event and deletes the messages it did not report as failed.
    pub async fn batch<H>(&self, handler: &mut H, wait_seconds: i32) -> Result<Batch>
    where
        H: AsyncFnMut(Value) -> Result<Value>,
    {
        Ok(self.deliver(handler, wait_seconds).await?.0)
    }

    /// [`Self::batch`], and the receipt handles of the failed messages (in `failed`'s order).
    async fn deliver<H>(&self, handler: &mut H, wait_seconds: i32) -> Result<(Batch, Vec<String>)>
    where
        H: AsyncFnMut(Value) -> Result<Value>,
    {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH_SIZE)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(self.visibility_timeout)
            .send()
            .await
            .with_context(|| format!("receiving from {}", self.queue_url))?;
        let messages = out.messages();
        let mut batch = Batch {
            messages: messages.len(),
            ..Batch::default()
        };
        let mut failed_handles = Vec::new();
        if messages.is_empty() {
            return Ok((batch, failed_handles));
        }
        let response = handler(lifeboat::events::sqs_batch_event(messages)).await?;
        let failures = failed_ids(&response);
        for message in messages {
            let id = message.message_id().unwrap_or_default();
            let handle = message.receipt_handle().unwrap_or_default();
            if failures.iter().any(|f| f == id) {
                batch.failed.push(id.to_string());
                failed_handles.push(handle.to_string());
                continue;
            }
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .with_context(|| format!("deleting a message from {}", self.queue_url))?;
            batch.deleted += 1;
        }
        Ok((batch, failed_handles))
    }

    /// Drives the queue into `handler` until it is empty (see [`Failed`] for what happens to
    /// failed messages). `progress` is told the deliveries so far after each batch.
    pub async fn until_empty<H>(
        &self,
        handler: &mut H,
        mut progress: impl FnMut(&Drained),
    ) -> Result<Drained>
    where
        H: AsyncFnMut(Value) -> Result<Value>,
    {
        let mut drained = Drained::default();
        loop {
            let (round, failed) = self.round(handler, &mut drained, &mut progress).await?;
            if round > 0 {
                drained.rounds.push(round);
            }
            let Failed::Redeliver { max_rounds } = self.failed else {
                drained.failed = failed.into_iter().map(|(id, _)| id).collect();
                return Ok(drained);
            };
            if failed.is_empty() {
                return Ok(drained);
            }
            if drained.rounds.len() >= max_rounds {
                bail!(
                    "{} message(s) still failing after {max_rounds} rounds",
                    failed.len()
                );
            }
            for (_, handle) in &failed {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .with_context(|| format!("releasing a message in {}", self.queue_url))?;
            }
        }
    }

    /// One pass until the queue answers empty `empty_receives` times in a row: the deliveries
    /// made, and the failed messages (id, receipt handle).
    async fn round<H>(
        &self,
        handler: &mut H,
        drained: &mut Drained,
        progress: &mut impl FnMut(&Drained),
    ) -> Result<(usize, Vec<(String, String)>)>
    where
        H: AsyncFnMut(Value) -> Result<Value>,
    {
        let (mut delivered, mut empty) = (0, 0);
        let mut failed = Vec::new();
        while empty < self.empty_receives {
            let wait = if empty == 0 { self.wait_seconds } else { 0 };
            let (batch, handles) = self.deliver(handler, wait).await?;
            if batch.messages == 0 {
                empty += 1;
                continue;
            }
            empty = 0;
            delivered += batch.messages;
            drained.add(&batch);
            failed.extend(batch.failed.into_iter().zip(handles));
            progress(drained);
        }
        Ok((delivered, failed))
    }
}

/// The message ids a partial-batch response (`batchItemFailures[].itemIdentifier`) reports as
/// failed: of its JSON, or of anything that serializes to it (the replicator's response).
pub fn failed_ids(response: &impl Serialize) -> Vec<String> {
    let response = serde_json::to_value(response).unwrap_or_default();
    response["batchItemFailures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
