use super::*;

fn file(path: &str, dv: Option<&str>) -> FileEntry {
    FileEntry {
        raw_path: path.to_string(),
        path: path.to_string(),
        size: 100,
        modification_time: 1,
        partition_values: Default::default(),
        stats: None,
        deletion_vector: dv.map(|d| {
            json!({"storageType": "u", "pathOrInlineDv": d, "offset": 1, "sizeInBytes": 10, "cardinality": 2})
        }),
        dv_file: None,
        tags: None,
        base_row_id: None,
        default_row_commit_version: None,
    }
}

fn snapshot(version: u64, files: Vec<FileEntry>, configuration: Value) -> SnapshotDetail {
    SnapshotDetail {
        version,
        metadata: json!({"id": format!("id-{version}"), "configuration": configuration}),
        protocol: json!({"minReaderVersion": 1, "minWriterVersion": 2}),
        in_commit_timestamps: configuration["delta.enableInCommitTimestamps"] == "true",
        domains: Default::default(),
        files,
    }
}

fn kinds(commit: &PlannedCommit) -> Vec<String> {
    commit
        .actions
        .iter()
        .map(|a| {
            let (kind, body) = a.as_object().unwrap().iter().next().unwrap();
            match body.get("path") {
                Some(path) => format!("{kind} {}", path.as_str().unwrap()),
                None => kind.clone(),
            }
        })
        .collect()
}

#[test]
fn commit_table() {
    let cfg = json!({});
    // (name, restore point files, current files, expected actions after commitInfo)
    type Case = (
        &'static str,
        Vec<FileEntry>,
        Vec<FileEntry>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "nothing changed",
            vec![file("a", None)],
            vec![file("a", None)],
            vec![],
        ),
        (
            "rows appended since",
            vec![file("a", None)],
            vec![file("a", None), file("b", None)],
            vec!["remove b"],
        ),
        (
            "overwritten since",
            vec![file("a", None)],
            vec![file("c", None)],
            vec!["remove c", "add a"],
        ),
        (
            "table emptied since",
            vec![file("a", None), file("b", None)],
            vec![],
            vec!["add a", "add b"],
        ),
        (
            "deletion vector changed",
            vec![file("a", Some("x"))],
            vec![file("a", Some("y"))],
            vec!["remove a", "add a"],
        ),
        (
            "deletion vector added",
            vec![file("a", None)],
            vec![file("a", Some("y"))],
            vec!["remove a", "add a"],
        ),
    ];
    let table = S3Location::parse("s3://src/t").unwrap();
    for (name, wanted, now, expected) in cases {
        let point = snapshot(3, wanted, cfg.clone());
        let mut current = snapshot(7, now, cfg.clone());
        current.metadata = point.metadata.clone();
        let commit = restore_commit(&table, &point, &current, 1_000, None).unwrap();
        let mut want = vec!["commitInfo".to_string()];
        want.extend(expected.iter().map(|s| s.to_string()));
        assert_eq!(kinds(&commit), want, "{name}");
        assert_eq!((commit.version, commit.read_version), (8, 7), "{name}");
        assert!(!commit.metadata_restored, "{name}");
        let info = &commit.actions[0]["commitInfo"];
        assert_eq!(info["operation"], "RESTORE");
        assert_eq!(info["operationParameters"]["version"], 3);
        assert_eq!(info["readVersion"], 7);
        assert!(commit.body().ends_with('\n'));
    }
}

#[test]
fn metadata_comes_back_with_the_table_identity() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let point = snapshot(1, vec![], json!({"p": "old"}));
    let current = snapshot(2, vec![], json!({"p": "new"}));
    let commit = restore_commit(&table, &point, &current, 5, None).unwrap();
    assert!(commit.metadata_restored);
    let metadata = &commit.actions[1]["metaData"];
    assert_eq!(metadata["configuration"]["p"], "old");
    assert_eq!(metadata["id"], "id-2", "the table keeps its id");
}

#[test]
fn in_commit_timestamps_never_go_back() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let ict = json!({"delta.enableInCommitTimestamps": "true", "delta.inCommitTimestampEnablementVersion": "0"});
    let point = snapshot(1, vec![], json!({"p": "old"}));
    let current = snapshot(2, vec![], ict.clone());
    let cases = [
        (10_000, Some(5_000), 10_000),
        (10_000, Some(20_000), 20_001),
        (10_000, None, 10_000),
    ];
    for (now, previous, expected) in cases {
        let commit = restore_commit(&table, &point, &current, now, previous).unwrap();
        assert_eq!(
            commit.actions[0]["commitInfo"]["inCommitTimestamp"],
            expected
        );
        // The restored metadata keeps ICT switched on as it is now.
        assert_eq!(
            commit.actions[1]["metaData"]["configuration"]["delta.enableInCommitTimestamps"],
            "true"
        );
    }
}

#[test]
fn refusals_say_why() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let cases: Vec<(&str, SnapshotDetail, SnapshotDetail, &str, &str)> = vec![
        (
            "source behind the restore point",
            snapshot(5, vec![], json!({})),
            snapshot(3, vec![], json!({})),
            "Lifeboat.RestoreError",
            "older than the restore point",
        ),
        (
            "append-only table losing files",
            snapshot(1, vec![], json!({"delta.appendOnly": "true"})),
            snapshot(
                2,
                vec![file("a", None)],
                json!({"delta.appendOnly": "true"}),
            ),
            "Lifeboat.UnsupportedTable",
            "append-only",
        ),
        (
            "unknown writer feature",
            snapshot(1, vec![], json!({})),
            SnapshotDetail {
                protocol: json!({"minReaderVersion": 3, "minWriterVersion": 7, "writerFeatures": ["futureFeature"]}),
                ..snapshot(2, vec![], json!({}))
            },
            "Lifeboat.UnsupportedTable",
            "futureFeature",
        ),
        (
            "writer version past 7",
            snapshot(1, vec![], json!({})),
            SnapshotDetail {
                protocol: json!({"minReaderVersion": 3, "minWriterVersion": 8}),
                ..snapshot(2, vec![], json!({}))
            },
            "Lifeboat.UnsupportedTable",
            "writer version 8",
        ),
    ];
    for (name, point, current, kind, says) in cases {
        let err = restore_commit(&table, &point, &current, 1, None).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
    // Appending to an append-only table is fine.
    let point = snapshot(
        1,
        vec![file("a", None)],
        json!({"delta.appendOnly": "true"}),
    );
    let current = snapshot(2, vec![], json!({"delta.appendOnly": "true"}));
    assert!(restore_commit(&table, &point, &current, 1, None).is_ok());
}

fn protocol(reader: i64, writer: i64, rf: &[&str], wf: &[&str]) -> Value {
    let mut p = json!({"minReaderVersion": reader, "minWriterVersion": writer});
    if reader == 3 {
        p["readerFeatures"] = json!(rf);
    }
    if writer == 7 {
        p["writerFeatures"] = json!(wf);
    }
    p
}

#[test]
fn protocol_is_the_union_in_a_valid_form() {
    let dv = &["deletionVectors"][..];
    // (name, current, restore point, union)
    let cases = [
        (
            "legacy both: the higher versions",
            protocol(1, 2, &[], &[]),
            protocol(1, 4, &[], &[]),
            protocol(1, 4, &[], &[]),
        ),
        (
            "deletion vectors dropped since (DROP FEATURE): they come back",
            protocol(1, 2, &[], &[]),
            protocol(3, 7, dv, dv),
            protocol(3, 7, dv, &["appendOnly", "invariants", "deletionVectors"]),
        ),
        (
            "features now, legacy column mapping then",
            protocol(3, 7, dv, &["deletionVectors", "inCommitTimestamp"]),
            protocol(2, 5, &[], &[]),
            protocol(
                3,
                7,
                &["deletionVectors", "columnMapping"],
                &[
                    "deletionVectors",
                    "inCommitTimestamp",
                    "appendOnly",
                    "invariants",
                    "checkConstraints",
                    "changeDataFeed",
                    "generatedColumns",
                    "columnMapping",
                ],
            ),
        ),
        (
            "writer features with a legacy reader",
            protocol(1, 7, &[], &["domainMetadata"]),
            protocol(1, 3, &[], &[]),
            protocol(
                1,
                7,
                &[],
                &[
                    "domainMetadata",
                    "appendOnly",
                    "invariants",
                    "checkConstraints",
                ],
            ),
        ),
        (
            "reader 2 with writer features keeps column mapping",
            protocol(2, 7, &[], &["columnMapping"]),
            protocol(1, 2, &[], &[]),
            protocol(2, 7, &[], &["columnMapping", "appendOnly", "invariants"]),
        ),
        (
            "the same protocol: unchanged",
            protocol(3, 7, dv, dv),
            protocol(3, 7, dv, dv),
            protocol(3, 7, dv, dv),
        ),
    ];
    for (name, current, point, expected) in cases {
        assert_eq!(
            union_protocol(&current, &point).unwrap(),
            expected,
            "{name}"
        );
    }
    let err = union_protocol(
        &protocol(1, 2, &[], &[]),
        &json!({"minReaderVersion": 4, "minWriterVersion": 7}),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "Lifeboat.UnsupportedTable");
}

#[test]
fn rollback_past_a_dropped_feature_commits_the_feature_again() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let dv = &["deletionVectors"][..];
    let mut point = snapshot(2, vec![file("a", Some("x"))], json!({}));
    point.protocol = protocol(3, 7, dv, dv);
    // After DROP FEATURE deletionVectors: the vectors purged, the protocol back to 1/2.
    let current = snapshot(4, vec![file("b", None)], json!({}));
    let commit = restore_commit(&table, &point, &current, 1_000, None).unwrap();
    assert!(commit.protocol_upgraded);
    assert_eq!(
        kinds(&commit),
        ["commitInfo", "protocol", "remove b", "add a"],
        "the protocol comes before the files"
    );
    assert_eq!(
        commit.actions[1]["protocol"],
        protocol(3, 7, dv, &["appendOnly", "invariants", "deletionVectors"])
    );
    // No protocol action when the current one already covers the restore point's.
    let mut current = current;
    current.protocol = protocol(3, 7, dv, dv);
    let commit = restore_commit(&table, &point, &current, 1_000, None).unwrap();
    assert!(!commit.protocol_upgraded);
    assert_eq!(kinds(&commit), ["commitInfo", "remove b", "add a"]);
}

#[test]
fn domains_come_back_and_row_ids_never_go_back() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let features = &["domainMetadata", "rowTracking"][..];
    let domains = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(d, c)| (d.to_string(), c.to_string()))
            .collect()
    };
    let clustered_by = |c: &str| format!(r#"{{"clusteringColumns":[["{c}"]]}}"#);
    let hwm = |n: i64| format!(r#"{{"rowIdHighWaterMark":{n}}}"#);
    // (name, domains then, domains now, expected (domain, configuration, removed))
    type Case = (
        &'static str,
        Vec<(&'static str, String)>,
        Vec<(&'static str, String)>,
        Vec<(&'static str, String, bool)>,
    );
    let cases: Vec<Case> = vec![
        (
            "same domains: none written",
            vec![("delta.clustering", clustered_by("a"))],
            vec![("delta.clustering", clustered_by("a"))],
            vec![],
        ),
        (
            "clustering changed since: the old columns back",
            vec![("delta.clustering", clustered_by("a"))],
            vec![("delta.clustering", clustered_by("b"))],
            vec![("delta.clustering", clustered_by("a"), false)],
        ),
        (
            "a domain added since: removed",
            vec![],
            vec![("app.x", "{}".into())],
            vec![("app.x", "{}".into(), true)],
        ),
        (
            "a domain removed since: back",
            vec![("app.x", "{\"k\":1}".into())],
            vec![],
            vec![("app.x", "{\"k\":1}".into(), false)],
        ),
        (
            "row ids moved on since: the mark stays",
            vec![("delta.rowTracking", hwm(10))],
            vec![("delta.rowTracking", hwm(50))],
            vec![],
        ),
        (
            "row tracking gone since (a higher mark then): the higher mark",
            vec![("delta.rowTracking", hwm(10))],
            vec![],
            vec![("delta.rowTracking", hwm(10), false)],
        ),
    ];
    for (name, then, now, expected) in cases {
        let mut point = snapshot(1, vec![], json!({}));
        point.protocol = protocol(1, 7, &[], features);
        point.domains = domains(
            &then
                .iter()
                .map(|(d, c)| (*d, c.as_str()))
                .collect::<Vec<_>>(),
        );
        let mut current = snapshot(3, vec![], json!({}));
        current.protocol = point.protocol.clone();
        current.domains = domains(
            &now.iter()
                .map(|(d, c)| (*d, c.as_str()))
                .collect::<Vec<_>>(),
        );
        let commit = restore_commit(&table, &point, &current, 1, None).unwrap();
        let got: Vec<(String, String, bool)> = commit
            .actions
            .iter()
            .filter_map(|a| a.get("domainMetadata"))
            .map(|d| {
                (
                    d["domain"].as_str().unwrap().to_string(),
                    d["configuration"].as_str().unwrap().to_string(),
                    d["removed"].as_bool().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, String, bool)> = expected
            .into_iter()
            .map(|(d, c, r)| (d.to_string(), c, r))
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn re_added_files_without_row_ids_get_fresh_ones() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let with_stats = |path: &str, rows: Option<i64>| FileEntry {
        stats: rows.map(|n| format!(r#"{{"numRecords":{n}}}"#)),
        ..file(path, None)
    };
    let mut point = snapshot(
        1,
        vec![with_stats("a", Some(5)), with_stats("b", Some(3))],
        json!({}),
    );
    point.protocol = protocol(1, 2, &[], &[]);
    let mut current = snapshot(3, vec![], json!({}));
    current.protocol = protocol(1, 7, &[], &["domainMetadata", "rowTracking"]);
    current.domains = [(
        "delta.rowTracking".to_string(),
        r#"{"rowIdHighWaterMark":99}"#.to_string(),
    )]
    .into();
    let commit = restore_commit(&table, &point, &current, 1, None).unwrap();
    let adds: Vec<(i64, i64)> = commit
        .actions
        .iter()
        .filter_map(|a| a.get("add"))
        .map(|a| {
            (
                a["baseRowId"].as_i64().unwrap(),
                a["defaultRowCommitVersion"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(adds, [(100, 4), (105, 4)]);
    let mark = commit
        .actions
        .iter()
        .find_map(|a| a.get("domainMetadata"))
        .unwrap();
    assert_eq!(mark["configuration"], r#"{"rowIdHighWaterMark":107}"#);
    // Without numRecords there are no ids to give: refused.
    point.files = vec![with_stats("c", None)];
    let err = restore_commit(&table, &point, &current, 1, None).unwrap_err();
    assert_eq!(err.kind(), "Lifeboat.UnsupportedTable", "{err}");
    assert!(err.to_string().contains("numRecords"), "{err}");
}

#[test]
fn what_was_handed_out_never_goes_back() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let schema = |mark: Option<i64>, step: i64, extra: bool| {
        let mut id = json!({"name": "id", "type": "long", "nullable": false, "metadata": {
            "delta.columnMapping.id": 1, "delta.identity.start": 1, "delta.identity.step": step,
            "delta.identity.allowExplicitInsert": false,
        }});
        if let Some(m) = mark {
            id["metadata"]["delta.identity.highWaterMark"] = json!(m);
        }
        let mut fields = vec![id];
        if extra {
            fields.push(json!({"name": "x", "type": "string", "nullable": true, "metadata": {"delta.columnMapping.id": 2}}));
        }
        json!({"type": "struct", "fields": fields}).to_string()
    };
    // (name, (mark, maxColumnId) then, now, step, expected mark, expected maxColumnId)
    let cases = [
        (
            "values handed out since",
            (Some(10), 1),
            (Some(40), 2),
            1,
            json!(40),
            "2",
        ),
        (
            "none handed out then",
            (None, 1),
            (Some(40), 2),
            1,
            json!(40),
            "2",
        ),
        (
            "a negative step goes down",
            (Some(-10), 1),
            (Some(-40), 2),
            -1,
            json!(-40),
            "2",
        ),
        (
            "a higher id then (a column since dropped)",
            (Some(10), 5),
            (Some(10), 2),
            1,
            json!(10),
            "5",
        ),
    ];
    for (name, (then_mark, then_id), (now_mark, now_id), step, mark, max_id) in cases {
        let metadata = |mark: Option<i64>, max_id: i64, extra: bool, v: u64| {
            json!({"id": format!("id-{v}"), "schemaString": schema(mark, step, extra), "configuration": {
                "delta.columnMapping.mode": "id", "delta.columnMapping.maxColumnId": max_id.to_string(), "p": v.to_string(),
            }})
        };
        let mut point = snapshot(1, vec![], json!({}));
        point.metadata = metadata(then_mark, then_id, false, 1);
        let mut current = snapshot(2, vec![], json!({}));
        current.metadata = metadata(now_mark, now_id, true, 2);
        let commit = restore_commit(&table, &point, &current, 1, None).unwrap();
        let restored = commit
            .actions
            .iter()
            .find_map(|a| a.get("metaData"))
            .expect(name);
        let schema: Value =
            serde_json::from_str(restored["schemaString"].as_str().unwrap()).unwrap();
        assert_eq!(
            schema["fields"].as_array().unwrap().len(),
            1,
            "{name}: the restore point's columns"
        );
        assert_eq!(
            schema["fields"][0]["metadata"]["delta.identity.highWaterMark"], mark,
            "{name}"
        );
        assert_eq!(
            restored["configuration"]["delta.columnMapping.maxColumnId"], max_id,
            "{name}"
        );
        assert_eq!(restored["configuration"]["p"], "1", "{name}");
    }
}

#[test]
fn in_commit_timestamps_are_never_switched_on_by_a_rollback() {
    let table = S3Location::parse("s3://src/t").unwrap();
    let ict = json!({"delta.enableInCommitTimestamps": "true", "delta.inCommitTimestampEnablementVersion": "0", "delta.inCommitTimestampEnablementTimestamp": "5", "p": "old"});
    // ICT on at the restore point, switched off since.
    let point = snapshot(1, vec![], ict);
    let current = snapshot(
        2,
        vec![],
        json!({"delta.enableInCommitTimestamps": "false"}),
    );
    let commit = restore_commit(&table, &point, &current, 10, Some(5)).unwrap();
    assert!(commit.actions[0]["commitInfo"]
        .get("inCommitTimestamp")
        .is_none());
    let configuration = &commit.actions[1]["metaData"]["configuration"];
    assert_eq!(configuration["delta.enableInCommitTimestamps"], "false");
    assert!(
        configuration
            .get("delta.inCommitTimestampEnablementVersion")
            .is_none(),
        "{configuration}"
    );
    assert!(
        configuration
            .get("delta.inCommitTimestampEnablementTimestamp")
            .is_none(),
        "{configuration}"
    );
}
