//! Backfill from an S3 Inventory report, against the local AWS: the report (generated here in
//! S3's documented format, since moto writes no inventories) lists objects the backup already
//! holds, objects whose notifications were lost, a delete marker and a noncurrent version;
//! the bucket also holds an object written after the report was taken. The backfill copies
//! exactly what the report lists and the backup lacks.

use std::collections::BTreeSet;

use lifeboat::inventory::backfill::FanOut;
use lifeboat::inventory::{backfill_from_inventory, generate, InventoryRow};
use lifeboat::keys::S3Location;
use lifeboat::store::list_all;
use lifeboat_tests::Lab;

const SRC: &str = Lab::SRC;
const BACKUP: &str = Lab::BACKUP;
const INVENTORY: &str = "inventory-bucket";

/// Keys the backup gets the usual way (notifications drained).
const HELD: &[&str] = &["held-1.parquet", "part=a b/held-2.parquet"];
/// Keys whose notifications are lost: only the report knows them.
const LOST: &[&str] = &[
    "part=a b/lost 1.parquet",
    "x+y=1%2F/é.parquet",
    "_delta_log/00000000000000000003.json",
];
/// Written after the report was taken: not listed, so not copied.
const AFTER: &str = "after-report.parquet";

/// Deletes whatever the queue holds (notifications that were "lost").
async fn lose_notifications(lab: &Lab) -> anyhow::Result<()> {
    let messages = lab.aws.receive_all(&lab.queue).await?;
    let handles: Vec<String> = messages
        .iter()
        .filter_map(|m| m.receipt_handle().map(str::to_string))
        .collect();
    lab.aws.delete_messages(&lab.queue, &handles).await
}

/// Sets the scene under `prefix`; returns the report's rows.
async fn scene(lab: &Lab, prefix: &str) -> anyhow::Result<Vec<InventoryRow>> {
    lab.aws.create_bucket(INVENTORY, false).await?;
    for key in HELD {
        lab.aws
            .put(SRC, &format!("{prefix}/{key}"), format!("held {key}"))
            .await?;
    }
    anyhow::ensure!(lab.drain().await?.is_empty(), "replication failed");
    for key in LOST {
        lab.aws
            .put(SRC, &format!("{prefix}/{key}"), format!("lost {key}"))
            .await?;
    }
    lose_notifications(lab).await?;
    let mut rows: Vec<InventoryRow> = list_all(&lab.store(), SRC, &format!("{prefix}/"))
        .await?
        .into_iter()
        .map(|o| InventoryRow {
            bucket: SRC.into(),
            key: o.key,
            version_id: None,
            is_latest: Some(true),
            is_delete_marker: Some(false),
            size: Some(o.size),
            etag: Some(o.etag),
            last_modified: o.last_modified,
        })
        .collect();
    // A report of all versions also lists delete markers and noncurrent versions.
    let gone = |key: &str, marker: bool| InventoryRow {
        bucket: SRC.into(),
        key: format!("{prefix}/{key}"),
        version_id: Some("v0".into()),
        is_latest: Some(marker),
        is_delete_marker: Some(marker),
        size: (!marker).then_some(3),
        etag: None,
        last_modified: None,
    };
    rows.push(gone("deleted.parquet", true));
    rows.push(gone("overwritten.parquet", false));
    lab.aws
        .put(SRC, &format!("{prefix}/{AFTER}"), "after the report")
        .await?;
    lose_notifications(lab).await?;
    Ok(rows)
}

/// Writes the report as S3 lays it out (`<source>/<config>/data/...`, `.../manifest.json`)
/// with the rows split over two data files; returns the manifest's location.
async fn publish(lab: &Lab, format: &str, rows: &[InventoryRow]) -> anyhow::Result<String> {
    let (first, second) = rows.split_at(rows.len() / 2);
    let mut files = Vec::new();
    for (i, part) in [first, second].iter().enumerate() {
        let (data, ext) = match format {
            "CSV" => (generate::csv_gz(part), "csv.gz"),
            _ => (generate::parquet(part)?, "parquet"),
        };
        let key = format!("{SRC}/daily/data/{i}.{ext}");
        lab.aws.put(INVENTORY, &key, data.clone()).await?;
        files.push((key, data));
    }
    let manifest = generate::manifest(SRC, INVENTORY, format, &files);
    let key = format!("{SRC}/daily/2024-01-01T00-00Z/manifest.json");
    lab.aws.put(INVENTORY, &key, manifest).await?;
    Ok(format!("s3://{INVENTORY}/{key}"))
}

/// The backup's keys under `prefix`, each with one version.
async fn backup_keys(lab: &Lab, prefix: &str) -> anyhow::Result<BTreeSet<String>> {
    let keys = lab
        .aws
        .list_keys(BACKUP, &format!("{SRC}/{prefix}/"))
        .await?;
    for key in &keys {
        let versions = lab.aws.version_count(BACKUP, key).await?;
        anyhow::ensure!(versions == 1, "{key} has {versions} versions");
    }
    Ok(keys.into_iter().collect())
}

fn expected(prefix: &str) -> BTreeSet<String> {
    HELD.iter()
        .chain(LOST)
        .map(|k| format!("{SRC}/{prefix}/{k}"))
        .collect()
}

/// CSV report (keys form-encoded), fanned out through the replicator's queue.
#[tokio::test]
async fn csv_inventory_backfill_through_the_queue_copies_what_the_backup_lacks(
) -> anyhow::Result<()> {
    let lab = Lab::start(&[]).await?;
    let rows = scene(&lab, "csvinv").await?;
    let manifest = publish(&lab, "CSV", &rows).await?;
    let before = backup_keys(&lab, "csvinv").await?;
    assert_eq!(before.len(), HELD.len());

    let summary = backfill_from_inventory(
        &lab.replicator,
        Some(lab.aws.sqs()),
        &S3Location::parse(&manifest)?,
        |_, _| {},
    )
    .await?;
    assert_eq!(summary.data_files, 2);
    assert_eq!(summary.listed, (HELD.len() + LOST.len() + 2) as u64);
    assert_eq!(summary.already_backed_up, HELD.len() as u64);
    assert_eq!(summary.not_current, 2);
    assert_eq!(summary.to_copy, LOST.len() as u64);
    match &summary.fan_out {
        FanOut::Queue { sent, failed, .. } => assert_eq!((*sent, *failed), (LOST.len() as u64, 0)),
        other => panic!("expected the queue: {other:?}"),
    }
    // Nothing is copied until the replicator takes the messages.
    assert_eq!(backup_keys(&lab, "csvinv").await?, before);
    assert!(lab.drain().await?.is_empty());
    assert_eq!(backup_keys(&lab, "csvinv").await?, expected("csvinv"));
    for key in LOST {
        let key = format!("csvinv/{key}");
        assert_eq!(
            lab.aws.get(BACKUP, &format!("{SRC}/{key}")).await?,
            lab.aws.get(SRC, &key).await?
        );
    }

    // A second run finds nothing to do.
    let again = backfill_from_inventory(
        &lab.replicator,
        Some(lab.aws.sqs()),
        &S3Location::parse(&manifest)?,
        |_, _| {},
    )
    .await?;
    assert_eq!(
        (again.to_copy, again.already_backed_up),
        (0, (HELD.len() + LOST.len()) as u64)
    );
    Ok(())
}

/// Parquet report, copied in-process (no queue).
#[tokio::test]
async fn parquet_inventory_backfill_in_process_copies_what_the_backup_lacks() -> anyhow::Result<()>
{
    let lab = Lab::start(&[]).await?;
    let rows = scene(&lab, "pqinv").await?;
    let manifest = publish(&lab, "Parquet", &rows).await?;

    let summary = backfill_from_inventory(
        &lab.replicator,
        None::<&aws_sdk_sqs::Client>,
        &S3Location::parse(&manifest)?,
        |_, _| {},
    )
    .await?;
    assert_eq!(summary.to_copy, LOST.len() as u64);
    match &summary.fan_out {
        FanOut::InProcess(s) => {
            assert_eq!(
                (s.copied, s.failed, s.conflicts),
                (LOST.len() as u64, 0, 0),
                "{s:?}"
            )
        }
        other => panic!("expected an in-process copy: {other:?}"),
    }
    assert_eq!(backup_keys(&lab, "pqinv").await?, expected("pqinv"));
    // Nothing went to the queue.
    assert!(lab.aws.receive_all(&lab.queue).await?.is_empty());
    Ok(())
}

/// A data file that is not what the manifest says is refused before anything is copied.
#[tokio::test]
async fn a_data_file_that_does_not_match_its_manifest_is_refused() -> anyhow::Result<()> {
    let lab = Lab::start(&[]).await?;
    let rows = scene(&lab, "badinv").await?;
    let manifest = publish(&lab, "CSV", &rows).await?;
    lab.aws
        .put(
            INVENTORY,
            &format!("{SRC}/daily/data/0.csv.gz"),
            generate::csv_gz(&rows[..1]),
        )
        .await?;
    let err = backfill_from_inventory(
        &lab.replicator,
        Some(lab.aws.sqs()),
        &S3Location::parse(&manifest)?,
        |_, _| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("is not what the manifest lists"), "{err}");
    assert!(lab.aws.receive_all(&lab.queue).await?.is_empty());
    assert_eq!(backup_keys(&lab, "badinv").await?.len(), HELD.len());
    Ok(())
}
