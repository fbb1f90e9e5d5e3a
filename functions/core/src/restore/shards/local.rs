//! The restore work queue inside one process (`lifeboat restore --workers N`): N workers take
//! the shard messages, as N invocations of the restore function consume the restore queue,
//! and a shard whose run fails is delivered again, as SQS does, until it was received
//! [`MAX_RECEIVES`] times (the restore queue's `maxReceiveCount`, then its dead-letter queue).

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;

/// Receives of one shard message before it is given up: the restore queue's redrive policy
/// (`maxReceiveCount` in `infra/backup-account.yaml`).
pub const MAX_RECEIVES: u32 = 5;

/// Whether a message whose run failed on its `receives`-th receive is delivered again.
pub fn delivered_again(receives: u32) -> bool {
    receives < MAX_RECEIVES
}

/// A shard run that failed, as the worker saw it.
#[derive(Debug)]
pub struct ShardFailure<'a> {
    pub restore_id: &'a str,
    pub shard: u32,
    /// The receive that failed (1 for the first delivery).
    pub receives: u32,
    /// Whether the message is delivered again (else the restore stops).
    pub again: bool,
    pub error: &'a Error,
}

struct Delivery {
    body: String,
    /// How often it was received before.
    receives: u32,
}

/// An in-process restore work queue; [`LocalQueue::work`] copies what was sent to it.
#[derive(Default)]
pub struct LocalQueue(Mutex<VecDeque<Delivery>>);

#[async_trait::async_trait]
impl WorkQueue for LocalQueue {
    async fn send(&self, bodies: Vec<String>) -> Result<()> {
        self.lock().extend(
            bodies
                .into_iter()
                .map(|body| Delivery { body, receives: 0 }),
        );
        Ok(())
    }

    fn name(&self) -> String {
        "this process (--workers)".into()
    }
}

impl LocalQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Delivery>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Copies every shard sent to the queue, `workers` at a time. A run that fails is told to
    /// `on_failure` and delivered again (marked as a redelivery, so its copies already made
    /// are skipped) until [`MAX_RECEIVES`]; a shard failing that often stops the work with
    /// an error naming it and the restore. The copies made stay, and the shards not yet run
    /// stay in the queue.
    pub async fn work<S: Store>(
        &self,
        restorer: &Restorer<S>,
        workers: usize,
        on_failure: impl Fn(&ShardFailure) + Sync,
    ) -> Result<()> {
        let worker = || async {
            loop {
                let Some(Delivery { body, receives }) = self.lock().pop_front() else {
                    return Ok(());
                };
                let receives = receives + 1;
                let message: ShardMessage = serde_json::from_str(&body).map_err(|e| {
                    Error::bad_input(format!("message {body:?} is not a restore shard ({e})"))
                })?;
                let Err(error) = restorer
                    .run_shard(&message, receives > 1, None, |_, _| {})
                    .await
                else {
                    continue;
                };
                let again = delivered_again(receives);
                on_failure(&ShardFailure {
                    restore_id: &message.restore_id,
                    shard: message.shard,
                    receives,
                    again,
                    error: &error,
                });
                if !again {
                    return Err(Error::Restore(format!(
                        "shard {} of restore {} failed {receives} times, the last with: {error}. The copies made so far stay: `lifeboat restore --status {}` shows where it stopped, and running the same restore again skips them",
                        message.shard, message.restore_id, message.restore_id
                    )));
                }
                self.lock().push_back(Delivery { body, receives });
            }
        };
        futures::future::try_join_all((0..workers.max(1)).map(|_| worker())).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_shard_is_delivered_again_until_the_redrive_limit() {
        let cases = [(1, true), (2, true), (4, true), (5, false), (6, false)];
        for (receives, again) in cases {
            assert_eq!(delivered_again(receives), again, "receive {receives}");
        }
    }
}
