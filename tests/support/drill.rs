//! The disaster-drill world: a fresh moto server with both CloudFormation stacks deployed
//! (tests/drills/deploy.py, the code of `make deploy-local`), IAM enforced, and every actor
//! with its own credentials:
//!
//! - the source writer, an IAM user with `s3:*` on the source buckets and nothing else, writes
//!   the Delta tables (Python `deltalake`) and causes the disasters ([`Drill::start_with_glue`]:
//!   also the Glue table actions in those databases, registering its tables and dropping them);
//! - the `replicate`, `verify` and `restore` Lambda binaries run under a local Lambda runtime
//!   with the environment of their deployed function configuration and the credentials of
//!   their deployed roles (assumed with `sts:AssumeRole`);
//! - the queue is driven the way Lambda's SQS event source mapping does it, with the
//!   replicator role's credentials, by the one queue driver (`lifeboat_cli::queue`): receive up
//!   to 10 messages, invoke `replicate` with them as an SQS event, delete the ones not reported
//!   in `batchItemFailures`.
//!
//! What moto cannot do, and how the drills cover it (the infrastructure tests in tests/infra
//! prove the rest on the policy documents):
//!
//! | moto gap | here |
//! |---|---|
//! | Lambdas cannot run | the real binaries run under `cargo lambda watch` (drill_lambda.rs); its fixed 1970 deadline means no time limit to restore, so restore's continuation is not exercised |
//! | an enabled SQS event source mapping makes moto try to run the function in Docker on every send, and each failed try counts as a receive (messages reach the dead-letter queue unhandled) | the local AWS leaves SQS mappings to a poller (`sqs_event_source_mappings` in tests/local_aws/GAPS.md); the drill drives the queues (replicate's is also deployed disabled, `ReplicationEnabled=false`, as `make deploy-local` does) |
//! | scheduled rules never fire | `verify` is invoked with the scheduled event EventBridge sends (tests/fixtures) |
//! | CopyObject into a bucket with default Object Lock retention needs a checksum header AWS does not require | the backup keeps versioning and Object Lock but no default retention (deploy.py); retention is proven in tests/infra |
//! | bucket-policy principals and conditions are not evaluated | `DenyEveryoneButLifeboat` and `DenyInsecureTransport` are left out by deploy-local; the writer is walled off here by IAM (no grant on the backup) plus the applied delete/settings Deny. In AWS the bucket policy is a second wall |
//! | `sts:AssumeRole` on a role trusting `lambda.amazonaws.com` fails once IAM is enforced | the roles are assumed (12-hour sessions) before enforcement is switched on |
//! | notification records carry no `versionId`; `CopySourceIfMatch` is ignored | copies are pinned to the event's ETag, which moto does not check: the drills do not prove the pinning |
//! | no `ObjectRemoved:DeleteMarkerCreated` event | deletions of specific versions (the purges here) do send `ObjectRemoved:Delete` |

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::drill_lambda::{build_functions, http_post, CargoLambdaWatch, LambdaFunction, Outcome};
use lifeboat_cli::queue::{Batch, Drained, QueueDriver};

use crate::{fixture, repo_root, venv_bin, LocalAws};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// One principal's credentials and clients.
pub struct Principal {
    pub name: String,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for a role).
    pub env: HashMap<String, String>,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The Glue Data Catalog (the drills with `GlueDatabases`).
    pub glue: aws_sdk_glue::Client,
}

impl Principal {
    async fn new(name: &str, endpoint: &str, credentials: &Value) -> Result<Self> {
        let key = credentials["access_key_id"]
            .as_str()
            .context("access key")?;
        let secret = credentials["secret_access_key"]
            .as_str()
            .context("secret")?;
        let token = credentials["session_token"].as_str().map(str::to_string);
        let mut env: HashMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", key.to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(token) = &token {
            env.insert("AWS_SESSION_TOKEN".into(), token.clone());
        }
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                key, secret, token, None, "drill",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(true)
                .build(),
        );
        Ok(Principal {
            name: name.to_string(),
            env,
            s3,
            sqs: aws_sdk_sqs::Client::new(&shared),
            glue: aws_sdk_glue::Client::new(&shared),
        })
    }
}

/// How long replication of a write took, measured as the drill drives it.
#[derive(Debug, Clone)]
pub struct Replication {
    /// The table version the write committed.
    pub version: u64,
    /// Its commit time (`commitInfo.timestamp`), ms since the epoch.
    pub commit_ms: i64,
    /// When the last object the table then held was in the backup, ms since the epoch.
    pub backed_up_ms: i64,
    /// Objects under the table prefix, all of them in the backup.
    pub objects: usize,
    pub invocations: usize,
    pub messages: usize,
}

impl Replication {
    /// Source commit to the moment all its files were in the backup.
    pub fn rpo(&self) -> Duration {
        Duration::from_millis((self.backed_up_ms - self.commit_ms).max(0) as u64)
    }
}

/// A restore through the restore Lambda: its answer, and the time to a readable table.
#[derive(Debug, Clone)]
pub struct Restored {
    pub response: Value,
    /// From the invoke until the restore function answered.
    pub invoke: Duration,
    /// From the invoke until `deltalake` read the restored table back (RTO).
    pub rto: Duration,
    /// The digest `deltalake` read back.
    pub digest: Value,
}

/// One drill's world. Fields drop in order: the functions, then moto.
pub struct Drill {
    pub replicate: LambdaFunction,
    pub verify: LambdaFunction,
    pub restore: LambdaFunction,
    pub name: String,
    pub writer: Principal,
    pub replicator: Principal,
    pub verifier: Principal,
    pub restorer: Principal,
    /// What tests/drills/deploy.py printed: outputs, functions, credentials.
    pub deployed: Value,
    pub backup_bucket: String,
    pub queue_url: String,
    /// Logs of the functions and of moto, kept after the run.
    pub dir: PathBuf,
    pub started: Instant,
    pub aws: LocalAws,
}

impl Drill {
    /// Starts moto, deploys the stacks for `source_buckets`, switches IAM enforcement on and
    /// starts the three functions.
    pub async fn start(name: &str, source_buckets: &[&str]) -> Result<Self> {
        Self::start_with_glue(name, source_buckets, &[]).await
    }

    /// [`Drill::start`] with the backup stack's `GlueDatabases` parameter (so
    /// `LIFEBOAT_GLUE_DATABASES` for verify and restore, as the template sets it): the
    /// databases are created, and the source writer may register and drop tables in them.
    pub async fn start_with_glue(
        name: &str,
        source_buckets: &[&str],
        glue_databases: &[&str],
    ) -> Result<Self> {
        let started = Instant::now();
        let dir = crate::drill_lambda::target_dir().join("drills").join(name);
        std::fs::create_dir_all(&dir)?;
        let build = tokio::task::spawn_blocking(build_functions);
        let aws = LocalAws::start_with_log(Some(dir.join("moto.log"))).await?;
        let out = tokio::process::Command::new(venv_bin("python"))
            .arg(repo_root().join("tests/drills/deploy.py"))
            .args(["--endpoint", &aws.endpoint])
            .args(["--source-buckets", &source_buckets.join(",")])
            .args(["--glue-databases", &glue_databases.join(",")])
            .output()
            .await
            .context("running tests/drills/deploy.py")?;
        if !out.status.success() {
            bail!(
                "tests/drills/deploy.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let deployed: Value = serde_json::from_slice(&out.stdout)?;
        enforce_iam(&aws.endpoint).await?;

        let endpoint = aws.endpoint.clone();
        let functions = &deployed["functions"];
        let writer = Principal::new("source writer", &endpoint, &deployed["writer"]).await?;
        let replicator = Principal::new(
            "replicator",
            &endpoint,
            &functions["replicate"]["credentials"],
        )
        .await?;
        let verifier =
            Principal::new("verifier", &endpoint, &functions["verify"]["credentials"]).await?;
        let restorer =
            Principal::new("restorer", &endpoint, &functions["restore"]["credentials"]).await?;
        build.await??;

        let start = |bin: &'static str, principal: &Principal| {
            let function = &functions[bin];
            let mut env: HashMap<String, String> = function["environment"]
                .as_object()
                .map(|vars| {
                    vars.iter()
                        .map(|(k, v)| {
                            let v = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                            (k.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            env.extend(principal.env.clone());
            env.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
            env.insert("AWS_REGION".into(), "us-east-1".into());
            env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
            let log = dir.join(format!("{bin}.log"));
            let timeout = Duration::from_secs(function["timeout_seconds"].as_u64().unwrap_or(900));
            async move { CargoLambdaWatch::start(bin, &env, timeout, log).await }
        };
        let (replicate, verify, restore) = tokio::try_join!(
            start("replicate", &replicator),
            start("verify", &verifier),
            start("restore", &restorer),
        )?;
        let outputs = &deployed["outputs"];
        let drill = Drill {
            replicate,
            verify,
            restore,
            name: name.to_string(),
            writer,
            replicator,
            verifier,
            restorer,
            backup_bucket: outputs["BackupBucketName"]
                .as_str()
                .context("backup")?
                .into(),
            queue_url: outputs["EventsQueueUrl"].as_str().context("queue")?.into(),
            deployed,
            dir,
            started,
            aws,
        };
        // Cold starts now, in parallel (a configuration error shows here, and `cargo run`'s
        // freshness check is not timed as replication).
        let test_event: Value = serde_json::from_str(&fixture("s3-test-event.json"))?;
        let scheduled: Value = serde_json::from_str(&fixture("eventbridge-scheduled.json"))?;
        let empty = serde_json::json!({});
        let (_, _, restore) = tokio::try_join!(
            drill.replicate.call(&test_event),
            drill.verify.call(&scheduled),
            drill.restore.invoke(&empty),
        )?;
        // An empty payload is bad input (not a crash): the restore function is up.
        match restore {
            Outcome::FunctionError(e) if e.to_string().contains("BadInput") => {}
            other => bail!("restore answered an empty payload with {other:?}"),
        }
        drill.say(&format!(
            "deployed both stacks into moto at {} and switched IAM enforcement on ({:.1} s); replicate: {}; verify: {}; restore: {}",
            drill.aws.endpoint,
            started.elapsed().as_secs_f64(),
            drill.replicate.runtime(),
            drill.verify.runtime(),
            drill.restore.runtime(),
        ));
        Ok(drill)
    }

    /// Prints a line of the drill's story (and keeps it in the drill's directory).
    pub fn say(&self, line: &str) {
        let text = format!(
            "[{} +{:>5.1}s] {line}",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        println!("{text}");
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("story.txt"))
        {
            let _ = writeln!(f, "{text}");
        }
    }

    pub fn table(bucket: &str, path: &str) -> String {
        format!("s3://{bucket}/{path}")
    }

    /// Where the backup keeps `s3://bucket/path`.
    pub fn backup_table(&self, bucket: &str, path: &str) -> String {
        format!("s3://{}/{bucket}/{path}", self.backup_bucket)
    }

    /// Runs tests/py/delta_tool.py as `who` (its credentials only) and parses its JSON.
    pub async fn delta(&self, who: &Principal, args: &[&str]) -> Result<Value> {
        let out = self.delta_command(who, args).output().await?;
        if !out.status.success() {
            bail!(
                "delta_tool.py {:?} as the {} failed: {}",
                args,
                who.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("delta_tool.py {args:?} printed no JSON"))
    }

    fn delta_command(&self, who: &Principal, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(venv_bin("python"));
        command
            .arg(repo_root().join("tests/py/delta_tool.py"))
            .args(args)
            .env_remove("AWS_SESSION_TOKEN")
            .envs(&who.env)
            .env("AWS_ENDPOINT_URL", &self.aws.endpoint)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    }

    /// Writes with delta_tool.py as the source writer while the queue is driven into the
    /// replicate function, as Lambda's event source mapping does; returns when every object
    /// under the table is in the backup, with the commit-to-backup time of the new version.
    pub async fn write_and_replicate(
        &self,
        bucket: &str,
        path: &str,
        args: &[&str],
    ) -> Result<Replication> {
        let mut child = self.delta_command(&self.writer, args).spawn()?;
        let driver = self.queue_driver();
        let mut drained = Drained::default();
        let mut snapshots: Vec<(i64, BTreeSet<String>)> = Vec::new();
        let backup_prefix = format!("{bucket}/{path}/");
        let mut finished = None;
        let mut idle_polls = 0;
        loop {
            let batch = driver.batch(&mut self.invoke_replicate(), 1).await?;
            let got = batch.messages;
            merge(&mut drained, batch);
            if got > 0 {
                snapshots.push((now_ms(), self.backup_keys(&backup_prefix).await?));
            }
            if finished.is_none() {
                if let Some(status) = child.try_wait()? {
                    finished = Some(status);
                }
            } else if got == 0 {
                idle_polls += 1;
                if idle_polls >= 2 {
                    break;
                }
            } else {
                idle_polls = 0;
            }
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "delta_tool.py {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !drained.failed.is_empty() {
            bail!("replicate reported failed records: {:?}", drained.failed);
        }
        let written: Value = serde_json::from_slice(&out.stdout)?;
        let version = written["version"]
            .as_u64()
            .context("the write printed no version")?;
        let commit_ms = self.commit_time_ms(bucket, path, version).await?;
        let source: BTreeSet<String> = self
            .list(&self.writer, bucket, &format!("{path}/"))
            .await?
            .into_iter()
            .map(|k| format!("{bucket}/{k}"))
            .collect();
        let backed_up_ms = snapshots
            .iter()
            .find(|(_, keys)| source.is_subset(keys))
            .map(|(t, _)| *t)
            .with_context(|| {
                let last = snapshots.last().map(|s| s.1.clone()).unwrap_or_default();
                format!(
                    "the backup never held every object of {path}: missing {:?}",
                    source.difference(&last).collect::<Vec<_>>()
                )
            })?;
        Ok(Replication {
            version,
            commit_ms,
            backed_up_ms,
            objects: source.len(),
            invocations: drained.batches,
            messages: drained.messages,
        })
    }

    /// The events queue, driven with the replicator role's credentials as Lambda's event
    /// source mapping does (receive up to 10, invoke, delete what did not fail).
    pub fn queue_driver(&self) -> QueueDriver {
        QueueDriver::new(self.replicator.sqs.clone(), &self.queue_url)
    }

    /// The deployed replicate function as a queue handler: the SQS event in, its answer out.
    pub fn invoke_replicate(&self) -> impl AsyncFnMut(Value) -> Result<Value> + '_ {
        async |event: Value| self.replicate.call(&event).await
    }

    /// Drives the queue into replicate until it stays empty; fails on failed records.
    pub async fn drain(&self) -> Result<Drained> {
        let drained = self
            .queue_driver()
            .until_empty(&mut self.invoke_replicate(), |_| {})
            .await
            .context("driving the events queue into replicate as the replicator role")?;
        if !drained.failed.is_empty() {
            bail!("replicate reported failed records: {:?}", drained.failed);
        }
        Ok(drained)
    }

    /// `commitInfo.timestamp` of a version (the commit file's LastModified if it has none).
    pub async fn commit_time_ms(&self, bucket: &str, path: &str, version: u64) -> Result<i64> {
        let key = format!("{path}/_delta_log/{version:020}.json");
        let out = self
            .writer
            .s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await?;
        let modified = out.last_modified().map(|t| t.to_millis().unwrap_or(0));
        let body = out.body.collect().await?.into_bytes();
        for line in String::from_utf8_lossy(&body).lines() {
            if let Ok(action) = serde_json::from_str::<Value>(line) {
                if let Some(ts) = action["commitInfo"]["timestamp"].as_i64() {
                    return Ok(ts);
                }
            }
        }
        modified.context("no commit time")
    }

    /// Keys under `prefix` in a bucket, listed by `who`.
    pub async fn list(&self, who: &Principal, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        crate::list_keys_with(&who.s3, bucket, prefix).await
    }

    async fn backup_keys(&self, prefix: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .list(&self.verifier, &self.backup_bucket, prefix)
            .await?
            .into_iter()
            .collect())
    }

    /// Object versions and delete markers under `prefix` in the backup (read as the verifier).
    pub async fn backup_versions(&self, prefix: &str) -> Result<(usize, usize)> {
        let (mut versions, mut markers) = (0, 0);
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let out = self
                .verifier
                .s3
                .list_object_versions()
                .bucket(&self.backup_bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await?;
            versions += out.versions().len();
            markers += out.delete_markers().len();
            if out.is_truncated() != Some(true) {
                return Ok((versions, markers));
            }
            key_marker = out.next_key_marker().map(str::to_string);
            version_marker = out.next_version_id_marker().map(str::to_string);
        }
    }

    /// Deletes, as the source writer, every object version and delete marker under `prefix`
    /// (`prefix` "" empties the bucket): nothing is left to undelete in the source. Returns
    /// the number of object versions destroyed.
    pub async fn destroy_versions(&self, bucket: &str, prefix: &str) -> Result<usize> {
        let mut destroyed = 0;
        loop {
            let out = self
                .writer
                .s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await?;
            let mut targets: Vec<(String, Option<String>)> = out
                .versions()
                .iter()
                .map(|v| {
                    (
                        v.key().unwrap_or_default().to_string(),
                        v.version_id().map(str::to_string),
                    )
                })
                .collect();
            destroyed += targets.len();
            targets.extend(out.delete_markers().iter().map(|m| {
                (
                    m.key().unwrap_or_default().to_string(),
                    m.version_id().map(str::to_string),
                )
            }));
            if targets.is_empty() {
                return Ok(destroyed);
            }
            for (key, version) in targets {
                self.writer
                    .s3
                    .delete_object()
                    .bucket(bucket)
                    .key(&key)
                    .set_version_id(version)
                    .send()
                    .await
                    .with_context(|| {
                        format!("deleting s3://{bucket}/{key} as the source writer")
                    })?;
            }
        }
    }

    /// Deletes the current objects under `prefix` as the source writer (`aws s3 rm
    /// --recursive`: on a versioned bucket each becomes a delete marker). Returns their count.
    pub async fn rm_recursive(&self, bucket: &str, prefix: &str) -> Result<usize> {
        let keys = self.list(&self.writer, bucket, prefix).await?;
        for key in &keys {
            self.writer
                .s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await?;
        }
        Ok(keys.len())
    }

    pub async fn get(&self, who: &Principal, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let out = who.s3.get_object().bucket(bucket).key(key).send().await?;
        Ok(out.body.collect().await?.into_bytes().to_vec())
    }

    pub async fn put(&self, who: &Principal, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
        who.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("putting s3://{bucket}/{key} as the {}", who.name))?;
        Ok(())
    }

    /// Runs the verify function with the scheduled event EventBridge sends it. As deployed, it
    /// fans the tables out to the verify queue (#17): the queue is then driven into the
    /// function as Lambda's event source mapping does, with the verifier role's credentials,
    /// and the aggregate report the round's last invocation wrote (`latest.json`) returned.
    pub async fn verify_scheduled(&self) -> Result<Value> {
        let event: Value = serde_json::from_str(&fixture("eventbridge-scheduled.json"))?;
        let answer = self.verify.call(&event).await?;
        if answer.get("round").is_none() {
            return Ok(answer);
        }
        let url = self.deployed["outputs"]["VerifyQueueUrl"]
            .as_str()
            .context("the VerifyQueueUrl output")?;
        let round = answer["round"]
            .as_str()
            .context("the round id")?
            .to_string();
        let aggregated = lifeboat::verify::fanout::round_key(&round, "aggregated.json");
        // A receive can come back empty while messages are still in flight: drive the queue
        // until the round is aggregated (bounded), not merely until one receive is empty.
        for attempt in 0.. {
            let drained = QueueDriver::new(self.verifier.sqs.clone(), url)
                .until_empty(&mut async |e: Value| self.verify.call(&e).await, |_| {})
                .await
                .context("driving the verify queue into verify as the verifier role")?;
            if !drained.failed.is_empty() {
                bail!("verify reported failed messages: {:?}", drained.failed);
            }
            if self
                .get(&self.verifier, &self.backup_bucket, &aggregated)
                .await
                .is_ok()
            {
                break;
            }
            if attempt == 5 {
                bail!(
                    "verify round {round} was not aggregated after its queue was drained 6 times"
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let latest = self
            .get(
                &self.verifier,
                &self.backup_bucket,
                "_lifeboat/reports/latest.json",
            )
            .await?;
        Ok(serde_json::from_slice(&latest)?)
    }

    /// One table's report out of a verify response.
    /// A scheduled verifier run, and the report of `table` in it.
    pub async fn verify_table(&self, table: &str) -> Result<Value> {
        let report = self.verify_scheduled().await?;
        Ok(self.table_report(&report, table)?.clone())
    }

    pub fn table_report<'a>(&self, report: &'a Value, table: &str) -> Result<&'a Value> {
        report["tables"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["table"] == table))
            .with_context(|| format!("no report for {table} in {report}"))
    }

    /// Prints a table's restore points and findings as the report gives them.
    pub fn show_report(&self, t: &Value) {
        self.say(&format!(
            "verify: {} backup v{} restorable v{}..v{} (newest committed {}), lag {} version(s), rpo {} s, unrestorable {}",
            t["table"].as_str().unwrap_or_default(),
            t["latest_backup_version"],
            t["oldest_restorable_version"],
            t["newest_restorable_version"],
            t["newest_restorable_commit_time"].as_str().unwrap_or("-"),
            t["lag_versions"],
            t["rpo_seconds"],
            t["unrestorable_versions"]
        ));
        for f in t["findings"].as_array().into_iter().flatten() {
            self.say(&format!(
                "  finding {} ({}): {}",
                f["kind"].as_str().unwrap_or_default(),
                f["severity"].as_str().unwrap_or_default(),
                f["detail"].as_str().unwrap_or_default()
            ));
        }
    }

    /// A restore through the restore function: the plan (dry run) or the restore. With
    /// `read_back` (who reads, and the delta_tool.py arguments, e.g. `["digest", table]`), the
    /// RTO: from the invoke until `deltalake` has read the table back.
    pub async fn restore_table(
        &self,
        payload: Value,
        read_back: Option<(&Principal, &[&str])>,
    ) -> Result<Restored> {
        let started = Instant::now();
        let response = self.restore.call(&payload).await?;
        let invoke = started.elapsed();
        let mut digest = Value::Null;
        if let Some((reader, args)) = read_back {
            digest = self.delta(reader, args).await?;
        }
        Ok(Restored {
            response,
            invoke,
            rto: started.elapsed(),
            digest,
        })
    }

    /// The hard wall, with the source writer's own credentials (the ones that caused the
    /// disaster): every read, list, write and delete on the backup is refused with 403
    /// AccessDenied. Returns one line per request tried.
    pub async fn writer_is_walled_off(&self, backup_key: &str) -> Result<Vec<String>> {
        let s3 = &self.writer.s3;
        let b = &self.backup_bucket;
        let mut lines = Vec::new();
        let mut check =
            |what: &str, result: std::result::Result<(), (Option<u16>, Option<String>)>| {
                match result {
                Ok(()) => Err(anyhow::anyhow!("the source writer's {what} on the backup was allowed")),
                Err((Some(403), code)) => {
                    // HEAD and some DELETE answers carry no body, hence no error code.
                    lines.push(format!("{what} 403 {}", code.unwrap_or_else(|| "(no body)".into())));
                    Ok(())
                }
                Err((status, code)) => Err(anyhow::anyhow!(
                    "the source writer's {what} on the backup failed with {status:?} {code:?}, not a denial"
                )),
            }
            };
        fn err<E: ProvideErrorMetadata>(
            e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
        ) -> (Option<u16>, Option<String>) {
            let status = e.raw_response().map(|r| r.status().as_u16());
            (status, e.code().map(str::to_string))
        }
        check(
            "GetObject",
            s3.get_object()
                .bucket(b)
                .key(backup_key)
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "HeadObject",
            s3.head_object()
                .bucket(b)
                .key(backup_key)
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "ListObjectsV2",
            s3.list_objects_v2()
                .bucket(b)
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "ListObjectVersions",
            s3.list_object_versions()
                .bucket(b)
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "PutObject",
            s3.put_object()
                .bucket(b)
                .key(backup_key)
                .body(ByteStream::from_static(b"ransom note"))
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "DeleteObject",
            s3.delete_object()
                .bucket(b)
                .key(backup_key)
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "PutBucketVersioning",
            s3.put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        check(
            "DeleteBucket",
            s3.delete_bucket()
                .bucket(b)
                .send()
                .await
                .map(|_| ())
                .map_err(err),
        )?;
        Ok(lines)
    }
}

/// The Glue `TableInput` an ETL job (Spark, a Glue job) registers a Delta table at `location`
/// with: an external table, provider `delta`, the columns `(name, type)` and partition keys.
pub fn delta_table_input(
    name: &str,
    location: &str,
    columns: &[(&str, &str)],
    partition_keys: &[(&str, &str)],
) -> Result<aws_sdk_glue::types::TableInput> {
    use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, TableInput};
    let cols = |list: &[(&str, &str)]| -> Result<Vec<Column>> {
        list.iter()
            .map(|(n, t)| Ok(Column::builder().name(*n).r#type(*t).build()?))
            .collect()
    };
    Ok(TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .parameters("EXTERNAL", "TRUE")
        .parameters("spark.sql.sources.provider", "delta")
        .parameters("table_type", "DELTA")
        .storage_descriptor(
            StorageDescriptor::builder()
                .location(location)
                .set_columns(Some(cols(columns)?))
                .input_format("org.apache.hadoop.mapred.SequenceFileInputFormat")
                .output_format("org.apache.hadoop.hive.ql.io.HiveSequenceFileOutputFormat")
                .serde_info(
                    SerDeInfo::builder()
                        .serialization_library("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe")
                        .parameters("serialization.format", "1")
                        .parameters("path", location)
                        .build(),
                )
                .build(),
        )
        .set_partition_keys(Some(cols(partition_keys)?))
        .build()?)
}

/// The metastore side of a drill (the drills started with [`Drill::start_with_glue`]).
impl Drill {
    /// Registers a Delta table in the Glue Data Catalog as `who` (an ETL job's principal).
    pub async fn register_table(
        &self,
        who: &Principal,
        database: &str,
        input: aws_sdk_glue::types::TableInput,
    ) -> Result<()> {
        let name = input.name().to_string();
        who.glue
            .create_table()
            .database_name(database)
            .table_input(input)
            .send()
            .await
            .with_context(|| format!("Glue CreateTable {database}.{name} as the {}", who.name))?;
        Ok(())
    }

    /// Glue `DeleteTable` as `who`: what metastore automation does when it drops a table.
    pub async fn delete_table(&self, who: &Principal, database: &str, name: &str) -> Result<()> {
        who.glue
            .delete_table()
            .database_name(database)
            .name(name)
            .send()
            .await
            .with_context(|| format!("Glue DeleteTable {database}.{name} as the {}", who.name))?;
        Ok(())
    }

    /// The catalog entry `database.name` as `who` reads it with Glue `GetTable` (`None`: no
    /// such entry), as the definition Lifeboat captures.
    pub async fn get_table(
        &self,
        who: &Principal,
        database: &str,
        name: &str,
    ) -> Result<Option<lifeboat::catalog::TableDefinition>> {
        use lifeboat::catalog::{Catalog, GlueCatalog, TableName};
        Ok(GlueCatalog::new(who.glue.clone())
            .get_table(&TableName::new(database, name))
            .await?)
    }

    /// The newest definition of `database.name` captured in the backup (read as the
    /// verifier), and how many were captured.
    pub async fn captured_definition(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<(lifeboat::catalog::CapturedDefinition, usize)>> {
        let prefix = lifeboat::layout::Layout::catalog_prefix(database, name);
        let keys = self
            .list(&self.verifier, &self.backup_bucket, &prefix)
            .await?;
        let Some(newest) = keys.iter().max() else {
            return Ok(None);
        };
        let body = self
            .get(&self.verifier, &self.backup_bucket, newest)
            .await?;
        let mut record: lifeboat::catalog::CapturedDefinition = serde_json::from_slice(&body)
            .with_context(|| format!("captured definition {newest}"))?;
        record.key = newest.clone();
        Ok(Some((record, keys.len())))
    }
}

fn merge(into: &mut Drained, batch: Batch) {
    into.batches += usize::from(batch.messages > 0);
    into.messages += batch.messages;
    into.deleted += batch.deleted;
    into.failed.extend(batch.failed);
}

/// Switches moto's IAM enforcement on: every request from now on is authorized against the
/// identity policies of the principal that signs it.
pub async fn enforce_iam(endpoint: &str) -> Result<()> {
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("endpoint port")?;
    let (status, _, body) = http_post(port, "/moto-api/reset-auth", "0").await?;
    if status != 200 {
        bail!(
            "moto reset-auth answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
