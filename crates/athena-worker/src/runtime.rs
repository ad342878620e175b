//! The job loop: claim a job under a lease, run its task with a time limit while a heartbeat keeps
//! the lease, and record the outcome (done, retry with exponential backoff, or dead-lettered).
//!
//! Every state change names this worker as the lease owner, so a worker that lost its job (the
//! lease expired and another worker took it, or an operator cancelled it) cannot overwrite the
//! result of the worker that holds it now.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use athena_app::App;
use athena_store::jobs::{Job, Queue};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

/// How a task failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// Worth another try later (storage or database unavailable, a tool that crashed).
    Retry(String),
    /// Will fail the same way every time (a broken file, an unsupported input): no retry.
    Permanent { code: &'static str, message: String },
}

impl TaskError {
    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self::Permanent { code, message: message.into() }
    }

    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self::Retry(message.to_string())
    }

    /// What is stored as the job's `last_error` and shown to users as the reason.
    pub fn describe(&self) -> String {
        match self {
            Self::Retry(m) => m.clone(),
            Self::Permanent { code, message } => format!("{code}: {message}"),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Retry(_) => "retryable",
            Self::Permanent { code, .. } => code,
        }
    }
}

impl From<athena_store::StoreError> for TaskError {
    fn from(e: athena_store::StoreError) -> Self {
        match e {
            athena_store::StoreError::NotFound => Self::permanent("book_gone", "the book no longer exists"),
            other => Self::Retry(format!("database: {other}")),
        }
    }
}

impl From<athena_blob::BlobError> for TaskError {
    fn from(e: athena_blob::BlobError) -> Self {
        Self::Retry(format!("storage: {e}"))
    }
}

/// What a task gets to work with.
pub struct TaskCtx {
    pub app: App,
    /// A fresh folder for this run only (removed afterwards, whatever happens).
    pub work_dir: PathBuf,
    /// Cancelled when the job is cancelled, lost, or the worker shuts down; long tasks check it
    /// between steps (subprocesses are killed when their future is dropped).
    pub cancel: CancellationToken,
}

/// One kind of job.
#[async_trait]
pub trait Task: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    fn time_limit(&self) -> Duration;
    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError>;
    /// Called once when the job is given up for good: record the failure where users see it
    /// (e.g. `conversion_status = failed` with the reason).
    async fn give_up(&self, _ctx: &TaskCtx, _job: &Job, _error: &TaskError) -> Result<(), TaskError> {
        Ok(())
    }
}

/// What happened to one claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed, queued again for later.
    WillRetry {
        error: String,
    },
    /// Failed for good (dead-lettered).
    Dead {
        error: String,
    },
    /// Cancelled, or the lease was lost: the result was not recorded.
    Abandoned,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    pub job_id: uuid::Uuid,
    pub kind: String,
    pub outcome: Outcome,
}

pub(crate) struct Runtime {
    pub app: App,
    pub owner: String,
    pub tasks: HashMap<&'static str, Arc<dyn Task>>,
    pub lease: Duration,
    pub shutdown: CancellationToken,
}

/// Retry delay after the n-th failed attempt: 10 s, 20 s, 40 s … capped at one hour.
pub fn backoff(attempt: i32) -> Duration {
    let exp = attempt.clamp(1, 20) as u32 - 1;
    Duration::from_secs((10u64 << exp.min(9)).min(3600))
}

impl Runtime {
    fn jobs_dir(&self) -> PathBuf {
        self.app.config.hot_dir.join("tmp").join("jobs")
    }

    /// Claims one due job of `queue` and runs it to the end; None when there was nothing to do.
    pub async fn run_one(&self, queue: Queue) -> anyhow::Result<Option<RunReport>> {
        let now = self.app.clock.now();
        let lease_until = now + chrono::Duration::from_std(self.lease)?;
        let Some(job) = self.app.store.claim_job(queue, &self.owner, now, lease_until).await? else {
            return Ok(None);
        };
        let started = Instant::now();
        metrics::gauge!("athena_jobs_in_progress", "queue" => queue.as_str()).increment(1.0);
        let outcome = self.execute(&job).await;
        metrics::gauge!("athena_jobs_in_progress", "queue" => queue.as_str()).decrement(1.0);
        let label = match &outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::WillRetry { .. } => "retry",
            Outcome::Dead { .. } => "dead",
            Outcome::Abandoned => "abandoned",
        };
        metrics::counter!("athena_jobs_finished_total", "queue" => queue.as_str(), "kind" => job.kind.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("athena_job_duration_seconds", "queue" => queue.as_str(), "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        match &outcome {
            Outcome::Succeeded => tracing::info!(job = %job.id, kind = %job.kind, ms = started.elapsed().as_millis() as u64, "job done"),
            Outcome::WillRetry { error } => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %error, "job failed; will retry")
            }
            Outcome::Dead { error } => tracing::warn!(job = %job.id, kind = %job.kind, %error, "job failed for good"),
            Outcome::Abandoned => tracing::info!(job = %job.id, kind = %job.kind, "job abandoned (cancelled or lease lost)"),
        }
        Ok(Some(RunReport { job_id: job.id, kind: job.kind, outcome }))
    }

    async fn execute(&self, job: &Job) -> Outcome {
        let Some(task) = self.tasks.get(job.kind.as_str()).cloned() else {
            let error = TaskError::permanent("unknown_job_kind", format!("this worker has no task {:?}", job.kind));
            return self.record_failure(job, None, error).await;
        };
        let work_dir = self.jobs_dir().join(job.id.to_string());
        // A killed run may have left its folder behind; start clean.
        let _ = tokio::fs::remove_dir_all(&work_dir).await;
        if let Err(e) = tokio::fs::create_dir_all(&work_dir).await {
            return self.record_failure(job, Some(&*task), TaskError::retry(format!("creating the job folder: {e}"))).await;
        }
        let cancel = self.shutdown.child_token();
        let ctx = TaskCtx { app: self.app.clone(), work_dir: work_dir.clone(), cancel: cancel.clone() };

        let heartbeat = self.spawn_heartbeat(job.id, cancel.clone());
        let limit = task.time_limit();
        let result = tokio::select! {
            r = tokio::time::timeout(limit, AssertUnwindSafe(task.run(&ctx, job)).catch_unwind()) => match r {
                Ok(Ok(result)) => Some(result),
                Ok(Err(_panic)) => Some(Err(TaskError::permanent("internal_error", "the task crashed"))),
                Err(_) => Some(Err(TaskError::permanent("timeout", format!("did not finish within {} s", limit.as_secs())))),
            },
            _ = cancel.cancelled() => None,
        };
        heartbeat.abort();
        let outcome = match result {
            Some(Ok(())) => match self.app.store.complete_job(job.id, &self.owner, self.app.clock.now()).await {
                Ok(true) => Outcome::Succeeded,
                Ok(false) => Outcome::Abandoned,
                Err(e) => {
                    // The lease will expire and the job run again; tasks are idempotent.
                    tracing::warn!(job = %job.id, error = %e, "could not record success");
                    Outcome::Abandoned
                }
            },
            Some(Err(error)) => self.record_failure_with(job, Some(&*task), error, &ctx).await,
            None if self.shutdown.is_cancelled() => {
                // Hand the job back at once rather than waiting for the lease to run out.
                let now = self.app.clock.now();
                let _ = self.app.store.fail_job(job.id, &self.owner, "interrupted by worker shutdown", Some(now), now).await;
                Outcome::Abandoned
            }
            None => Outcome::Abandoned,
        };
        let _ = tokio::fs::remove_dir_all(&work_dir).await;
        outcome
    }

    fn spawn_heartbeat(&self, id: uuid::Uuid, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = self.app.store.clone();
        let clock = self.app.clock.clone();
        let owner = self.owner.clone();
        let lease = self.lease;
        tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(200));
            loop {
                tokio::time::sleep(every).await;
                let now = clock.now();
                let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                match store.heartbeat_job(id, &owner, until, now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(job = %id, "job cancelled or taken over; stopping it");
                        cancel.cancel();
                        return;
                    }
                    // A database blip: keep trying; the lease has room for two misses.
                    Err(e) => tracing::warn!(job = %id, error = %e, "heartbeat failed"),
                }
            }
        })
    }

    async fn record_failure(&self, job: &Job, task: Option<&dyn Task>, error: TaskError) -> Outcome {
        let ctx = TaskCtx { app: self.app.clone(), work_dir: self.jobs_dir(), cancel: CancellationToken::new() };
        self.record_failure_with(job, task, error, &ctx).await
    }

    async fn record_failure_with(&self, job: &Job, task: Option<&dyn Task>, error: TaskError, ctx: &TaskCtx) -> Outcome {
        let now = self.app.clock.now();
        let attempts_left = job.attempts < job.max_attempts.max(1);
        let retry_at = match &error {
            TaskError::Retry(_) if attempts_left => Some(now + chrono::Duration::from_std(backoff(job.attempts)).unwrap_or_default()),
            _ => None,
        };
        let text = error.describe();
        match self.app.store.fail_job(job.id, &self.owner, &text, retry_at, now).await {
            Ok(true) => {}
            Ok(false) => return Outcome::Abandoned,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not record failure");
                return Outcome::Abandoned;
            }
        }
        if retry_at.is_some() {
            return Outcome::WillRetry { error: text };
        }
        if let Some(task) = task {
            if let Err(e) = task.give_up(ctx, job, &error).await {
                tracing::warn!(job = %job.id, error = %e.describe(), "could not record the failure on the book");
            }
        }
        Outcome::Dead { error: text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(12), Duration::from_secs(3600));
        assert_eq!(backoff(0), Duration::from_secs(10));
    }
}
