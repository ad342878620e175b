//! The worker role: runs the durable job queue of `athena_store::jobs` — conversion to EPUB,
//! metadata and WebP covers, text extraction, OCR — and imports files dropped in the watch folder.
//!
//! Replaces the seed's Celery workers (queues `gpu_high`, `gpu_low`, `cpu_default`) and its
//! `calibre-watcher`. Any number of worker processes can serve one PostgreSQL database: claims are
//! atomic and leased, so a killed worker's job is taken up again when its lease runs out. Tasks
//! are idempotent (they write to keys derived from the book), so running one twice leaves the
//! same result. Tests drive the queue deterministically with [`Worker::run_one`] / [`Worker::drain`].

mod runtime;
pub mod tasks;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use athena_app::App;
use athena_store::jobs::Queue;
use tokio_util::sync::CancellationToken;

pub use runtime::{backoff, Outcome, RunReport, Task, TaskCtx, TaskError};

/// A worker over one `App` (its store, object storage and configuration). Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    rt: Arc<runtime::Runtime>,
}

impl Worker {
    /// A worker with Athena's tasks (conversion, metadata and covers, text, OCR, no-op).
    pub fn new(app: App) -> Self {
        let tasks = tasks::all(&app);
        Self::with_tasks(app, tasks)
    }

    /// A worker running exactly these tasks (tests and benchmarks).
    pub fn with_tasks(app: App, tasks: Vec<Arc<dyn Task>>) -> Self {
        let config = &app.config.worker;
        let owner = format!("{}:{}:{}", hostname(), std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let lease = Duration::from_secs(config.lease_secs);
        let tasks: HashMap<&'static str, Arc<dyn Task>> = tasks.into_iter().map(|t| (t.kind(), t)).collect();
        Self { rt: Arc::new(runtime::Runtime { app, owner, tasks, lease, shutdown: CancellationToken::new() }) }
    }

    /// This worker's lease-owner name (`host:pid:random`).
    pub fn owner(&self) -> &str {
        &self.rt.owner
    }

    /// Claims and runs one due job of `queue`; None when none is due.
    pub async fn run_one(&self, queue: Queue) -> anyhow::Result<Option<RunReport>> {
        self.rt.run_one(queue).await
    }

    /// Runs due jobs of every queue, one at a time, until none is due (jobs queued by jobs
    /// included). Retries scheduled for later are left for later.
    pub async fn drain(&self) -> anyhow::Result<Vec<RunReport>> {
        let mut reports = Vec::new();
        loop {
            let mut ran = false;
            for queue in Queue::ALL {
                if let Some(r) = self.rt.run_one(queue).await? {
                    reports.push(r);
                    ran = true;
                }
            }
            if !ran {
                return Ok(reports);
            }
        }
    }

    /// Runs the queues with the configured concurrency until `stop` turns true; jobs in flight are
    /// then interrupted and handed back to the queue at once.
    pub async fn run(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let config = &self.rt.app.config.worker;
        let mut loops = tokio::task::JoinSet::new();
        for (queue, slots) in [
            (Queue::CpuDefault, config.cpu_concurrency),
            (Queue::GpuHigh, config.ocr_concurrency),
            (Queue::GpuLow, config.embed_concurrency),
        ] {
            for _ in 0..slots {
                let rt = self.rt.clone();
                loops.spawn(async move { queue_loop(rt, queue).await });
            }
        }
        if let Some(watch) = watch::WatchFolder::from_config(&self.rt.app) {
            let token = self.rt.shutdown.clone();
            loops.spawn(async move { watch.run(token).await });
        }
        tracing::info!(owner = %self.rt.owner, "worker running");
        let _ = stop.wait_for(|s| *s).await;
        self.rt.shutdown.cancel();
        while loops.join_next().await.is_some() {}
    }
}

/// How long an idle queue loop sleeps before looking again.
const IDLE_POLL: Duration = Duration::from_millis(500);

async fn queue_loop(rt: Arc<runtime::Runtime>, queue: Queue) {
    let mut idle = IDLE_POLL;
    while !rt.shutdown.is_cancelled() {
        match rt.run_one(queue).await {
            Ok(Some(_)) => {
                idle = IDLE_POLL;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, "claiming a job failed");
                // Back off while the database is unavailable.
                idle = (idle * 2).min(Duration::from_secs(10));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = rt.shutdown.cancelled() => {}
        }
    }
}

/// Describes the worker's metrics for `/metrics`.
pub fn install_descriptions() {
    metrics::describe_gauge!("athena_queue_depth", "Jobs due now and waiting for a worker, per queue (read at scrape time)");
    metrics::describe_gauge!("athena_queue_scheduled", "Jobs waiting for a retry time, per queue");
    metrics::describe_gauge!("athena_queue_running", "Jobs running (all workers), per queue");
    metrics::describe_gauge!("athena_queue_dead", "Dead-lettered jobs, per queue");
    metrics::describe_gauge!("athena_jobs_in_progress", "Jobs this process is running, per queue");
    metrics::describe_counter!("athena_jobs_finished_total", "Jobs this process finished, by queue, kind and outcome");
    metrics::describe_histogram!("athena_job_duration_seconds", "Run time of jobs, by queue and kind");
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "worker".into())
}
