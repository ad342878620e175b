use std::sync::Arc;
use std::time::Duration;

use athena_app::App;
use athena_store::sync::{SyncEvent, SyncStore};
use athena_sync_rules::SyncRules;
use futures::StreamExt;
use tokio::sync::{broadcast, watch, Notify};

use crate::evaluate::evaluate;

/// Settings of the sync role.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Interval of the keep-alive `token_expires_in` line.
    pub keepalive: Duration,
    /// Without a cross-process channel (SQLite), how often captured changes are looked for. Writes
    /// made in this process also nudge the sequencer directly.
    pub poll: Duration,
    /// Changes per sequencing transaction.
    pub batch: u32,
    /// Ops per data line. The client applies each line in its own transaction and writes every index
    /// page the line touched at each commit, so fewer, larger lines cut its work: 100,000 rows
    /// downloaded with 3.15 s of client CPU at 1,000 per line (the reference service's size), 2.2 s
    /// at 5,000, 1.75–2.07 s at 10,000 (docs/PERFORMANCE.md).
    pub ops_per_line: u32,
    /// Buckets with at least this many ops are considered for compaction.
    pub compact_min_ops: i64,
    pub compact_every: Duration,
    /// Whether clients may upload (`POWERSYNC_UPLOAD_ENABLED`).
    pub upload_enabled: bool,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(20),
            poll: Duration::from_millis(20),
            batch: 10_000,
            ops_per_line: 10_000,
            compact_min_ops: 1000,
            compact_every: Duration::from_secs(60),
            upload_enabled: true,
        }
    }
}

/// The log grew to `last_op_id`; `buckets` changed (None: unknown, every stream checks).
#[derive(Debug)]
pub(crate) struct Advance {
    pub last_op_id: i64,
    pub buckets: Option<std::collections::HashSet<String>>,
}

/// The shared state of the sync role: the rules, the store, and the signals that wake streams.
#[derive(Clone)]
pub struct SyncService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub app: App,
    pub store: Arc<dyn SyncStore>,
    pub rules: Arc<SyncRules>,
    pub config: SyncConfig,
    /// The newest op id sequenced (by this process or, through LISTEN, another).
    pub ops: watch::Sender<i64>,
    /// Which buckets grew: streams whose buckets did not change skip the database entirely.
    pub advances: broadcast::Sender<Arc<Advance>>,
    /// User ids whose write checkpoints changed.
    pub write_checkpoints: broadcast::Sender<String>,
    /// Wakes the sequencer.
    pub nudge: Notify,
}

impl SyncService {
    /// Builds the service and brings the op log up to the rules: a new rules version re-captures
    /// every synced row under the new buckets (clients re-sync).
    pub async fn start(
        app: App,
        store: Arc<dyn SyncStore>,
        rules: SyncRules,
        config: SyncConfig,
    ) -> Result<Self, athena_store::StoreError> {
        let now = app.clock.now();
        if store.rules_version().await?.as_deref() != Some(rules.version()) {
            let tables: Vec<String> = rules.source_tables().into_iter().collect();
            tracing::info!(version = rules.version(), tables = tables.len(), "sync rules changed: rebuilding the op log");
            store.reset_for_rules(rules.version(), &tables, now).await?;
        }
        let last = store.log_checkpoint(&[]).await?.last_op_id;
        let (ops, _) = watch::channel(last);
        let (write_checkpoints, _) = broadcast::channel(1024);
        let (advances, _) = broadcast::channel(1024);
        let service = Self {
            inner: Arc::new(Inner { app, store, rules: Arc::new(rules), config, ops, advances, write_checkpoints, nudge: Notify::new() }),
        };
        // Sequence what is already captured before anyone connects.
        service.sequence_all().await?;
        Ok(service)
    }

    /// Sequences every captured change now. Returns the log's last op id.
    pub async fn sequence_all(&self) -> Result<i64, athena_store::StoreError> {
        self.sequence(false).await
    }

    /// Sequences everything committed before this call, waiting for another process's pass if
    /// one is running.
    pub async fn sequence_now(&self) -> Result<i64, athena_store::StoreError> {
        self.sequence(true).await
    }

    /// With `must_run`, waits for the sequencer lock instead of leaving the work to the process
    /// that holds it: a write checkpoint needs a pass that started after its request.
    async fn sequence(&self, must_run: bool) -> Result<i64, athena_store::StoreError> {
        let inner = &self.inner;
        let mut waited = 0;
        let rules = inner.rules.clone();
        let eval = move |change: &athena_store::sync::CapturedChange| evaluate(&rules, change);
        loop {
            let outcome = inner.store.sequence(inner.config.batch, &eval).await?;
            if outcome.ran {
                if outcome.ops > 0 {
                    self.advance(outcome.last_op_id, Some(outcome.buckets.iter().cloned().collect()));
                } else {
                    // Another pass (a concurrent task of ours) may have grown the log without having
                    // announced it yet; which buckets is unknown here.
                    self.advance(outcome.last_op_id, None);
                }
                if outcome.changes > 0 {
                    metrics::counter!("powersync_changes_sequenced_total").increment(outcome.changes);
                    metrics::counter!("powersync_ops_created_total").increment(outcome.ops);
                }
                if (outcome.changes as u32) < inner.config.batch {
                    return Ok(outcome.last_op_id);
                }
            } else if must_run && waited < 400 {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            } else {
                // Another process is sequencing; it will announce the result.
                return Ok(*inner.ops.borrow());
            }
        }
    }

    /// Records that the log grew and tells the streams (only those of `buckets`, when known).
    fn advance(&self, last_op_id: i64, buckets: Option<std::collections::HashSet<String>>) {
        let inner = &self.inner;
        let advanced = inner.ops.send_if_modified(|current| {
            let advanced = last_op_id > *current;
            if advanced {
                *current = last_op_id;
            }
            advanced
        });
        // Our own notifications come back through LISTEN; once is enough.
        if advanced {
            let _ = inner.advances.send(Arc::new(Advance { last_op_id, buckets }));
        }
    }

    /// Wakes the sequencer (after a write made in this process).
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// The newest op id known to this process.
    pub fn last_op_id(&self) -> i64 {
        *self.inner.ops.borrow()
    }

    /// Runs the sequencer, the cross-process listener and the compactor until `stop` is true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let inner = self.inner.clone();
        let mut events = match inner.store.subscribe().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "sync: no cross-process notifications; polling");
                None
            }
        };
        let has_events = events.is_some();
        // With LISTEN, polling is only a safety net for missed notifications.
        let poll = if has_events { Duration::from_secs(2) } else { inner.config.poll };
        let mut compact_tick = tokio::time::interval(inner.config.compact_every);
        compact_tick.tick().await;
        loop {
            let next_event = async {
                match events.as_mut() {
                    Some(stream) => stream.next().await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                _ = crate::stopped(&mut stop) => return,
                _ = inner.nudge.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = compact_tick.tick() => {
                    self.compact_once().await;
                    continue;
                }
                event = next_event => match event {
                    Some(SyncEvent::ChangesCaptured) | None => {}
                    Some(SyncEvent::OpsAdvanced(id, buckets)) => {
                        self.advance(id, buckets.map(|b| b.into_iter().collect()));
                        continue;
                    }
                    Some(SyncEvent::WriteCheckpoint(user)) => {
                        let _ = inner.write_checkpoints.send(user);
                        continue;
                    }
                },
            }
            match inner.store.pending_changes().await {
                Ok(pending) => {
                    metrics::gauge!("powersync_upload_queue_size").set(pending as f64);
                    if pending == 0 {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync: cannot read captured changes");
                    continue;
                }
            }
            if let Err(e) = self.sequence_all().await {
                tracing::warn!(error = %e, "sync: sequencing failed; will retry");
            }
        }
    }

    /// One compaction round over the biggest buckets.
    pub async fn compact_once(&self) -> u64 {
        let inner = &self.inner;
        let buckets = match inner.store.buckets_to_compact(inner.config.compact_min_ops, 50).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "sync: compaction skipped");
                return 0;
            }
        };
        let mut rewritten = 0;
        for bucket in buckets {
            let until = *inner.ops.borrow();
            match inner.store.compact_bucket(&bucket, until).await {
                Ok(0) => {}
                Ok(n) => {
                    rewritten += n;
                    // Compaction appends the live rows again; that bucket's streams must see them.
                    if let Ok(cp) = inner.store.log_checkpoint(&[]).await {
                        self.advance(cp.last_op_id, Some([bucket].into_iter().collect()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, bucket, "sync: compaction of a bucket failed"),
            }
        }
        if rewritten > 0 {
            metrics::counter!("powersync_ops_compacted_total").increment(rewritten);
        }
        rewritten
    }

    /// `GET /write-checkpoint2.json`: sequences everything committed so far, then records a write
    /// checkpoint for (user, client) standing for the log up to here.
    pub async fn create_write_checkpoint(&self, user: &str, client_id: &str) -> Result<i64, athena_store::StoreError> {
        let watermark = self.sequence(true).await?;
        // Another process may have sequenced; the log end is what counts.
        let watermark = watermark.max(self.inner.store.log_checkpoint(&[]).await?.last_op_id);
        let now = self.inner.app.clock.now();
        let checkpoint = self.inner.store.create_write_checkpoint(user, client_id, watermark, now).await?;
        let _ = self.inner.write_checkpoints.send(user.to_string());
        Ok(checkpoint)
    }
}
