//! Property-based fuzzing of everything that parses outside input: the replicator's event
//! parser, key decoding, the restore and verify payloads, and commit files. None may panic;
//! each either parses or returns an error. `make fuzz` runs many more cases
//! (PROPTEST_CASES); failures proptest finds are kept in `proptest-regressions/` and replayed.

use lifeboat::delta::{parse_commit, table_url};
use lifeboat::events::{parse_body, parse_invocation};
use lifeboat::keys::{decode_event_key, S3Location};
use lifeboat::restore::RestoreRequest;
use lifeboat::verify::VerifyInput;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, biased toward the field names the parsers look for.
fn json_value() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("Records".to_string()),
        Just("eventSource".to_string()),
        Just("eventName".to_string()),
        Just("s3".to_string()),
        Just("bucket".to_string()),
        Just("object".to_string()),
        Just("key".to_string()),
        Just("name".to_string()),
        Just("size".to_string()),
        Just("body".to_string()),
        Just("messageId".to_string()),
        Just("detail-type".to_string()),
        Just("detail".to_string()),
        Just("table".to_string()),
        Just("mode".to_string()),
        Just("version".to_string()),
        Just("tables".to_string()),
        "[a-zA-Z-]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("aws:sqs".to_string()),
            Just("aws:s3".to_string()),
            Just("ObjectCreated:Put".to_string()),
            Just("ObjectRemoved:Delete".to_string()),
            Just("Object Created".to_string()),
            Just("s3:TestEvent".to_string()),
            Just("rollback".to_string()),
            Just("s3://source-bucket/t".to_string()),
            Just("2026-11-20T10:00:00Z".to_string()),
            ".{0,40}",
            "(%[0-9A-Fa-f]{2}|[+a-z/=])*",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(names.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A real S3 notification with one field replaced by arbitrary JSON.
fn mutated_notification() -> impl Strategy<Value = Value> {
    let base = json!({"Records": [{"eventSource": "aws:s3", "eventTime": "2026-11-20T10:00:00.000Z",
        "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "source-bucket"},
        "object": {"key": "t/part%3D1/a+b.parquet", "size": 3, "eTag": "abc"}}}]});
    let paths = prop_oneof![
        Just("/Records/0/eventName"),
        Just("/Records/0/eventTime"),
        Just("/Records/0/s3/bucket"),
        Just("/Records/0/s3/bucket/name"),
        Just("/Records/0/s3/object/key"),
        Just("/Records/0/s3/object/size"),
        Just("/Records/0"),
        Just("/Records"),
    ];
    (paths, json_value()).prop_map(move |(path, replacement)| {
        let mut event = base.clone();
        if let Some(slot) = event.pointer_mut(path) {
            *slot = replacement;
        }
        event
    })
}

proptest! {
    #[test]
    fn invocations_never_panic(value in json_value()) {
        let _ = parse_invocation(&value);
        let _ = parse_body(&value.to_string());
    }

    #[test]
    fn mutated_notifications_never_panic(event in mutated_notification()) {
        let _ = parse_invocation(&event);
        let sqs = json!({"Records": [{"messageId": "m", "body": event.to_string(), "eventSource": "aws:sqs"}]});
        let _ = parse_invocation(&sqs);
    }

    #[test]
    fn sqs_bodies_never_panic(body in ".{0,200}") {
        let _ = parse_body(&body);
    }

    #[test]
    fn keys_decode_or_fail_cleanly(raw in "(%[0-9A-Fa-f]{0,2}|[+a-zA-Z0-9/=._ -]|.)*") {
        if let Ok(decoded) = decode_event_key(&raw) {
            // Decoding is done once: a literal percent sign survives re-encoding round trips.
            prop_assert!(decoded.len() <= raw.len());
        }
    }

    #[test]
    fn restore_payloads_never_panic(value in json_value()) {
        let _ = RestoreRequest::from_value(&value);
        let _ = VerifyInput::parse(&value);
    }

    #[test]
    fn locations_never_panic(text in ".{0,60}") {
        let _ = S3Location::parse(&text);
    }

    #[test]
    fn deletion_vector_descriptors_never_panic(
        storage in prop_oneof![Just("u".to_string()), Just("i".to_string()), Just("p".to_string()), ".{0,2}"],
        path in ".{0,40}",
        offset in prop::option::of(any::<i32>()),
        size in any::<i32>(),
        cardinality in any::<i64>(),
    ) {
        let root = table_url(&S3Location::parse("s3://b/t").unwrap()).unwrap();
        let add = json!({"add": {"path": "a.parquet", "size": 1, "deletionVector": {
            "storageType": storage, "pathOrInlineDv": path, "offset": offset,
            "sizeInBytes": size, "cardinality": cardinality}}});
        let _ = parse_commit(&root, 1, format!("{add}\n").as_bytes());
    }

    #[test]
    fn commit_files_never_panic(lines in prop::collection::vec(json_value(), 0..5), garbage in prop::collection::vec(any::<u8>(), 0..64)) {
        let root = table_url(&S3Location::parse("s3://b/t").unwrap()).unwrap();
        let mut body: Vec<u8> = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
        let _ = parse_commit(&root, 1, &body);
        body.extend(garbage);
        let _ = parse_commit(&root, 1, &body);
    }
}
