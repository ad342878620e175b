//! Queue benchmark: the durable job queue alone, in-process, on a fresh SQLite file and on a fresh PostgreSQL
//! database. One producer enqueues N no-op jobs one at a time (each its own transaction, like an upload's), then
//! `claimers` concurrent workers drain the queue with claim + complete until it is empty. Reported: enqueue and
//! drain throughput, and the latency of one claim + complete round. The drain is checked, not assumed: every job
//! must end succeeded, claimed exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use athena_store::jobs::{JobState, JobStore, NewJob, Queue};
use athena_store::Store;
use chrono::Utc;

use crate::server;
use crate::stats::{ms, summarize};
use crate::sync_common::{Backend, PgDatabase};

pub struct Options {
    pub jobs: usize,
    pub claimers: usize,
}

trait QueueStore: Store + JobStore {}
impl<T: Store + JobStore> QueueStore for T {}

/// The whole run (enqueue and drain) is bounded: a claimer stuck on a lock must not hang the benchmark.
const LIMIT: Duration = Duration::from_secs(600);

pub async fn run(scratch_root: &Path, backend: Backend, pg_admin: &str, opts: &Options) -> anyhow::Result<serde_json::Value> {
    match backend {
        Backend::Sqlite => {
            let dir = server::scratch(scratch_root, "queue-")?;
            let store = athena_store_sqlite::SqliteStore::connect(&dir.path().join("athena.db")).await?;
            bounded(measure(Arc::new(store), backend, opts)).await
        }
        Backend::Postgres => {
            let db = PgDatabase::create(pg_admin, "queue").await?;
            let result = match athena_store_postgres::PgStore::connect(&db.url).await {
                Ok(store) => bounded(measure(Arc::new(store), backend, opts)).await,
                Err(e) => Err(e.into()),
            };
            db.drop().await;
            result
        }
    }
}

async fn bounded(run: impl std::future::Future<Output = anyhow::Result<serde_json::Value>>) -> anyhow::Result<serde_json::Value> {
    tokio::time::timeout(LIMIT, run).await.map_err(|_| anyhow::anyhow!("queue benchmark did not finish within {LIMIT:?}"))?
}

async fn measure<S: QueueStore>(store: Arc<S>, backend: Backend, opts: &Options) -> anyhow::Result<serde_json::Value> {
    let label = backend.label();
    store.migrate().await?;

    let t = Instant::now();
    for i in 0..opts.jobs {
        let now = Utc::now();
        let job = NewJob {
            id: uuid::Uuid::new_v4(),
            queue: Queue::CpuDefault,
            kind: "bench.noop".into(),
            payload: serde_json::json!({"i": i}),
            dedup_key: None,
            max_attempts: 3,
            priority: 0,
            run_at: now,
            user_id: None,
            book_id: None,
            now,
        };
        let (_, created) = store.enqueue_job(job).await?;
        ensure!(created, "job {i} was not created");
    }
    let enqueue_s = t.elapsed().as_secs_f64();
    eprintln!("queue/{label}: enqueued {} jobs in {enqueue_s:.2} s", opts.jobs);

    let t = Instant::now();
    let workers: Vec<_> = (0..opts.claimers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = format!("bench-{w}");
                let mut claimed = Vec::new();
                let mut rounds = Vec::new();
                loop {
                    let started = Instant::now();
                    let now = Utc::now();
                    let Some(job) = store.claim_job(Queue::CpuDefault, &owner, now, now + chrono::Duration::seconds(60)).await? else {
                        break;
                    };
                    ensure!(store.complete_job(job.id, &owner, Utc::now()).await?, "{owner} lost job {}", job.id);
                    rounds.push(started.elapsed());
                    claimed.push(job.id);
                }
                anyhow::Ok((claimed, rounds))
            })
        })
        .collect();
    let mut claimed = Vec::new();
    let mut rounds = Vec::new();
    let mut per_worker = Vec::new();
    for worker in workers {
        let (ids, times) = worker.await??;
        per_worker.push(ids.len());
        claimed.extend(ids);
        rounds.extend(times);
    }
    let drain_s = t.elapsed().as_secs_f64();
    eprintln!("queue/{label}: drained {} jobs in {drain_s:.2} s with {} claimers {per_worker:?}", claimed.len(), opts.claimers);

    let unique: HashSet<uuid::Uuid> = claimed.iter().copied().collect();
    ensure!(unique.len() == claimed.len(), "a job was claimed twice");
    ensure!(claimed.len() == opts.jobs, "drained {} of {} jobs", claimed.len(), opts.jobs);
    let stats = store.queue_stats(Utc::now()).await?;
    let cpu = stats.iter().find(|s| s.queue == Some(Queue::CpuDefault)).cloned().unwrap_or_default();
    ensure!(cpu.succeeded == opts.jobs as i64 && cpu.ready + cpu.scheduled + cpu.running == 0, "queue not drained: {cpu:?}");
    if let Some(id) = claimed.first() {
        let job = store.job(*id).await?;
        ensure!(job.is_some_and(|j| j.state == JobState::Succeeded && j.attempts == 1), "job {id} not succeeded once");
    }
    store.close().await;

    let round = summarize(rounds);
    Ok(serde_json::json!({
        "bench": format!("queue_{label}"),
        "jobs": opts.jobs,
        "claimers": opts.claimers,
        "enqueue_s": round3(enqueue_s),
        "enqueue_jobs_per_s": round1(opts.jobs as f64 / enqueue_s),
        "drain_s": round3(drain_s),
        "drain_jobs_per_s": round1(opts.jobs as f64 / drain_s),
        "claim_complete_ms": {
            "p50": round3(ms(round.p50)),
            "p99": round3(ms(round.p99)),
            "max": round3(ms(round.max)),
        },
        "per_claimer": per_worker,
    }))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
