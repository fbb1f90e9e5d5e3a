//! Test support: the local AWS (moto in server mode), Delta tables written by the Python
//! `deltalake` package, and helpers to feed S3 notifications from SQS into the handlers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::types::{
    BucketVersioningStatus, Event, NotificationConfiguration, QueueConfiguration,
    VersioningConfiguration,
};
use serde_json::Value;

use lifeboat::replicate::Replicator;
pub use lifeboat::s3::Clients;
use lifeboat::s3::S3Store;
use lifeboat_cli::queue::{Failed, QueueDriver};

/// The repository root (the workspace), from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The project's virtualenv, made by `make setup`.
pub fn venv_bin(tool: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run `make setup` first",
        path.display()
    );
    path
}

/// The shared Delta test tables (../shared/delta-test-data beside the repository).
pub fn shared_tables() -> PathBuf {
    repo_root().join("../shared/delta-test-data")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The local AWS (lifeboat_cli's one starter) on a free loopback port, stopped when dropped.
/// Starting it points this process's AWS SDK environment at it (each nextest test runs in its
/// own process).
pub struct LocalAws {
    pub endpoint: String,
    pub clients: Clients,
    server: lifeboat_cli::local_aws::LocalAws,
}

impl LocalAws {
    pub async fn start() -> Result<Self> {
        Self::start_with_log(None).await
    }

    /// [`LocalAws::start`], the server's output going to `log` (default: the temporary
    /// directory).
    pub async fn start_with_log(log: Option<PathBuf>) -> Result<Self> {
        let tools = lifeboat_cli::Tools::venv(&repo_root().join(".venv"))?;
        let server = lifeboat_cli::local_aws::LocalAws::start(&tools, log).await?;
        let endpoint = server.endpoint().to_string();
        // SAFETY of set_var: tests set it before any other thread reads the environment.
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let clients = Clients::from_env().await;
        Ok(LocalAws {
            endpoint,
            clients,
            server,
        })
    }

    /// The server's output (kept after it stops).
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.clients.s3
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.clients.sqs
    }

    /// Default encryption SSE-KMS, as the backup stack sets it.
    pub async fn encrypt_with_kms(&self, bucket: &str) -> Result<()> {
        use aws_sdk_s3::types::{
            ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
            ServerSideEncryptionRule,
        };
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::AwsKms)
                    .build()?,
            )
            .build();
        self.s3()
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()?,
            )
            .send()
            .await?;
        Ok(())
    }

    pub async fn create_bucket(&self, name: &str, versioned: bool) -> Result<()> {
        self.s3().create_bucket().bucket(name).send().await?;
        if versioned {
            self.s3()
                .put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await?;
        }
        Ok(())
    }

    /// Creates a queue and sends `bucket`'s created and removed notifications to it, as
    /// `infra/` configures a source bucket. Returns the queue URL.
    pub async fn notify_to_queue(&self, bucket: &str, queue: &str) -> Result<String> {
        let url = self
            .sqs()
            .create_queue()
            .queue_name(queue)
            .send()
            .await?
            .queue_url()
            .context("no queue url")?
            .to_string();
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{queue}");
        self.s3()
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .queue_arn(arn)
                            .events(Event::from("s3:ObjectCreated:*"))
                            .events(Event::from("s3:ObjectRemoved:*"))
                            .build()?,
                    )
                    .build(),
            )
            .send()
            .await?;
        // S3 answers a new notification configuration with an s3:TestEvent; take it out so
        // tests count only the events they cause (the handler's treatment of it is tested
        // on its own).
        let first = self.receive_all(&url).await?;
        let handles: Vec<String> = first
            .iter()
            .filter_map(|m| m.receipt_handle().map(str::to_string))
            .collect();
        self.delete_messages(&url, &handles).await?;
        Ok(url)
    }

    /// Receives every message now in the queue (until it stays empty), without deleting them.
    pub async fn receive_all(&self, queue_url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        let mut all = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 2 {
            let out = self
                .sqs()
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .send()
                .await?;
            let messages = out.messages().to_vec();
            if messages.is_empty() {
                empty_polls += 1;
            } else {
                empty_polls = 0;
                all.extend(messages);
            }
        }
        Ok(all)
    }

    pub async fn delete_messages(&self, queue_url: &str, handles: &[String]) -> Result<()> {
        for handle in handles {
            self.sqs()
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await?;
        }
        Ok(())
    }

    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Result<()> {
        self.s3()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into().into())
            .send()
            .await?;
        Ok(())
    }

    /// Deletes one object (an `aws s3 rm`).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.s3()
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await?;
        Ok(())
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let out = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await?;
        Ok(out.body.collect().await?.into_bytes().to_vec())
    }

    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        list_keys_with(self.s3(), bucket, prefix).await
    }

    /// Number of versions S3 holds for exactly `key`.
    pub async fn version_count(&self, bucket: &str, key: &str) -> Result<usize> {
        let out = self
            .s3()
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await?;
        Ok(out
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .count())
    }

    /// Runs the Python Delta helper (tests/py/delta_tool.py) and parses its JSON output.
    pub fn delta(&self, args: &[&str]) -> Result<Value> {
        let out = Command::new(venv_bin("python"))
            .arg(lifeboat_cli::delta_tool())
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .output()
            .context("running delta_tool.py")?;
        if !out.status.success() {
            bail!(
                "delta_tool.py {:?} failed: {}",
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).context("delta_tool.py printed no JSON")
    }
}

/// Every key under `prefix`, sorted, listed with `client` (whoever's credentials it holds).
pub async fn list_keys_with(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page?
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    keys.sort();
    Ok(keys)
}

/// Wraps SQS messages into the event Lambda's SQS integration delivers.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> Value {
    lifeboat::events::sqs_batch_event(messages)
}

pub use lifeboat_cli::queue::failed_ids;

/// A fixture file from tests/fixtures.
pub fn fixture(name: &str) -> String {
    let path = repo_root().join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every Delta table in ../shared/delta-test-data: (name relative to it, local directory).
pub fn shared_delta_tables() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if dir.join("_delta_log").is_dir() {
            out.push(dir.to_path_buf());
            return;
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    walk(&entry.path(), out);
                }
            }
        }
    }
    let root = shared_tables();
    assert!(
        root.is_dir(),
        "{} is missing: ../shared must sit beside the repository",
        root.display()
    );
    let mut dirs = Vec::new();
    walk(&root, &mut dirs);
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            (
                d.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                d,
            )
        })
        .collect()
}

/// A source bucket whose notifications go to a queue, a versioned backup bucket, and the
/// replicator fed from that queue: the production wiring, on the local AWS.
pub struct Lab {
    pub aws: LocalAws,
    pub queue: String,
    pub replicator: Replicator<S3Store>,
    pub vars: std::collections::HashMap<String, String>,
}

impl Lab {
    pub const SRC: &'static str = "source-bucket";
    pub const BACKUP: &'static str = "backup-bucket";

    /// As deployed: a versioned source; a versioned backup encrypted with SSE-KMS by default
    /// (whose ETags are not MD5s, on the local AWS as on S3); conditional copies on.
    pub async fn start(extra: &[(&str, &str)]) -> Result<Self> {
        let aws = LocalAws::start().await?;
        aws.create_bucket(Self::SRC, true).await?;
        aws.create_bucket(Self::BACKUP, true).await?;
        aws.encrypt_with_kms(Self::BACKUP).await?;
        let queue = aws.notify_to_queue(Self::SRC, "lifeboat-events").await?;
        let mut vars: std::collections::HashMap<String, String> = [
            ("LIFEBOAT_BACKUP_BUCKET", Self::BACKUP),
            ("LIFEBOAT_SOURCE_BUCKETS", Self::SRC),
            ("LIFEBOAT_COPY_CONCURRENCY", "8"),
            ("LIFEBOAT_CONDITIONAL_COPY", "true"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.insert("LIFEBOAT_QUEUE_URL".into(), queue.clone());
        let replicator = Replicator::new(S3Store::new(aws.s3().clone()), Self::config_of(&vars)?);
        Ok(Lab {
            aws,
            queue,
            replicator,
            vars,
        })
    }

    fn config_of(vars: &std::collections::HashMap<String, String>) -> Result<lifeboat::Config> {
        Ok(lifeboat::Config::from_lookup(|name| {
            vars.get(name).cloned()
        })?)
    }

    /// Writes commits `from..to` of a synthetic Delta table at `path` in the source, as a fast
    /// writer would: version v adds `part-<v>.parquet` (16 bytes), at 1,700,000,000,000 + v ms.
    pub async fn write_synthetic_versions(&self, path: &str, from: u64, to: u64) {
        use futures::StreamExt;
        const MS: i64 = 1_700_000_000_000;
        let puts = (from..to).map(|v| {
            let aws = &self.aws;
            async move {
                let mut commit = format!(
                    "{{\"commitInfo\":{{\"timestamp\":{},\"operation\":\"WRITE\"}}}}\n",
                    MS + v as i64
                );
                if v == 0 {
                    commit.push_str("{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n");
                    commit.push_str("{\"metaData\":{\"id\":\"t\",\"format\":{\"provider\":\"parquet\",\"options\":{}},\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[]}\",\"partitionColumns\":[],\"configuration\":{},\"createdTime\":0}}\n");
                }
                commit.push_str(&format!(
                    "{{\"add\":{{\"path\":\"part-{v:05}.parquet\",\"partitionValues\":{{}},\"size\":16,\"modificationTime\":{},\"dataChange\":true}}}}\n",
                    MS + v as i64
                ));
                aws.put(Self::SRC, &format!("{path}/part-{v:05}.parquet"), vec![7u8; 16])
                    .await
                    .unwrap();
                aws.put(
                    Self::SRC,
                    &format!("{path}/_delta_log/{v:020}.json"),
                    commit.into_bytes(),
                )
                .await
                .unwrap();
            }
        });
        futures::stream::iter(puts)
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    }

    /// The configuration the functions get (as the CloudFormation template gives it).
    pub fn config(&self) -> lifeboat::Config {
        Self::config_of(&self.vars).expect("valid test configuration")
    }

    pub fn store(&self) -> S3Store {
        S3Store::new(self.aws.s3().clone())
    }

    /// Delivers everything in the queue to the replicator in SQS batches of up to 10, deleting
    /// what succeeded, as Lambda's SQS integration does. Returns the failed message ids (left
    /// invisible in the queue for the visibility timeout, 300 s).
    pub async fn drain(&self) -> Result<Vec<String>> {
        let driver = QueueDriver::new(self.aws.sqs().clone(), &self.queue);
        Ok(driver
            .until_empty(&mut in_process(&self.replicator), |_| {})
            .await?
            .failed)
    }

    /// `s3://source-bucket/<path>`
    pub fn table(path: &str) -> String {
        format!("s3://{}/{path}", Self::SRC)
    }

    /// Where the backup keeps `s3://source-bucket/<path>`.
    pub fn backup_table(path: &str) -> String {
        format!("s3://{}/{}/{path}", Self::BACKUP, Self::SRC)
    }

    /// Deletes every object under `prefix` in the source (a purge, or `aws s3 rm --recursive`).
    pub async fn purge(&self, prefix: &str) -> Result<usize> {
        let keys = self.aws.list_keys(Self::SRC, prefix).await?;
        for key in &keys {
            self.aws.delete(Self::SRC, key).await?;
        }
        Ok(keys.len())
    }
}

/// The in-process replicator as a queue handler: the SQS event in, its response out.
pub fn in_process(
    replicator: &Replicator<S3Store>,
) -> impl AsyncFnMut(Value) -> Result<Value> + '_ {
    async move |event: Value| -> Result<Value> {
        Ok(serde_json::to_value(replicator.handle(&event).await?)?)
    }
}

/// The fault-injecting proxy (tests/py/fault_proxy.py) in front of the local S3 server,
/// stopped when dropped.
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
    port: u16,
}

impl FaultProxy {
    /// Starts the proxy to `upstream`, injecting `faults` (comma-separated: slowdown, internal,
    /// reset, lost, slow) into a `rate` fraction of requests, reproducibly for `seed`.
    pub fn start(upstream: &str, rate: f64, faults: &str, seed: u64) -> Result<Self> {
        let port = free_port();
        let child = Command::new(venv_bin("python"))
            .arg(repo_root().join("tests/py/fault_proxy.py"))
            .args(["--upstream", upstream, "--port", &port.to_string()])
            .args([
                "--rate",
                &rate.to_string(),
                "--faults",
                faults,
                "--seed",
                &seed.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting fault_proxy.py")?;
        let mut proxy = FaultProxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while proxy.stats().is_err() {
            if let Some(status) = proxy.child.try_wait()? {
                bail!("fault_proxy.py exited early with {status}");
            }
            if Instant::now() > deadline {
                bail!("fault_proxy.py did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(proxy)
    }

    fn control(&self, path: &str) -> Result<Value> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split("\r\n\r\n").nth(1).context("no body")?;
        Ok(serde_json::from_str(body)?)
    }

    /// Requests seen and faults injected so far, by kind.
    pub fn stats(&self) -> Result<Value> {
        self.control("/__proxy/stats")
    }

    /// Changes the fault rate.
    pub fn set_rate(&self, rate: f64) -> Result<Value> {
        self.control(&format!("/__proxy/rate?value={rate}"))
    }

    /// Injects a fault into each of the next `requests` requests, whatever the rate.
    pub fn fail_next(&self, requests: u32) -> Result<Value> {
        self.control(&format!("/__proxy/fail?next={requests}"))
    }

    /// An S3 client that goes through the proxy.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        self.s3_client_with_attempts(lifeboat::s3::DEFAULT_MAX_ATTEMPTS)
            .await
    }

    /// An S3 client that goes through the proxy and tries each request at most
    /// `max_attempts` times.
    pub async fn s3_client_with_attempts(&self, max_attempts: u32) -> aws_sdk_s3::Client {
        let shared = aws_config::from_env()
            .endpoint_url(&self.endpoint)
            .load()
            .await;
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(max_attempts)
            .with_initial_backoff(Duration::from_millis(50));
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(true)
                .retry_config(retry)
                .build(),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lab {
    /// Delivers the queue to `replicator` until it is empty, as SQS and Lambda do: messages
    /// that failed become visible again and are redelivered. Returns how many deliveries each
    /// round made; fails after `max_rounds`.
    pub async fn drain_with_redelivery(
        &self,
        replicator: &Replicator<S3Store>,
        max_rounds: usize,
    ) -> Result<Vec<usize>> {
        let mut driver = QueueDriver::new(self.aws.sqs().clone(), &self.queue);
        driver.failed = Failed::Redeliver { max_rounds };
        Ok(driver
            .until_empty(&mut in_process(replicator), |_| {})
            .await?
            .rounds)
    }

    /// Asserts that every source object under `prefix` is in the backup with the same bytes,
    /// and that no backup key holds more than one version.
    pub async fn assert_backup_identical(&self, prefix: &str) -> Result<usize> {
        let keys = self.aws.list_keys(Self::SRC, prefix).await?;
        for key in &keys {
            let backup_key = format!("{}/{key}", Self::SRC);
            let source = self.aws.get(Self::SRC, key).await?;
            let backup = self
                .aws
                .get(Self::BACKUP, &backup_key)
                .await
                .with_context(|| format!("{backup_key} missing from the backup"))?;
            anyhow::ensure!(source == backup, "{key} differs in the backup");
            let versions = self.aws.version_count(Self::BACKUP, &backup_key).await?;
            anyhow::ensure!(versions == 1, "{backup_key} has {versions} versions");
        }
        Ok(keys.len())
    }
}

pub mod conformance;
pub mod drill;
pub mod drill_lambda;
