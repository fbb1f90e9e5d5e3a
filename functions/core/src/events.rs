//! Parsing what invokes the replicator: SQS batches whose bodies are S3 notifications or
//! EventBridge envelopes, direct S3 events, and EventBridge events.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::keys::decode_event_key;

/// The longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// One object an event talks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The decoded key.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub event_time: Option<DateTime<Utc>>,
    pub event_name: String,
}

/// What one event record means to Lifeboat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEvent {
    Created(ObjectRef),
    Removed(ObjectRef),
    /// `s3:TestEvent`, sent when a notification is configured: nothing to do.
    Test,
}

/// One message of an SQS batch, with what it holds or why it could not be read.
#[derive(Debug)]
pub struct SqsItem {
    pub message_id: String,
    pub events: Result<Vec<ObjectEvent>>,
}

/// A replicator invocation.
#[derive(Debug)]
pub enum Invocation {
    /// An SQS batch: each message succeeds or fails on its own.
    Sqs(Vec<SqsItem>),
    /// A direct S3 event or an EventBridge event: one unit.
    Direct(Vec<ObjectEvent>),
}

/// Recognises the shape of a replicator invocation.
pub fn parse_invocation(input: &Value) -> Result<Invocation> {
    let first_source = input
        .get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str);
    match first_source {
        Some("aws:sqs") => {
            let batch: SqsEvent = serde_json::from_value(input.clone())
                .map_err(|e| Error::bad_input(format!("SQS batch does not parse: {e}")))?;
            let items = batch
                .records
                .into_iter()
                .enumerate()
                .map(|(i, message)| {
                    let message_id = message.message_id.unwrap_or_else(|| format!("#{i}"));
                    let events = match message.body {
                        None => Err(Error::bad_input(format!(
                            "SQS message {message_id} has no body"
                        ))),
                        Some(body) => parse_body(&body),
                    };
                    SqsItem { message_id, events }
                })
                .collect();
            Ok(Invocation::Sqs(items))
        }
        _ => Ok(Invocation::Direct(parse_value(input)?)),
    }
}

/// Parses the body of one SQS message.
pub fn parse_body(body: &str) -> Result<Vec<ObjectEvent>> {
    let value: Value = serde_json::from_str(body).map_err(|e| {
        Error::bad_input(format!("message body is not JSON ({e}): {}", preview(body)))
    })?;
    parse_value(&value)
}

/// Parses an S3 notification, an `s3:TestEvent`, or an EventBridge S3 event.
pub fn parse_value(value: &Value) -> Result<Vec<ObjectEvent>> {
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(vec![ObjectEvent::Test]);
    }
    if value.get("Records").is_some() {
        return parse_s3_event(value);
    }
    if value.get("detail-type").is_some() {
        return parse_eventbridge(value);
    }
    Err(Error::bad_input(format!(
        "not an S3 notification, SQS batch or EventBridge event: {}",
        preview(&value.to_string())
    )))
}

/// The fields of an S3 notification record the replicator uses. Deliberately lenient: a record
/// missing a field Lifeboat does not need (moto omits `userIdentity`, for one) is still copied.
#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records")]
    records: Vec<S3Record>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_name: Option<String>,
    event_time: Option<DateTime<Utc>>,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: Option<String>,
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
}

fn parse_s3_event(value: &Value) -> Result<Vec<ObjectEvent>> {
    let event: S3Notification = serde_json::from_value(value.clone())
        .map_err(|e| Error::bad_input(format!("S3 notification does not parse: {e}")))?;
    if event.records.is_empty() {
        return Err(Error::bad_input("S3 notification has no records"));
    }
    event
        .records
        .into_iter()
        .map(|record| {
            let name = record.event_name.unwrap_or_default();
            let bucket = record
                .s3
                .bucket
                .name
                .filter(|b| !b.is_empty())
                .ok_or_else(|| Error::bad_input(format!("{name} record has no bucket name")))?;
            let raw_key = record
                .s3
                .object
                .key
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    Error::bad_input(format!(
                        "{name} record for bucket {bucket} has no object key"
                    ))
                })?;
            let object = ObjectRef {
                bucket,
                key: checked_key(decode_event_key(&raw_key)?)?,
                size: record.s3.object.size,
                etag: record.s3.object.e_tag.filter(|e| !e.is_empty()),
                version_id: record
                    .s3
                    .object
                    .version_id
                    .filter(|v| !v.is_empty() && v != "null"),
                event_time: record.event_time,
                event_name: name.clone(),
            };
            classify(&name, object)
        })
        .collect()
}

fn parse_eventbridge(value: &Value) -> Result<Vec<ObjectEvent>> {
    let event: EventBridgeEvent<Value> = serde_json::from_value(value.clone())
        .map_err(|e| Error::bad_input(format!("EventBridge event does not parse: {e}")))?;
    let detail = &event.detail;
    let text = |v: &Value, path: &[&str]| -> Option<String> {
        let mut v = v;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_string)
    };
    let bucket = text(detail, &["bucket", "name"])
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            Error::bad_input(format!(
                "EventBridge {} event has no detail.bucket.name",
                event.detail_type
            ))
        })?;
    // EventBridge carries keys as they are, not form-encoded.
    let key = text(detail, &["object", "key"])
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Error::bad_input(format!(
                "EventBridge {} event has no detail.object.key",
                event.detail_type
            ))
        })?;
    let object = ObjectRef {
        bucket,
        key: checked_key(key)?,
        size: detail.pointer("/object/size").and_then(Value::as_u64),
        etag: text(detail, &["object", "etag"]).filter(|e| !e.is_empty()),
        version_id: text(detail, &["object", "version-id"])
            .filter(|v| !v.is_empty() && v != "null"),
        event_time: event.time,
        event_name: event.detail_type.clone(),
    };
    let name = match event.detail_type.as_str() {
        "Object Created" => "ObjectCreated:EventBridge",
        "Object Deleted" => "ObjectRemoved:EventBridge",
        other => other,
    };
    classify(name, object).map(|e| vec![e])
}

fn classify(name: &str, object: ObjectRef) -> Result<ObjectEvent> {
    if name.starts_with("ObjectCreated:") {
        Ok(ObjectEvent::Created(object))
    } else if name.starts_with("ObjectRemoved:") || name.starts_with("LifecycleExpiration:") {
        Ok(ObjectEvent::Removed(object))
    } else {
        Err(Error::bad_input(format!(
            "unsupported event {name:?} for s3://{}/{}: the replicator handles ObjectCreated:* and ObjectRemoved:* (check the bucket notification's event filter)",
            object.bucket, object.key
        )))
    }
}

fn checked_key(key: String) -> Result<String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::bad_input(format!(
            "object key of {} bytes is longer than S3's {MAX_KEY_BYTES}: {}",
            key.len(),
            preview(&key)
        )));
    }
    Ok(key)
}

/// The start of a long text, for error messages.
pub fn preview(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// Wraps SQS messages into the event Lambda's SQS integration delivers to the replicator (the
/// CLI's demo and the tests feed the handler this way).
pub fn sqs_batch_event(messages: &[aws_sdk_sqs::types::Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lifeboat-events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}
