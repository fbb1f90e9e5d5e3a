//! Starting a sharded restore, copying one shard, finishing with the log, and its status.

#[allow(unused_imports)]
use super::*;

impl<S: Store> Restorer<S> {
    /// Uses `queue` as the restore work queue.
    pub fn with_queue(mut self, queue: Arc<dyn WorkQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Whether `plan` goes through the work queue, with the plan's note saying which path it
    /// takes and why.
    pub(in crate::restore) fn plan_sharding(&self, plan: &mut RestorePlan) -> bool {
        let settings = &self.config.restore_shards;
        let [data, ..] = write_order(&plan.copies);
        let objects = data.len() as u64;
        if objects <= settings.threshold_objects {
            return false;
        }
        if objects > settings.batch_threshold_objects {
            plan.notes.push(format!(
                "{objects} data files are above LIFEBOAT_RESTORE_BATCH_THRESHOLD ({}), but S3 Batch Operations is not used: a batch copy keeps each backup key (it can only put a folder in front of it) while a restore copies <backup prefix>/<path> to <target>/<path>, and it cannot pin each copy to its planned ETag nor mark it with lifeboat-restored-from-etag",
                settings.batch_threshold_objects
            ));
        }
        if self.queue.is_none() {
            plan.notes.push(format!(
                "{objects} data files are above LIFEBOAT_RESTORE_SHARD_THRESHOLD ({}), but no restore queue is configured (LIFEBOAT_RESTORE_QUEUE_URL): the restore runs in this invocation and its follow-ups",
                settings.threshold_objects
            ));
            return false;
        }
        let sizes: Vec<u64> = data.iter().map(|c| c.size).collect();
        let shards = split(&sizes, settings.shard_objects, settings.shard_bytes).len();
        plan.notes.push(format!(
            "{objects} data files are copied in {shards} shard(s) by concurrent invocations through the restore work queue; the log ({} file(s){}) is written once every shard is done, by the invocation that finishes the last one. Follow it with `lifeboat restore --status <id>`",
            plan.copies.len() - data.len(),
            if plan.commit.is_some() { " and the rollback's commit" } else { "" }
        ));
        true
    }

    fn state_options() -> WriteOptions {
        WriteOptions {
            content_type: Some("application/json".into()),
            ..WriteOptions::default()
        }
    }

    async fn put_state(&self, key: &str, value: &impl Serialize, if_absent: bool) -> Result<bool> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        let options = WriteOptions {
            if_absent,
            ..Self::state_options()
        };
        Ok(matches!(
            self.store
                .put(&self.config.backup_bucket, key, body, &options)
                .await?,
            PutResult::Written { .. }
        ))
    }

    async fn get_state<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self
            .store
            .get(&self.config.backup_bucket, key, None)
            .await?
        {
            None => Ok(None),
            Some(body) => Ok(Some(serde_json::from_slice(&body).map_err(|e| {
                Error::Restore(format!(
                    "s3://{}/{key} is not a restore record ({e})",
                    self.config.backup_bucket
                ))
            })?)),
        }
    }

    async fn load_restore(&self, id: &str) -> Result<ShardedRestore> {
        let key = Layout::restore_key(id, "plan.json");
        self.get_state(&key).await?.ok_or_else(|| {
            Error::NotRestorable(format!(
                "no sharded restore {id:?}: s3://{}/{key} does not exist",
                self.config.backup_bucket
            ))
        })
    }

    /// Hands `plan`'s data copies to the work queue in shards, after writing the restore's
    /// record; the log is written once every shard is done.
    pub(in crate::restore) async fn start_sharded(
        &self,
        request: &RestoreRequest,
        plan: &RestorePlan,
    ) -> Result<ShardedStart> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| Error::Restore("no restore work queue is configured".into()))?;
        let settings = &self.config.restore_shards;
        let id = new_id(plan);
        let [data, sidecars, checkpoints, commits] = write_order(&plan.copies);
        let sizes: Vec<u64> = data.iter().map(|c| c.size).collect();
        let ranges = split(&sizes, settings.shard_objects, settings.shard_bytes);
        let manifests: Vec<ShardManifest> = ranges
            .iter()
            .enumerate()
            .map(|(i, range)| ShardManifest {
                shard: i as u32,
                copies: data[range.clone()].iter().map(|c| (*c).clone()).collect(),
            })
            .collect();
        let log = LogWrites {
            copies: [sidecars, checkpoints, commits]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            commit_actions: plan
                .commit
                .as_ref()
                .map(|c| c.actions.clone())
                .unwrap_or_default(),
        };
        let record = ShardedRestore {
            id: id.clone(),
            started_at: now(),
            request: request.clone(),
            plan: plan.clone(),
            backup_bucket: plan.backup.bucket.clone(),
            backup_prefix: plan.backup.prefix.clone(),
            target_bucket: plan.target_location.bucket.clone(),
            target_prefix: plan.target_location.prefix.clone(),
            shards: manifests
                .iter()
                .map(|m| ShardSize {
                    objects: m.copies.len() as u64,
                    bytes: m.copies.iter().map(|c| c.size).sum(),
                })
                .collect(),
        };
        // Everything a shard needs is written before its message is sent.
        let id_ref = &id;
        stream::iter(&manifests)
            .map(|m| async move {
                self.put_state(
                    &Layout::restore_key(id_ref, &shard_name("shards", m.shard)),
                    m,
                    true,
                )
                .await
            })
            .buffer_unordered(STATE_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        self.put_state(&Layout::restore_key(&id, "log.json"), &log, true)
            .await?;
        self.put_state(&Layout::restore_key(&id, "plan.json"), &record, true)
            .await?;
        let bodies = manifests
            .iter()
            .map(|m| {
                serde_json::to_string(&ShardMessage {
                    restore_id: id.clone(),
                    shard: m.shard,
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        queue.send(bodies).await?;
        tracing::info!(restore_id = %id, shards = manifests.len(), objects = sizes.len(), "restore handed to the work queue");
        Ok(ShardedStart {
            shards: manifests.len() as u32,
            objects: sizes.len() as u64,
            bytes: sizes.iter().sum(),
            log_objects: log.copies.len() as u64,
            queue: queue.name(),
            state: format!(
                "s3://{}/{}",
                self.config.backup_bucket,
                Layout::restore_key(&id, "")
            ),
            status: format!("lifeboat restore --status {id}"),
            restore_id: id,
        })
    }

    /// Handles an SQS batch of shard messages: each shard is copied, and the batch response
    /// names the messages that failed (SQS delivers them again). `progress` is told the
    /// copies of the shard being copied.
    pub async fn handle_shards(
        &self,
        event: &Value,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<(SqsBatchResponse, Vec<ShardRun>)> {
        let batch: SqsEvent = serde_json::from_value(event.clone())
            .map_err(|e| Error::bad_input(format!("SQS batch does not parse: {e}")))?;
        let mut response = SqsBatchResponse::default();
        let mut runs = Vec::new();
        for (i, record) in batch.records.into_iter().enumerate() {
            let message_id = record.message_id.unwrap_or_else(|| format!("#{i}"));
            // Lambda always says how often the message was received; without it, look first.
            let redelivered = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse::<u32>().ok())
                != Some(1);
            let result = match serde_json::from_str::<ShardMessage>(
                record.body.as_deref().unwrap_or_default(),
            ) {
                Ok(message) => {
                    self.run_shard(&message, redelivered, deadline, &progress)
                        .await
                }
                Err(e) => Err(Error::bad_input(format!(
                    "message {message_id} is not a restore shard ({e})"
                ))),
            };
            match result {
                Ok(run) => runs.push(run),
                Err(err) => {
                    tracing::error!(message_id = %message_id, error = %err, retryable = err.is_retryable(),
                        "restore shard failed; SQS delivers it again, then moves it to the dead-letter queue");
                    response.add_failure(message_id);
                }
            }
        }
        Ok((response, runs))
    }

    /// Copies one shard (unless it is done already), records it, and writes the log if it was
    /// the last.
    pub async fn run_shard(
        &self,
        message: &ShardMessage,
        redelivered: bool,
        deadline: Option<Instant>,
        progress: impl Fn(u64, u64) + Sync,
    ) -> Result<ShardRun> {
        let started = Instant::now();
        let id = &message.restore_id;
        let done_key = Layout::restore_key(id, &shard_name("done", message.shard));
        let mut run = ShardRun {
            restore_id: id.clone(),
            shard: message.shard,
            ..ShardRun::default()
        };
        let record = self.load_restore(id).await?;
        let already = self
            .store
            .head(&self.config.backup_bucket, &done_key, None)
            .await?
            .is_some();
        if !already {
            let manifest: ShardManifest = self
                .get_state(&Layout::restore_key(
                    id,
                    &shard_name("shards", message.shard),
                ))
                .await?
                .ok_or_else(|| {
                    Error::Restore(format!(
                        "restore {id} has no shard {} (its manifest is missing)",
                        message.shard
                    ))
                })?;
            let plan = record.plan_with(Vec::new());
            let total = manifest.copies.len() as u64;
            let to_copy = if redelivered {
                self.not_yet_copied(&plan, manifest.copies).await?
            } else {
                manifest.copies
            };
            let skipped = total - to_copy.len() as u64;
            let (copied, bytes_copied) = self
                .copy_data(&plan, &to_copy, deadline, |done, _| {
                    progress(skipped + done, total)
                })
                .await?;
            if copied < to_copy.len() as u64 {
                return Err(Error::Restore(format!(
                    "shard {} of restore {id} stopped with {} of {total} object(s) left (out of time); SQS delivers it again and the copies made are skipped",
                    message.shard,
                    to_copy.len() as u64 - copied
                )));
            }
            let done = ShardDone {
                shard: message.shard,
                copied,
                skipped,
                bytes_copied,
                seconds: started.elapsed().as_secs_f64(),
                at: now(),
            };
            self.put_state(&done_key, &done, true).await?;
            run.done = Some(done);
        }
        run.finished = self.finish_if_last(&record).await?;
        Ok(run)
    }

    /// The copies of a shard the target does not hold yet as the backup has them: a copy an
    /// earlier delivery made carries the backup ETag it came from, and is skipped.
    async fn not_yet_copied(
        &self,
        plan: &RestorePlan,
        copies: Vec<PlannedCopy>,
    ) -> Result<Vec<PlannedCopy>> {
        let target = &plan.target_location;
        let looked: Vec<Option<PlannedCopy>> = stream::iter(copies)
            .map(|copy| async move {
                let head = self
                    .store
                    .head(&target.bucket, &target.key(&copy.path), None)
                    .await?;
                let backup = ObjectInfo {
                    size: copy.size,
                    etag: copy.etag.clone(),
                    ..ObjectInfo::default()
                };
                let in_place =
                    head.is_some_and(|h| same_content(&h, &backup).decided() == Some(true));
                Ok::<_, Error>((!in_place).then_some(copy))
            })
            .buffer_unordered(self.settings.concurrency)
            .try_collect()
            .await?;
        Ok(looked.into_iter().flatten().collect())
    }

    /// Writes the log of `record` when every shard is done and nobody finished it yet;
    /// whether this call did.
    async fn finish_if_last(&self, record: &ShardedRestore) -> Result<bool> {
        let id = &record.id;
        let done = list_all(
            &self.store,
            &self.config.backup_bucket,
            &Layout::restore_key(id, "done/"),
        )
        .await?;
        if done.len() < record.shards.len() {
            return Ok(false);
        }
        let finished_key = Layout::restore_key(id, "finished.json");
        if self
            .store
            .head(&self.config.backup_bucket, &finished_key, None)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        match self.write_log(record).await {
            Ok(finished) => {
                self.put_state(&finished_key, &finished, true).await?;
                tracing::info!(restore_id = %id, "every shard is done and the log is written");
                Ok(true)
            }
            Err(err) => {
                let failure = Failure {
                    error: err.to_string(),
                    at: now(),
                };
                self.put_state(&Layout::restore_key(id, "error.json"), &failure, false)
                    .await?;
                Err(err)
            }
        }
    }

    /// The log writes of a sharded restore, as a single-invocation restore makes them once its
    /// data is copied: sidecars, checkpoints, the commits in order, then a rollback's commit;
    /// then the catalog.
    async fn write_log(&self, record: &ShardedRestore) -> Result<Finished> {
        let log: LogWrites = self
            .get_state(&Layout::restore_key(&record.id, "log.json"))
            .await?
            .unwrap_or_default();
        let mut plan = record.plan_with(log.copies);
        if let Some(commit) = &mut plan.commit {
            commit.actions = log.commit_actions;
        }
        let outcome = self.execute(&plan, None, |_, _| {}).await?;
        if !outcome.complete {
            return Err(Error::Restore(format!(
                "restore {}: {} log file(s) were not written; the finishing is retried",
                record.id, outcome.remaining_objects
            )));
        }
        self.apply_catalog(&mut plan).await?;
        Ok(Finished {
            log: outcome,
            catalog: plan.catalog,
            at: now(),
        })
    }

    /// Where sharded restore `id` is: shards done, objects and bytes copied, and how it ended.
    pub async fn restore_status(&self, id: &str) -> Result<RestoreStatus> {
        let record = self.load_restore(id).await?;
        let done = list_all(
            &self.store,
            &self.config.backup_bucket,
            &Layout::restore_key(id, "done/"),
        )
        .await?;
        let mut status = RestoreStatus {
            restore_id: id.to_string(),
            table: record.plan.table.clone(),
            target: record.plan.target.clone(),
            phase: Phase::Copying,
            shards: record.shards.len() as u32,
            shards_done: 0,
            objects: record.shards.iter().map(|s| s.objects).sum(),
            objects_done: 0,
            bytes: record.shards.iter().map(|s| s.bytes).sum(),
            bytes_done: 0,
            log_objects: record.plan.objects_to_copy
                - record.shards.iter().map(|s| s.objects).sum::<u64>(),
            started_at: record.started_at.clone(),
            finished: None,
            error: None,
        };
        for object in &done {
            let shard = object
                .key
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(size) = shard.and_then(|s| record.shards.get(s)) {
                status.shards_done += 1;
                status.objects_done += size.objects;
                status.bytes_done += size.bytes;
            }
        }
        status.finished = self
            .get_state(&Layout::restore_key(id, "finished.json"))
            .await?;
        let failure: Option<Failure> = self
            .get_state(&Layout::restore_key(id, "error.json"))
            .await?;
        status.phase = match (&status.finished, &failure) {
            (Some(_), _) => Phase::Done,
            (None, Some(_)) => Phase::Failed,
            (None, None) if status.shards_done == status.shards => Phase::WritingLog,
            (None, None) => Phase::Copying,
        };
        if status.finished.is_none() {
            status.error = failure.map(|f| f.error);
        }
        Ok(status)
    }
}
