//! The six disasters Lifeboat exists for (README.md), end to end, as they happen in production.
//!
//! Each drill deploys both CloudFormation stacks into its own moto server, switches IAM
//! enforcement on, writes a real Delta table with `deltalake` as the source writer (an IAM
//! user with `s3:*` on the source bucket and nothing else), replicates it through the bucket's
//! notification queue into the real `replicate` Lambda binary, causes the disaster with the
//! writer's own credentials, shows that those credentials cannot touch the backup, shows that
//! the real `verify` binary's report names the disaster, restores through the real `restore`
//! binary (dry run, then the restore) and reads the table back with `deltalake`, row for row
//! equal to the table at the restore point. Each prints its RPO (source commit to all of its
//! files in the backup) and RTO (restore invoke to the table readable again).
//!
//! Each also prints the alarms the disaster fires (drill_alarms/: the backup template's
//! alarms, infra/alarms.json, and the metrics the functions emitted during the drill).
//!
//! What moto cannot do and how it is covered: see tests/support/drill.rs, drill_lambda.rs and
//! tests/drills/deploy.py.

mod drill_alarms;

use anyhow::{ensure, Context, Result};
use drill_alarms::{mark, show_alarms, verify_with_metrics, Emitted};
use lifeboat_tests::drill::{Drill, Replication, Restored};
use serde_json::{json, Value};

fn kinds(t: &Value) -> Vec<String> {
    t["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["kind"].as_str().map(str::to_string))
        .collect()
}

fn finding<'a>(t: &'a Value, kind: &str) -> Result<&'a Value> {
    t["findings"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["kind"] == kind))
        .with_context(|| format!("no {kind} finding in {}", t["findings"]))
}

/// Whether `version` lies in the restorable range and outside every unrestorable range.
fn restorable(t: &Value, version: u64) -> bool {
    let (Some(oldest), Some(newest)) = (
        t["oldest_restorable_version"].as_u64(),
        t["newest_restorable_version"].as_u64(),
    ) else {
        return false;
    };
    let excluded = t["unrestorable_versions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            r["first"].as_u64().is_some_and(|f| f <= version)
                && r["last"].as_u64().is_some_and(|l| version <= l)
        });
    oldest <= version && version <= newest && !excluded
}

fn rpo_line(drill: &Drill, what: &str, r: &Replication) {
    drill.say(&format!(
        "RPO {what}: version {} committed, all {} objects of the table in the backup {:.2} s later ({} replicate invocation(s), {} message(s))",
        r.version,
        r.objects,
        r.rpo().as_secs_f64(),
        r.invocations,
        r.messages
    ));
}

fn rto_line(drill: &Drill, what: &str, r: &Restored) {
    let result = &r.response["result"];
    drill.say(&format!(
        "RTO {what}: {:.2} s from the restore invoke to the table read back by deltalake (restore function {:.2} s: {} object(s) copied, {} skipped, commit written: {})",
        r.rto.as_secs_f64(),
        r.invoke.as_secs_f64(),
        result["copied"],
        result["skipped"],
        result["commit_written"]
    ));
}

/// The hard wall, shown with the credentials that caused the disaster, and the backup's
/// object versions untouched (none fewer, no delete marker).
async fn show_the_wall(
    drill: &Drill,
    backup_key: &str,
    prefix: &str,
    before: (usize, usize),
) -> Result<()> {
    let lines = drill.writer_is_walled_off(backup_key).await?;
    drill.say(&format!(
        "hard wall: the source writer's own credentials on s3://{}: {}",
        drill.backup_bucket,
        lines.join(", ")
    ));
    let after = drill.backup_versions(prefix).await?;
    ensure!(
        after.0 >= before.0,
        "backup versions went from {} to {}",
        before.0,
        after.0
    );
    ensure!(
        after.1 == 0,
        "{} delete markers appeared in the backup",
        after.1
    );
    drill.say(&format!(
        "backup intact: {} object versions under {prefix} (were {}), no delete marker",
        after.0, before.0
    ));
    Ok(())
}

/// The dry run must write nothing: the source listing is the same before and after.
async fn dry_run(drill: &Drill, payload: Value, bucket: &str, path: &str) -> Result<Value> {
    let before = drill
        .list(&drill.writer, bucket, &format!("{path}/"))
        .await?;
    let plan = drill.restore_table(payload.clone(), None).await?.response;
    ensure!(plan["dry_run"] == true, "not a dry run: {plan}");
    let after = drill
        .list(&drill.writer, bucket, &format!("{path}/"))
        .await?;
    ensure!(before == after, "the dry run changed the source");
    let p = &plan["plan"];
    drill.say(&format!(
        "restore dry run {}: restore point v{} ({}), {} object(s) / {} byte(s) to copy, commit {}",
        payload,
        p["restore_point"]["version"],
        p["restore_point"]["commit_time"].as_str().unwrap_or("-"),
        p["objects_to_copy"],
        p["bytes_to_copy"],
        if p["commit"].is_null() {
            "none".to_string()
        } else {
            format!(
                "v{} (+{} files, -{} files)",
                p["commit"]["version"], p["commit"]["files_to_add"], p["commit"]["files_to_remove"]
            )
        }
    ));
    Ok(plan)
}

fn with_execute(mut payload: Value) -> Value {
    payload["dry_run"] = json!(false);
    payload
}

/// 1. An automated job overwrites the table with bad rows; roll back to the last good version,
/// picked by time as an engineer would ("before the job ran").
#[tokio::test]
async fn drill_1_erroneous_overwrite_rollback() -> Result<()> {
    let drill = Drill::start("drill-1-overwrite", &["lake"]).await?;
    let (bucket, path) = ("lake", "sales/orders");
    let table = Drill::table(bucket, path);
    let backup_table = drill.backup_table(bucket, path);

    let r = drill
        .write_and_replicate(bucket, path, &["write", &table, "small"])
        .await?;
    ensure!(r.version == 2);
    rpo_line(&drill, "three appends", &r);
    let t = &drill.verify_table(&table).await?;
    drill.show_report(t);
    ensure!(
        t["newest_restorable_version"] == 2 && kinds(t).is_empty(),
        "{t}"
    );
    let good_time = t["newest_restorable_commit_time"]
        .as_str()
        .context("commit time")?
        .to_string();
    let good = drill.delta(&drill.writer, &["digest", &table]).await?;

    // The disaster: a job run with the writer's credentials replaces every row.
    let versions_before = drill.backup_versions(&format!("{bucket}/{path}/")).await?;
    let since_disaster = mark(&drill.replicate);
    let bad = drill
        .write_and_replicate(bucket, path, &["overwrite", &table, "900", "5"])
        .await?;
    ensure!(bad.version == 3);
    drill.say("disaster: a job overwrote the table with 5 bad rows (version 3), and it was backed up like any commit");
    rpo_line(&drill, "the bad overwrite", &bad);
    show_the_wall(
        &drill,
        &format!("{bucket}/{path}/_delta_log/00000000000000000000.json"),
        &format!("{bucket}/{path}/"),
        versions_before,
    )
    .await?;

    let (report, verified) = verify_with_metrics(&drill).await?;
    let t = drill.table_report(&report, &table)?;
    drill.show_report(t);
    // An overwrite is a valid commit: the verifier has nothing to flag, and what matters is
    // that the good version is still a restore point.
    ensure!(t["latest_backup_version"] == 3 && restorable(t, 2), "{t}");
    ensure!(kinds(t).is_empty(), "{t}");
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(&drill, &["erroneous_rewrite"], &[t], &verified, &replicated)?;

    let payload = json!({"table": table, "timestamp": good_time, "mode": "rollback"});
    let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
    ensure!(plan["plan"]["restore_point"]["version"] == 2, "{plan}");
    ensure!(plan["plan"]["commit"]["version"] == 4, "{plan}");
    ensure!(plan["plan"]["commit"]["files_to_remove"] == 5, "{plan}");

    let done = drill
        .restore_table(
            with_execute(payload),
            Some((&drill.writer, &["digest", &table])),
        )
        .await?;
    ensure!(
        done.response["result"]["commit_written"] == 4,
        "{}",
        done.response
    );
    ensure!(
        done.digest["sha256"] == good["sha256"] && done.digest["rows"] == good["rows"],
        "read back {} but version 2 was {good}",
        done.digest
    );
    let same = drill
        .delta(
            &drill.verifier,
            &["same", &table, "latest", &backup_table, "2"],
        )
        .await?;
    ensure!(same["equal"] == true, "{same}");
    let history = drill.delta(&drill.writer, &["history", &table]).await?;
    ensure!(history["history"][0]["operation"] == "RESTORE", "{history}");
    drill.say(&format!(
        "read back: {} rows, equal row for row to version 2 (and to the backup's copy of it); version 4 is a RESTORE commit, the bad version 3 stays in history",
        done.digest["rows"]
    ));
    rto_line(&drill, "rollback", &done);

    drill.drain().await?;
    let t = &drill.verify_table(&table).await?;
    ensure!(
        t["newest_restorable_version"] == 4 && kinds(t).is_empty(),
        "{t}"
    );
    drill.say("after: the RESTORE commit is backed up too; newest restore point v4, no findings");
    Ok(())
}

/// Digests of every version of a table, as the source writer reads them.
async fn digests(drill: &Drill, table: &str) -> Result<Value> {
    Ok(drill.delta(&drill.writer, &["digests", table]).await?["versions"].clone())
}

/// Every version `before` had reads back the same after the restore.
async fn same_versions(drill: &Drill, table: &str, before: &Value) -> Result<usize> {
    let after = digests(drill, table).await?;
    let versions = before.as_object().context("digests")?;
    for (v, d) in versions {
        ensure!(
            after[v] == *d,
            "version {v} of {table} reads {} after the restore, {d} before",
            after[v]
        );
    }
    Ok(versions.len())
}

/// 2. Metastore automation drops the external table and purges its storage: every object
/// under the prefix, `_delta_log/` included, and (worse than a plain delete on a versioned
/// bucket) every old version of them. Rollback recreates the table with its history.
#[tokio::test]
async fn drill_2_table_drop_with_purge_rollback() -> Result<()> {
    let drill = Drill::start("drill-2-drop", &["lake"]).await?;
    let (bucket, path) = ("lake", "warehouse/customers");
    let table = Drill::table(bucket, path);
    let prefix = format!("{bucket}/{path}/");

    // Appends, an overwrite, a checkpoint and an OPTIMIZE: versions 0..6.
    let r = drill
        .write_and_replicate(bucket, path, &["write", &table, "history"])
        .await?;
    ensure!(r.version == 6);
    rpo_line(
        &drill,
        "seven commits with a checkpoint and an OPTIMIZE",
        &r,
    );
    let before = digests(&drill, &table).await?;
    let versions_before = drill.backup_versions(&prefix).await?;

    let since_disaster = mark(&drill.replicate);
    let destroyed = drill.destroy_versions(bucket, &format!("{path}/")).await?;
    drill.drain().await?;
    drill.say(&format!("disaster: DROP TABLE with purge: {destroyed} object versions under {path}/ destroyed by the source writer, _delta_log/ included"));
    ensure!(drill
        .list(&drill.writer, bucket, &format!("{path}/"))
        .await?
        .is_empty());
    ensure!(
        drill
            .delta(&drill.writer, &["digest", &table])
            .await
            .is_err(),
        "the table still reads"
    );
    show_the_wall(
        &drill,
        &format!("{prefix}_delta_log/00000000000000000000.json"),
        &prefix,
        versions_before,
    )
    .await?;

    let (report, verified) = verify_with_metrics(&drill).await?;
    let t = drill.table_report(&report, &table)?;
    drill.show_report(t);
    ensure!(kinds(t) == ["table_dropped"], "{t}");
    ensure!(finding(t, "table_dropped")?["severity"] == "critical");
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(&drill, &["table_drop"], &[t], &verified, &replicated)?;
    ensure!(
        t["oldest_restorable_version"] == 0 && t["newest_restorable_version"] == 6,
        "{t}"
    );

    let payload = json!({"table": table, "mode": "rollback"});
    let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
    ensure!(
        plan["plan"]["recreate"] == true && plan["plan"]["restore_point"]["version"] == 6,
        "{plan}"
    );
    let done = drill
        .restore_table(
            with_execute(payload),
            Some((&drill.writer, &["digest", &table])),
        )
        .await?;
    ensure!(
        done.response["result"]["complete"] == true,
        "{}",
        done.response
    );
    ensure!(
        done.digest["sha256"] == before["6"]["sha256"],
        "read back {} but version 6 was {}",
        done.digest,
        before["6"]
    );
    let n = same_versions(&drill, &table, &before).await?;
    let same = drill
        .delta(
            &drill.verifier,
            &[
                "same",
                &table,
                "latest",
                &drill.backup_table(bucket, path),
                "6",
            ],
        )
        .await?;
    ensure!(same["equal"] == true, "{same}");
    drill.say(&format!(
        "read back: the table is back at version 6 ({} rows), and all {n} versions read as before the drop (time travel included)",
        done.digest["rows"]
    ));
    rto_line(&drill, "rollback of a dropped table", &done);

    drill.drain().await?;
    let t = &drill.verify_table(&table).await?;
    ensure!(kinds(t).is_empty(), "{t}");
    drill.say("after: the verifier finds the table whole again, no findings");
    Ok(())
}

/// 3. `VACUUM ... RETAIN 0 HOURS` deletes files that time travel still needed; repair copies
/// them back and time travel to the old versions works again.
#[tokio::test]
async fn drill_3_vacuum_retain_0_hours_repair() -> Result<()> {
    let drill = Drill::start("drill-3-vacuum", &["lake"]).await?;
    let (bucket, path) = ("lake", "events/clicks");
    let table = Drill::table(bucket, path);
    let prefix = format!("{bucket}/{path}/");

    let r = drill
        .write_and_replicate(bucket, path, &["write", &table, "small"])
        .await?;
    rpo_line(&drill, "three appends", &r);
    let r = drill
        .write_and_replicate(bucket, path, &["overwrite", &table, "500", "4"])
        .await?;
    ensure!(r.version == 3);
    rpo_line(&drill, "an overwrite", &r);
    let before = digests(&drill, &table).await?;
    let versions_before = drill.backup_versions(&prefix).await?;

    let since_disaster = mark(&drill.replicate);
    let vacuumed = drill.delta(&drill.writer, &["vacuum", &table]).await?;
    let removed = vacuumed["removed"].as_u64().context("removed")?;
    ensure!(removed >= 3, "{vacuumed}");
    drill.drain().await?;
    let broken = drill.delta(&drill.writer, &["digest", &table, "0"]).await;
    ensure!(
        broken.is_err(),
        "time travel to version 0 still works: {broken:?}"
    );
    drill.say(&format!(
        "disaster: vacuum(retention_hours=0, enforce_retention_duration=False) deleted {removed} files; time travel to version 0 now fails"
    ));
    show_the_wall(
        &drill,
        &format!("{prefix}_delta_log/00000000000000000000.json"),
        &prefix,
        versions_before,
    )
    .await?;

    let (report, verified) = verify_with_metrics(&drill).await?;
    let t = drill.table_report(&report, &table)?;
    drill.show_report(t);
    ensure!(kinds(t) == ["source_files_missing"], "{t}");
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(&drill, &["vacuum_retain_0"], &[t], &verified, &replicated)?;
    let f = finding(t, "source_files_missing")?;
    ensure!(
        f["count"] == removed && f["latest_version_broken"] == false,
        "{f}"
    );
    ensure!(f["versions"] == json!([{"first": 0, "last": 2}]), "{f}");

    let payload = json!({"table": table, "mode": "repair"});
    let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
    ensure!(
        plan["plan"]["objects_to_copy"] == removed && plan["plan"]["commit"].is_null(),
        "{plan}"
    );
    let done = drill
        .restore_table(
            with_execute(payload),
            Some((&drill.writer, &["digest", &table, "0"])),
        )
        .await?;
    ensure!(
        done.response["result"]["copied"] == removed,
        "{}",
        done.response
    );
    ensure!(
        done.digest == before["0"],
        "version 0 reads {} after the repair, {} before",
        done.digest,
        before["0"]
    );
    let n = same_versions(&drill, &table, &before).await?;
    drill.say(&format!("read back: time travel works again: all {n} versions read as before the VACUUM; no commit was written"));
    rto_line(&drill, "repair after VACUUM", &done);

    drill.drain().await?;
    let t = &drill.verify_table(&table).await?;
    ensure!(kinds(t).is_empty(), "{t}");
    drill.say("after: no findings");
    Ok(())
}

/// 4. A failed manual cleanup: `aws s3 rm --recursive` of one partition, then `aws s3 sync
/// --delete` from a stale local copy taken two commits earlier (which deletes the newer
/// commits and their files and uploads the stale ones). The table silently regresses to the
/// stale version; repair brings every commit and file back.
#[tokio::test]
async fn drill_4_rm_partition_and_stale_sync_repair() -> Result<()> {
    let drill = Drill::start("drill-4-manual-sync", &["lake"]).await?;
    let (bucket, path) = ("lake", "finance/ledger");
    let table = Drill::table(bucket, path);
    let prefix = format!("{bucket}/{path}/");

    let r = drill
        .write_and_replicate(bucket, path, &["write", &table, "small"])
        .await?;
    rpo_line(&drill, "three appends", &r);
    // Someone's local copy of the table (`aws s3 sync s3://lake/finance/ledger ./ledger`).
    let mut stale = Vec::new();
    for key in drill
        .list(&drill.writer, bucket, &format!("{path}/"))
        .await?
    {
        let body = drill.get(&drill.writer, bucket, &key).await?;
        stale.push((key, body));
    }
    for start in ["100", "200"] {
        let r = drill
            .write_and_replicate(bucket, path, &["append", &table, start, "6"])
            .await?;
        rpo_line(&drill, "an append", &r);
    }
    let before = digests(&drill, &table).await?;
    ensure!(before.as_object().map(|o| o.len()) == Some(5));
    let versions_before = drill.backup_versions(&prefix).await?;

    let since_disaster = mark(&drill.replicate);
    let partition = format!("{path}/part=plain/");
    let rm = drill.rm_recursive(bucket, &partition).await?;
    let stale_keys: std::collections::BTreeSet<&String> = stale.iter().map(|(k, _)| k).collect();
    let mut deleted = 0;
    for key in drill
        .list(&drill.writer, bucket, &format!("{path}/"))
        .await?
    {
        if !stale_keys.contains(&key) {
            drill
                .writer
                .s3
                .delete_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await?;
            deleted += 1;
        }
    }
    for (key, body) in &stale {
        drill.put(&drill.writer, bucket, key, body.clone()).await?;
    }
    drill.drain().await?;
    drill.say(&format!(
        "disaster: aws s3 rm --recursive s3://{bucket}/{partition} ({rm} objects), then aws s3 sync --delete from a copy taken at version 2 ({deleted} objects deleted, {} uploaded)",
        stale.len()
    ));
    let now = drill.delta(&drill.writer, &["digest", &table]).await?;
    ensure!(
        now["version"] == 2,
        "the table should have regressed to version 2: {now}"
    );
    drill.say(
        "the table now silently reads as version 2: versions 3 and 4 are gone from the source",
    );
    show_the_wall(
        &drill,
        &format!("{prefix}_delta_log/00000000000000000003.json"),
        &prefix,
        versions_before,
    )
    .await?;

    let (report, verified) = verify_with_metrics(&drill).await?;
    let t = drill.table_report(&report, &table)?;
    drill.show_report(t);
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(
        &drill,
        &["rm_recursive", "stale_sync_delete"],
        &[t],
        &verified,
        &replicated,
    )?;
    // The source's log ends two versions before the backup's.
    ensure!(
        t["lag_versions"] == -2 && t["newest_restorable_version"] == 4,
        "{t}"
    );
    let regressed = finding(t, "source_log_regressed")?;
    ensure!(
        regressed["severity"] == "critical"
            && regressed["lost_versions"] == json!({"first": 3, "last": 4}),
        "{regressed}"
    );

    let payload = json!({"table": table, "mode": "repair"});
    let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
    ensure!(plan["plan"]["restore_point"]["version"] == 4, "{plan}");
    ensure!(
        plan["plan"]["objects_to_copy"].as_u64() >= Some(4),
        "{plan}"
    );
    let done = drill
        .restore_table(
            with_execute(payload),
            Some((&drill.writer, &["digest", &table])),
        )
        .await?;
    ensure!(
        done.digest == before["4"],
        "read back {} but version 4 was {}",
        done.digest,
        before["4"]
    );
    let n = same_versions(&drill, &table, &before).await?;
    drill.say(&format!(
        "read back: the table is at version 4 again, all {n} versions read as before"
    ));
    rto_line(&drill, "repair after rm and stale sync", &done);

    drill.drain().await?;
    let t = &drill.verify_table(&table).await?;
    ensure!(kinds(t).is_empty() && t["lag_versions"] == 0, "{t}");
    drill.say("after: lag 0, no findings");
    Ok(())
}

/// 5. Transaction-log corruption: a commit JSON and a checkpoint overwritten with garbage.
/// The replicator keeps the originals (the garbage goes aside as a conflict); repair puts
/// them back byte for byte.
#[tokio::test]
async fn drill_5_log_corruption_repair() -> Result<()> {
    let drill = Drill::start("drill-5-corruption", &["lake"]).await?;
    let (bucket, path) = ("lake", "ops/metrics");
    let table = Drill::table(bucket, path);
    let prefix = format!("{bucket}/{path}/");

    let r = drill
        .write_and_replicate(bucket, path, &["write", &table, "small"])
        .await?;
    rpo_line(&drill, "three appends", &r);
    drill.delta(&drill.writer, &["checkpoint", &table]).await?;
    drill.drain().await?;
    let r = drill
        .write_and_replicate(bucket, path, &["append", &table, "40", "6"])
        .await?;
    ensure!(r.version == 3);
    rpo_line(&drill, "an append", &r);
    let before = digests(&drill, &table).await?;
    let versions_before = drill.backup_versions(&prefix).await?;

    let since_disaster = mark(&drill.replicate);
    let commit = format!("{path}/_delta_log/00000000000000000001.json");
    let checkpoint = format!("{path}/_delta_log/00000000000000000002.checkpoint.parquet");
    let mut originals = Vec::new();
    for key in [&commit, &checkpoint] {
        originals.push(drill.get(&drill.writer, bucket, key).await?);
        drill
            .put(
                &drill.writer,
                bucket,
                key,
                b"\x00\x01garbage written over the log\xff".to_vec(),
            )
            .await?;
    }
    drill.drain().await?;
    drill.say("disaster: _delta_log/00000000000000000001.json and 00000000000000000002.checkpoint.parquet overwritten with garbage");
    ensure!(
        drill
            .delta(&drill.writer, &["digest", &table])
            .await
            .is_err(),
        "the table still reads"
    );
    show_the_wall(
        &drill,
        &format!("{prefix}_delta_log/00000000000000000001.json"),
        &prefix,
        versions_before,
    )
    .await?;

    let (report, verified) = verify_with_metrics(&drill).await?;
    let t = drill.table_report(&report, &table)?;
    drill.show_report(t);
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(
        &drill,
        &["log_overwritten", "checkpoint_corrupted"],
        &[t],
        &verified,
        &replicated,
    )?;
    let f = finding(t, "log_corrupted")?;
    ensure!(f["severity"] == "critical" && f["count"] == 2, "{f}");
    ensure!(kinds(t).contains(&"backup_conflict".to_string()), "{t}");
    ensure!(
        t["unrestorable_versions"] == json!([]) && t["newest_restorable_version"] == 3,
        "{t}"
    );

    let payload = json!({"table": table, "mode": "repair"});
    let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
    ensure!(
        plan["plan"]["objects_to_copy"] == 2,
        "only the two damaged files: {plan}"
    );
    let done = drill
        .restore_table(
            with_execute(payload),
            Some((&drill.writer, &["digest", &table])),
        )
        .await?;
    for (key, original) in [&commit, &checkpoint].iter().zip(&originals) {
        ensure!(
            drill.get(&drill.writer, bucket, key).await? == *original,
            "{key} is not byte for byte the original"
        );
    }
    ensure!(
        done.digest == before["3"],
        "read back {} but version 3 was {}",
        done.digest,
        before["3"]
    );
    let n = same_versions(&drill, &table, &before).await?;
    drill.say(&format!(
        "read back: both files byte for byte as written, all {n} versions read as before"
    ));
    rto_line(&drill, "repair of a corrupted log", &done);

    drill.drain().await?;
    let t = &drill.verify_table(&table).await?;
    ensure!(!kinds(t).contains(&"log_corrupted".to_string()), "{t}");
    drill.say(&format!(
        "after: no corruption; remaining findings (the garbage kept aside for forensics): {:?}",
        kinds(t)
    ));
    Ok(())
}

/// 6. The whole source bucket emptied (every object version, several tables and other files):
/// each table is rolled back from the backup.
#[tokio::test]
async fn drill_6_bucket_emptied_rollback_each_table() -> Result<()> {
    let drill = Drill::start("drill-6-empty-bucket", &["lake"]).await?;
    let bucket = "lake";
    let paths = ["crm/accounts", "crm/contacts", "web/sessions/daily"];
    let mut before = Vec::new();
    for path in paths {
        let table = Drill::table(bucket, path);
        let r = drill
            .write_and_replicate(bucket, path, &["write", &table, "small"])
            .await?;
        rpo_line(&drill, &format!("{path}, three appends"), &r);
        before.push(digests(&drill, &table).await?);
    }
    drill
        .put(&drill.writer, bucket, "README.txt", b"not a table".to_vec())
        .await?;
    drill.drain().await?;
    let versions_before = drill.backup_versions(&format!("{bucket}/")).await?;

    let since_disaster = mark(&drill.replicate);
    let destroyed = drill.destroy_versions(bucket, "").await?;
    drill.drain().await?;
    ensure!(drill.list(&drill.writer, bucket, "").await?.is_empty());
    drill.say(&format!(
        "disaster: the source writer emptied s3://{bucket}: {destroyed} object versions destroyed"
    ));
    show_the_wall(
        &drill,
        &format!("{bucket}/{}/_delta_log/00000000000000000000.json", paths[0]),
        &format!("{bucket}/"),
        versions_before,
    )
    .await?;

    let (report, verified) = verify_with_metrics(&drill).await?;
    let mut dropped = Vec::new();
    for path in paths {
        let t = drill.table_report(&report, &Drill::table(bucket, path))?;
        drill.show_report(t);
        ensure!(
            kinds(t) == ["table_dropped"] && t["newest_restorable_version"] == 2,
            "{t}"
        );
        dropped.push(t);
    }
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(
        &drill,
        &["bucket_emptied"],
        &dropped,
        &verified,
        &replicated,
    )?;

    let mut total = std::time::Duration::ZERO;
    for (path, before) in paths.iter().zip(&before) {
        let table = Drill::table(bucket, path);
        let payload = json!({"table": table, "mode": "rollback"});
        let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
        ensure!(plan["plan"]["recreate"] == true, "{plan}");
        let done = drill
            .restore_table(
                with_execute(payload),
                Some((&drill.writer, &["digest", &table])),
            )
            .await?;
        ensure!(
            done.digest == before["2"],
            "{path} reads {} but version 2 was {}",
            done.digest,
            before["2"]
        );
        same_versions(&drill, &table, before).await?;
        rto_line(&drill, path, &done);
        total += done.rto;
    }
    drill.say(&format!(
        "RTO whole bucket: {:.2} s for {} tables, restored one after the other, each read back equal at every version",
        total.as_secs_f64(),
        paths.len()
    ));

    drill.drain().await?;
    let report = drill.verify_scheduled().await?;
    for path in paths {
        let t = drill.table_report(&report, &Drill::table(bucket, path))?;
        ensure!(kinds(t).is_empty(), "{t}");
    }
    drill.say("after: every table verifies clean");
    Ok(())
}

/// 7. Metastore automation drops the table: with the writer's credentials it calls Glue
/// `DeleteTable` on the table's catalog entry and purges its storage (every object version).
/// The verifier had captured the entry's definition into the backup; rollback brings back the
/// files and registers the entry again, as it was, and the table reads through the catalog.
#[tokio::test]
async fn drill_7_metastore_automation_drops_the_table() -> Result<()> {
    let (database, name) = ("sales", "orders");
    let drill = Drill::start_with_glue("drill-7-metastore", &["lake"], &[database]).await?;
    let (bucket, path) = ("lake", "warehouse/sales/orders");
    let table = Drill::table(bucket, path);
    let prefix = format!("{bucket}/{path}/");

    let r = drill
        .write_and_replicate(bucket, path, &["write", &table, "small"])
        .await?;
    ensure!(r.version == 2);
    rpo_line(&drill, "three appends", &r);
    // The ETL job registers its table, as Spark or a Glue job does.
    let input = lifeboat_tests::drill::delta_table_input(
        name,
        &table,
        &[("id", "bigint"), ("name", "string")],
        &[("part", "string")],
    )?;
    drill.register_table(&drill.writer, database, input).await?;
    let registered = drill
        .get_table(&drill.writer, database, name)
        .await?
        .context("the entry was not registered")?;
    drill.say(&format!(
        "the ETL job registered {database}.{name} in the Glue Data Catalog at {table} (spark.sql.sources.provider=delta)"
    ));

    // The verifier's scheduled run captures the entry's definition into the backup.
    let t = &drill.verify_table(&table).await?;
    drill.show_report(t);
    ensure!(kinds(t).is_empty(), "{t}");
    let (captured, records) = drill
        .captured_definition(database, name)
        .await?
        .context("the verifier captured no definition")?;
    ensure!(
        captured.definition == registered && captured.table_root.as_deref() == Some(table.as_str()),
        "captured {captured:?}, registered {registered:?}"
    );
    drill.say(&format!(
        "captured: the definition of {database}.{name} ({} column(s), partition keys {:?}, {} parameter(s)) is in the backup, write-once: s3://{}/{} ({records} record(s))",
        captured.definition.storage.columns.len(),
        captured
            .definition
            .partition_keys
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        captured.definition.parameters.len(),
        drill.backup_bucket,
        captured.key
    ));
    let before = digests(&drill, &table).await?;
    let versions_before = drill.backup_versions(&prefix).await?;

    // The disaster, with the writer's credentials: DROP TABLE through the metastore, with purge.
    let since_disaster = mark(&drill.replicate);
    drill.delete_table(&drill.writer, database, name).await?;
    let destroyed = drill.destroy_versions(bucket, &format!("{path}/")).await?;
    drill.drain().await?;
    ensure!(drill
        .get_table(&drill.writer, database, name)
        .await?
        .is_none());
    ensure!(drill
        .list(&drill.writer, bucket, &format!("{path}/"))
        .await?
        .is_empty());
    drill.say(&format!(
        "disaster: metastore automation (the writer's credentials) called Glue DeleteTable on {database}.{name} and purged its storage: {destroyed} object versions under {path}/ destroyed, _delta_log/ included"
    ));
    // The wall, tried on the captured definition itself.
    show_the_wall(&drill, &captured.key, &prefix, versions_before).await?;

    // Glue announces the DeleteTable on EventBridge; the rule sends it to the verifier, which
    // reports the drop at once (moto fires no rules: the event is the documented fixture).
    let event: Value = serde_json::from_str(
        &lifeboat_tests::fixture("eventbridge-glue-database-state-change-delete-table.json")
            .replace("{{database}}", database)
            .replace("{{table}}", name),
    )?;
    let answered = drill.verify.call(&event).await?;
    let t = drill.table_report(&answered, &table)?;
    ensure!(
        kinds(t) == ["catalog_entry_dropped"],
        "the Glue event's answer: {answered}"
    );
    drill.say(&format!(
        "EventBridge \"Glue Data Catalog Database State Change\" (DeleteTable {database}.{name}) to the verify function: catalog_entry_dropped (critical), at once rather than at the next scheduled run"
    ));

    let (report, verified) = verify_with_metrics(&drill).await?;
    let t = drill.table_report(&report, &table)?;
    drill.show_report(t);
    let mut found = kinds(t);
    found.sort();
    ensure!(found == ["catalog_entry_dropped", "table_dropped"], "{t}");
    let dropped = finding(t, "catalog_entry_dropped")?;
    ensure!(
        dropped["severity"] == "critical"
            && dropped["catalog_table"] == format!("{database}.{name}"),
        "{dropped}"
    );
    let replicated = Emitted::since(&drill.replicate, since_disaster, |_| true).await;
    show_alarms(&drill, &["metastore_drop"], &[t], &verified, &replicated)?;

    let payload = json!({"table": table, "mode": "rollback"});
    let plan = dry_run(&drill, payload.clone(), bucket, path).await?;
    ensure!(plan["plan"]["recreate"] == true, "{plan}");
    let change = &plan["plan"]["catalog"][0];
    ensure!(
        change["table"] == format!("{database}.{name}")
            && change["action"] == "create"
            && change["location"] == table.as_str()
            && change["done"] == false,
        "{plan}"
    );
    ensure!(
        drill
            .get_table(&drill.writer, database, name)
            .await?
            .is_none(),
        "the dry run registered the entry"
    );
    drill.say(&format!(
        "restore dry run: catalog: register {database}.{name} at {table} (CreateTable), as captured at {}",
        captured.captured_at
    ));

    let done = drill
        .restore_table(
            with_execute(payload),
            Some((&drill.writer, &["digest", &table])),
        )
        .await?;
    ensure!(
        done.response["result"]["complete"] == true
            && done.response["plan"]["catalog"][0]["done"] == true,
        "{}",
        done.response
    );
    let entry = drill
        .get_table(&drill.writer, database, name)
        .await?
        .context("the restore did not register the entry again")?;
    ensure!(
        entry == captured.definition,
        "GetTable returns {entry:?}, captured {:?}",
        captured.definition
    );
    let location = entry.location().context("no location")?.to_string();
    let read = drill.delta(&drill.writer, &["digest", &location]).await?;
    ensure!(
        read == before["2"],
        "read at the catalog's location {location}: {read}, but version 2 was {}",
        before["2"]
    );
    let n = same_versions(&drill, &table, &before).await?;
    drill.say(&format!(
        "read back: Glue GetTable {database}.{name} returns the captured definition; deltalake reads its location {location} as version 2 ({} rows), and all {n} versions read as before the drop",
        read["rows"]
    ));
    rto_line(&drill, "rollback of the entry and the table", &done);

    drill.drain().await?;
    let t = &drill.verify_table(&table).await?;
    ensure!(kinds(t).is_empty(), "{t}");
    drill.say("after: the entry and the table are back, no findings");
    Ok(())
}
