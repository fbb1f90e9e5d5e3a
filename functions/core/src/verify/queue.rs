//! The replicator's queue, as the verifier uses it: missing objects are sent there as the S3
//! notifications the replicator would have received (self-healing, and the backfill of tables
//! older than Lifeboat).

use std::future::Future;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::store::ObjectInfo;

use super::report::rfc3339;

/// SendMessageBatch calls in flight.
const SEND_CONCURRENCY: usize = 8;

/// The replicator's queue, as the verifier uses it.
pub trait Queue: Send + Sync {
    /// Sends up to 10 message bodies in one batch; returns a description of each one that
    /// failed.
    fn send_batch(
        &self,
        queue_url: &str,
        bodies: &[String],
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}

impl Queue for aws_sdk_sqs::Client {
    async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<Vec<String>> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| Error::Sqs {
                        operation: "SendMessageBatch",
                        message: e.to_string(),
                        source: Some(Box::new(e)),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::Sqs {
                operation: "SendMessageBatch",
                message: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
                source: Some(Box::new(e)),
            })?;
        Ok(out
            .failed()
            .iter()
            .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default()))
            .collect())
    }
}

/// A source object to send to the replicator's queue.
#[derive(Debug, Clone)]
pub struct Resend {
    pub bucket: String,
    pub object: ObjectInfo,
}

/// The S3 notification the replicator would have received for `object`, as an SQS body.
pub fn notification(bucket: &str, object: &ObjectInfo) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": object.last_modified.map(rfc3339),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "lifeboat-verify"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "lifeboat-verify-resend",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encode_event_key(&object.key), "size": object.size, "eTag": object.etag},
        },
    }]})
}

/// Form-encodes a key as S3 notifications carry it, so that
/// [`crate::keys::decode_event_key`] gives back exactly `key`.
pub fn encode_event_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'=');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

/// Sends the objects to the queue at `url`, 10 per SendMessageBatch; returns (sent, failed).
/// Failures are logged, never fatal: the next run sends again.
pub async fn send_all<Q: Queue>(queue: &Q, url: &str, objects: &[Resend]) -> (u64, u64) {
    if objects.is_empty() {
        return (0, 0);
    }
    let bodies: Vec<String> = objects
        .iter()
        .map(|r| notification(&r.bucket, &r.object).to_string())
        .collect();
    let results: Vec<(usize, Result<Vec<String>>)> = stream::iter(bodies.chunks(10))
        .map(|chunk| async move { (chunk.len(), queue.send_batch(url, chunk).await) })
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;
    let (mut sent, mut failed) = (0u64, 0u64);
    for (n, result) in results {
        match result {
            Ok(failures) => {
                for failure in &failures {
                    tracing::warn!(error = %failure, "a re-sent object was refused by the queue");
                }
                failed += failures.len() as u64;
                sent += (n - failures.len()) as u64;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not send missing objects to the queue");
                failed += n as u64;
            }
        }
    }
    tracing::info!(
        sent,
        failed,
        "missing objects sent to the replicator's queue"
    );
    (sent, failed)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::DateTime;
    use proptest::prelude::*;

    use super::*;
    use crate::keys::decode_event_key;

    #[test]
    fn notification_parses_back_to_the_object() {
        let object = ObjectInfo {
            key: "t/part=a b+c%2F/é.parquet".into(),
            size: 42,
            etag: "abc".into(),
            version_id: None,
            last_modified: DateTime::from_timestamp(1_700_000_000, 0),
            metadata: HashMap::new(),
            checksum: None,
        };
        let body = notification("src", &object).to_string();
        let events = crate::events::parse_body(&body).unwrap();
        let crate::events::ObjectEvent::Created(parsed) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(parsed.bucket, "src");
        assert_eq!(parsed.key, object.key);
        assert_eq!(parsed.size, Some(42));
        assert_eq!(parsed.etag.as_deref(), Some("abc"));
        assert_eq!(parsed.event_time, object.last_modified);
    }

    proptest! {
        #[test]
        fn event_keys_round_trip(key in "\\PC{1,60}") {
            prop_assert_eq!(decode_event_key(&encode_event_key(&key)).unwrap(), key);
        }
    }
}
