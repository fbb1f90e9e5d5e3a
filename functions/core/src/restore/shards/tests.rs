use super::*;

#[test]
fn split_table() {
    // (sizes, max objects, max bytes, expected shards as (start, end))
    type Case = (&'static [u64], u64, u64, &'static [(usize, usize)]);
    let cases: &[Case] = &[
        (&[], 10, 100, &[]),
        (&[1], 10, 100, &[(0, 1)]),
        // By count.
        (&[1, 1, 1, 1, 1], 2, 100, &[(0, 2), (2, 4), (4, 5)]),
        (&[1, 1, 1, 1], 2, 100, &[(0, 2), (2, 4)]),
        // By bytes: a shard closes before the object that would exceed the limit.
        (&[40, 40, 40, 40], 10, 100, &[(0, 2), (2, 4)]),
        (&[50, 50, 50], 10, 100, &[(0, 2), (2, 3)]),
        // An object above the byte limit is a shard of its own.
        (&[10, 500, 10], 10, 100, &[(0, 1), (1, 2), (2, 3)]),
        (&[500, 500], 10, 100, &[(0, 1), (1, 2)]),
        // Both limits: the count closes the first, the bytes the second.
        (&[1, 1, 1, 98, 1, 1, 5], 3, 100, &[(0, 3), (3, 6), (6, 7)]),
        // A limit of 0 objects still makes progress.
        (&[1, 1], 0, 100, &[(0, 1), (1, 2)]),
        (&[0, 0, 0], 10, 0, &[(0, 3)]),
    ];
    for (sizes, objects, bytes, expected) in cases {
        let got = split(sizes, *objects, *bytes);
        let pairs: Vec<(usize, usize)> = got.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(pairs, *expected, "{sizes:?} {objects} {bytes}");
        // Every object exactly once, in order.
        let flat: Vec<usize> = got.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
    }
}

#[test]
fn settings_table() {
    let defaults = ShardSettings::default();
    // (variables, expected: Ok(settings) or Err(variable named))
    type Case = (
        Vec<(&'static str, &'static str)>,
        Result<ShardSettings, &'static str>,
    );
    let cases: Vec<Case> = vec![
        (vec![], Ok(defaults.clone())),
        (
            vec![
                ("LIFEBOAT_RESTORE_QUEUE_URL", "https://sqs/q"),
                ("LIFEBOAT_RESTORE_SHARD_THRESHOLD", "1_000"),
                ("LIFEBOAT_RESTORE_SHARD_OBJECTS", "50"),
                ("LIFEBOAT_RESTORE_SHARD_BYTES", "1048576"),
            ],
            Ok(ShardSettings {
                queue_url: Some("https://sqs/q".into()),
                threshold_objects: 1000,
                shard_objects: 50,
                shard_bytes: MIB,
                ..defaults.clone()
            }),
        ),
        (
            vec![("LIFEBOAT_RESTORE_SHARD_OBJECTS", "0")],
            Err("LIFEBOAT_RESTORE_SHARD_OBJECTS"),
        ),
        (
            vec![("LIFEBOAT_RESTORE_SHARD_BYTES", "lots")],
            Err("LIFEBOAT_RESTORE_SHARD_BYTES"),
        ),
    ];
    for (vars, expected) in cases {
        let got = ShardSettings::from_lookup(&|name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        });
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected),
            (Err(err), Err(variable)) => {
                assert!(err.to_string().contains(variable), "{err}")
            }
            (got, expected) => panic!("{vars:?}: {got:?} vs {expected:?}"),
        }
    }
}

#[test]
fn messages_and_keys() {
    let message: ShardMessage =
        serde_json::from_str(r#"{"restore_id": "20260101T000000Z-abcdef01", "shard": 7}"#).unwrap();
    assert_eq!(message.shard, 7);
    assert!(serde_json::from_str::<ShardMessage>(r#"{"Records": []}"#).is_err());
    assert_eq!(
        Layout::restore_key("r1", &shard_name("done", 7)),
        "_lifeboat/state/restores/r1/done/000007.json"
    );
}
