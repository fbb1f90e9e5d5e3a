//! The Glue Data Catalog side of Lifeboat against the local AWS (moto's Glue): real Delta
//! tables written by `deltalake` and replicated through the queue, registered in Glue as an
//! ETL job registers them, captured by the in-process verifier, dropped, moved or taken over
//! in the catalog, and registered again by the in-process restorer.

use std::collections::HashMap;
use std::sync::Arc;

use lifeboat::catalog::{
    CapturedDefinition, Catalog, CatalogAction, DefinitionStore, GlueCatalog, TableDefinition,
    TableName,
};
use lifeboat::restore::{RestoreRequest, RestoreResponse, Restorer};
use lifeboat::s3::S3Store;
use lifeboat::verify::{TableReport, Verifier, VerifySettings};
use lifeboat::Config;
use lifeboat_tests::drill::delta_table_input;
use lifeboat_tests::Lab;
use serde_json::{json, Value};

const DB: &str = "sales";

/// The lab with `LIFEBOAT_GLUE_DATABASES=sales`, the database created, and the catalog.
async fn lab() -> (Lab, Arc<GlueCatalog>) {
    let lab = Lab::start(&[("LIFEBOAT_GLUE_DATABASES", DB)])
        .await
        .unwrap();
    let glue = lab.aws.clients.glue.clone();
    glue.create_database()
        .database_input(
            aws_sdk_glue::types::DatabaseInput::builder()
                .name(DB)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (lab, Arc::new(GlueCatalog::new(glue)))
}

fn config(lab: &Lab) -> (Config, VerifySettings) {
    let mut vars: HashMap<String, String> = lab.vars.clone();
    vars.insert("LIFEBOAT_GRACE_SECONDS".into(), "0".into());
    vars.remove("LIFEBOAT_QUEUE_URL");
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let settings = VerifySettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    assert_eq!(config.glue_databases, [DB]);
    (config, settings)
}

fn verifier(lab: &Lab, catalog: &Arc<GlueCatalog>) -> Verifier<S3Store> {
    let (config, settings) = config(lab);
    Verifier::new(lab.store(), Some(lab.aws.sqs().clone()), config, settings)
        .with_catalog(catalog.clone())
}

fn restorer(lab: &Lab, catalog: &Arc<GlueCatalog>) -> Restorer<S3Store> {
    Restorer::new(lab.store(), config(lab).0).with_catalog(catalog.clone())
}

/// A scheduled verifier run over every table, and the report of `table`.
async fn verify(lab: &Lab, catalog: &Arc<GlueCatalog>, table: &str) -> TableReport {
    let report = verifier(lab, catalog).run(None).await.unwrap();
    let t = report
        .tables
        .into_iter()
        .find(|t| t.table == table)
        .unwrap_or_else(|| panic!("no report for {table}"));
    println!("{}", serde_json::to_string_pretty(&t).unwrap());
    t
}

fn kinds(t: &TableReport) -> Vec<String> {
    let mut kinds: Vec<String> = t
        .findings
        .iter()
        .map(|f| {
            serde_json::to_value(f.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    kinds.sort();
    kinds
}

async fn restore(lab: &Lab, catalog: &Arc<GlueCatalog>, payload: Value) -> RestoreResponse {
    restorer(lab, catalog)
        .run(
            &RestoreRequest::from_value(&payload).unwrap(),
            None,
            |_, _| {},
        )
        .await
        .unwrap()
}

/// Writes versions 0..=2 at `path`, replicates them and registers the table as `sales.<name>`.
async fn registered_table(lab: &Lab, catalog: &Arc<GlueCatalog>, path: &str, name: &str) -> String {
    let table = Lab::table(path);
    lab.aws.delta(&["write", &table, "small"]).unwrap();
    assert!(lab.drain().await.unwrap().is_empty());
    let input = delta_table_input(
        name,
        &table,
        &[("id", "bigint"), ("name", "string")],
        &[("part", "string")],
    )
    .unwrap();
    lab.aws
        .clients
        .glue
        .create_table()
        .database_name(DB)
        .table_input(input)
        .send()
        .await
        .unwrap();
    assert!(get(catalog, name).await.is_some());
    table
}

async fn get(catalog: &Arc<GlueCatalog>, name: &str) -> Option<TableDefinition> {
    catalog.get_table(&TableName::new(DB, name)).await.unwrap()
}

async fn captured(lab: &Lab, name: &str) -> CapturedDefinition {
    let store = lab.store();
    DefinitionStore {
        store: &store,
        bucket: Lab::BACKUP,
        kms_key_id: None,
    }
    .newest(&TableName::new(DB, name))
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("nothing captured for {DB}.{name}"))
}

async fn drop_entry(lab: &Lab, name: &str) {
    lab.aws
        .clients
        .glue
        .delete_table()
        .database_name(DB)
        .name(name)
        .send()
        .await
        .unwrap();
}

/// The table dropped in the metastore only (DROP TABLE of an external table: the files stay).
/// The verifier reports the entry; rollback registers it again and does nothing else.
#[tokio::test]
async fn a_catalog_only_drop_is_restored_by_registering_alone() {
    let (lab, catalog) = lab().await;
    let table = registered_table(&lab, &catalog, "t/orders", "orders").await;
    let t = verify(&lab, &catalog, &table).await;
    assert!(t.findings.is_empty(), "{t:?}");
    let definition = captured(&lab, "orders").await;
    assert_eq!(
        Some(&definition.definition),
        get(&catalog, "orders").await.as_ref()
    );
    assert_eq!(definition.table_root.as_deref(), Some(table.as_str()));

    drop_entry(&lab, "orders").await;
    let t = verify(&lab, &catalog, &table).await;
    assert_eq!(
        kinds(&t),
        ["catalog_entry_dropped"],
        "the storage is intact: {t:?}"
    );
    let source_before = lab.aws.list_keys(Lab::SRC, "t/orders/").await.unwrap();
    let digest_before = lab.aws.delta(&["digest", &table]).unwrap();

    let dry = restore(&lab, &catalog, json!({"table": table, "mode": "rollback"})).await;
    assert!(dry.dry_run);
    assert_eq!(dry.plan.objects_to_copy, 0, "{dry:?}");
    assert!(dry.plan.commit.is_none(), "{dry:?}");
    assert!(!dry.plan.recreate);
    assert_eq!(dry.plan.catalog.len(), 1, "{dry:?}");
    assert_eq!(dry.plan.catalog[0].action, CatalogAction::Create);
    assert_eq!(dry.plan.catalog[0].table, "sales.orders");
    assert!(!dry.plan.catalog[0].done);
    assert!(
        dry.plan
            .notes
            .iter()
            .any(|n| n.contains("only the catalog entry")),
        "{:?}",
        dry.plan.notes
    );
    assert!(
        get(&catalog, "orders").await.is_none(),
        "a dry run registers nothing"
    );

    let done = restore(
        &lab,
        &catalog,
        json!({"table": table, "mode": "rollback", "dry_run": false}),
    )
    .await;
    let result = done.result.as_ref().unwrap();
    assert!(result.complete, "{done:?}");
    assert_eq!(
        (result.copied, result.commit_written),
        (0, None),
        "{done:?}"
    );
    assert!(done.plan.catalog[0].done, "{done:?}");
    assert_eq!(
        get(&catalog, "orders").await,
        Some(definition.definition.clone()),
        "GetTable returns the captured definition"
    );
    assert_eq!(
        lab.aws.list_keys(Lab::SRC, "t/orders/").await.unwrap(),
        source_before,
        "nothing was copied or committed"
    );
    assert_eq!(lab.aws.delta(&["digest", &table]).unwrap(), digest_before);
    assert!(lab.drain().await.unwrap().is_empty());
    let t = verify(&lab, &catalog, &table).await;
    assert!(t.findings.is_empty(), "{t:?}");
}

/// A clone registered under a new name reads, through that name's location, as the table.
#[tokio::test]
async fn a_clone_registered_under_a_new_name_reads_through_its_location() {
    let (lab, catalog) = lab().await;
    let table = registered_table(&lab, &catalog, "t/orders", "orders").await;
    verify(&lab, &catalog, &table).await;
    let original = captured(&lab, "orders").await.definition;
    let target = Lab::table("t/orders_clone");

    let payload = json!({"table": table, "mode": "clone", "target": target, "register": "sales.orders_clone"});
    let dry = restore(&lab, &catalog, payload.clone()).await;
    assert_eq!(dry.plan.catalog.len(), 1, "{dry:?}");
    assert_eq!(dry.plan.catalog[0].table, "sales.orders_clone");
    assert_eq!(
        dry.plan.catalog[0].location.as_deref(),
        Some(target.as_str())
    );
    assert_eq!(dry.plan.catalog[0].action, CatalogAction::Create);
    assert!(get(&catalog, "orders_clone").await.is_none());

    let mut execute = payload;
    execute["dry_run"] = json!(false);
    let done = restore(&lab, &catalog, execute).await;
    assert!(done.result.as_ref().unwrap().complete, "{done:?}");
    assert!(done.plan.catalog[0].done, "{done:?}");
    let clone = get(&catalog, "orders_clone")
        .await
        .expect("the clone's entry");
    let location = clone.location().expect("a location").to_string();
    assert_eq!(location, target);
    // The source's definition, moved: columns, partition keys, format and properties kept.
    assert_eq!(clone.storage.columns, original.storage.columns);
    assert_eq!(clone.partition_keys, original.partition_keys);
    assert_eq!(clone.parameters, original.parameters);
    let same = lab
        .aws
        .delta(&["same", &table, "latest", &location, "latest"])
        .unwrap();
    assert_eq!(same["equal"], true, "{same}");
    assert_eq!(
        lab.aws.delta(&["digest", &location]).unwrap()["rows"],
        lab.aws.delta(&["digest", &table]).unwrap()["rows"]
    );
    assert_eq!(
        get(&catalog, "orders").await,
        Some(original),
        "the source's entry is untouched"
    );

    // Only the databases Lifeboat is configured with, and only for clones.
    let refused = restorer(&lab, &catalog)
        .run(
            &RestoreRequest::from_value(&json!({"table": table, "mode": "clone", "target": Lab::table("t/x"), "register": "hr.orders"})).unwrap(),
            None,
            |_, _| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("LIFEBOAT_GLUE_DATABASES"), "{refused}");
}

/// An entry whose location moves is reported (a warning: the move may be intended).
#[tokio::test]
async fn a_moved_entry_is_reported_as_catalog_location_changed() {
    let (lab, catalog) = lab().await;
    let table = registered_table(&lab, &catalog, "t/orders", "orders").await;
    assert!(verify(&lab, &catalog, &table).await.findings.is_empty());

    let moved = Lab::table("t/orders_v2");
    let mut definition = get(&catalog, "orders").await.unwrap();
    definition.storage.location = Some(moved.clone());
    definition
        .storage
        .serde_parameters
        .insert("path".into(), moved.clone());
    catalog.update_table(&definition).await.unwrap();

    let t = verify(&lab, &catalog, &table).await;
    assert_eq!(kinds(&t), ["catalog_location_changed"], "{t:?}");
    let f = &t.findings[0];
    assert_eq!(
        serde_json::to_value(f.severity).unwrap(),
        "warning",
        "{f:?}"
    );
    assert_eq!(f.data["catalog_table"], "sales.orders");
    assert_eq!(f.data["captured_location"], table.as_str());
    assert_eq!(f.data["current_location"], moved.as_str());
    assert!(f.detail.contains(&moved), "{}", f.detail);
}

/// A restore never overwrites an entry of the same name for another location: it goes on,
/// leaves the entry, and says why.
#[tokio::test]
async fn a_restore_refuses_to_overwrite_another_tables_entry_and_says_why() {
    let (lab, catalog) = lab().await;
    let table = registered_table(&lab, &catalog, "t/orders", "orders").await;
    verify(&lab, &catalog, &table).await;
    drop_entry(&lab, "orders").await;
    // Someone registers another table under the same name.
    let other = Lab::table("t/other_orders");
    let input = delta_table_input("orders", &other, &[("id", "bigint")], &[]).unwrap();
    lab.aws
        .clients
        .glue
        .create_table()
        .database_name(DB)
        .table_input(input)
        .send()
        .await
        .unwrap();
    let theirs = get(&catalog, "orders").await.unwrap();
    let before = lab.aws.delta(&["digest", &table]).unwrap();

    let dry = restore(&lab, &catalog, json!({"table": table, "mode": "rollback"})).await;
    let change = &dry.plan.catalog[0];
    let CatalogAction::Refuse { reason } = &change.action else {
        panic!("not refused: {change:?}");
    };
    assert!(
        reason.contains("another location") && reason.contains(&other),
        "{reason}"
    );
    assert!(
        dry.plan
            .notes
            .iter()
            .any(|n| n.starts_with("catalog:") && n.contains(&other)),
        "the plan's notes say why: {:?}",
        dry.plan.notes
    );
    let shown = serde_json::to_value(&dry).unwrap();
    assert_eq!(shown["plan"]["catalog"][0]["action"], "refuse", "{shown}");
    assert!(
        change.describe().contains("left alone"),
        "{}",
        change.describe()
    );

    let done = restore(
        &lab,
        &catalog,
        json!({"table": table, "mode": "rollback", "dry_run": false}),
    )
    .await;
    assert!(done.result.as_ref().unwrap().complete, "{done:?}");
    assert!(!done.plan.catalog[0].done);
    assert_eq!(
        get(&catalog, "orders").await,
        Some(theirs),
        "their entry is untouched"
    );
    // The table itself is as it was, readable at its own location.
    let after = lab.aws.delta(&["digest", &table]).unwrap();
    assert_eq!(
        (&after["sha256"], &after["rows"]),
        (&before["sha256"], &before["rows"]),
        "{after} {before}"
    );
}
