//! The job queue ([`JobStore`]): claiming, leases, dedup, retries, cancellation, figures; the
//! worker's writes onto books; OCR pages, results and charges.
//!
//! The three queues are shared by every scenario, so each scenario starts and ends with no
//! unfinished job ([`settle`]) and compares queue figures as differences.

use std::collections::HashSet;

use athena_domain::{BookId, ObjectKey};
use chrono::{DateTime, Utc};

use super::{assert_not_found, created, fresh_hash, join_all, new_book, now, secs, user, BoxFuture};
use crate::jobs::{BookProcessing, Job, JobFilter, JobState, JobStore, NewJob, OcrCharge, OcrPage, OcrResult, Queue, QueueStats};
use crate::{BookInsert, Store, StoreError};

fn new_job(queue: Queue, kind: &str, at: DateTime<Utc>) -> NewJob {
    NewJob {
        id: uuid::Uuid::new_v4(),
        queue,
        kind: kind.to_string(),
        payload: serde_json::json!({"kind": kind, "n": 1}),
        dedup_key: None,
        max_attempts: 3,
        priority: 0,
        run_at: at,
        user_id: None,
        book_id: None,
        now: at,
    }
}

async fn enqueued(j: &dyn JobStore, job: NewJob) -> Job {
    let (job, created) = j.enqueue_job(job).await.expect("enqueue");
    assert!(created, "a job without a live duplicate is created");
    job
}

async fn claimed(j: &dyn JobStore, queue: Queue, owner: &str, at: DateTime<Utc>) -> Job {
    j.claim_job(queue, owner, at, at + secs(30)).await.expect("claim").unwrap_or_else(|| panic!("{owner}: nothing to claim in {queue}"))
}

async fn state_of(j: &dyn JobStore, id: uuid::Uuid) -> JobState {
    j.job(id).await.expect("job").expect("job exists").state
}

/// Cancels every unfinished job, so the next scenario starts from idle queues.
async fn settle(j: &dyn JobStore) {
    for state in [JobState::Queued, JobState::Running] {
        let unfinished = j.list_jobs(&JobFilter { state: Some(state), limit: 1000, ..JobFilter::default() }).await.expect("list");
        for job in unfinished {
            j.cancel_job(job.id, now()).await.expect("cancel");
        }
    }
}

/// Enqueue, claim, complete: every field as the contract describes it.
pub async fn lifecycle(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let mut new = new_job(Queue::CpuDefault, "book.convert", t - secs(1));
    new.now = t;
    new.payload = serde_json::json!({"format": "mobi", "nested": {"a": [1, 2]}});
    new.user_id = Some(crate::UserId::new());
    new.book_id = Some(BookId::new());
    let job = enqueued(j, new.clone()).await;
    assert_eq!((job.id, job.queue, job.kind.as_str(), &job.payload), (new.id, Queue::CpuDefault, "book.convert", &new.payload));
    assert_eq!((job.state, job.attempts, job.max_attempts, job.priority), (JobState::Queued, 0, 3, 0));
    assert_eq!((job.run_at, job.created_at, job.updated_at), (t - secs(1), t, t));
    assert_eq!((&job.user_id, &job.book_id), (&new.user_id, &new.book_id));
    assert_eq!((job.lease_owner.clone(), job.lease_expires_at, job.last_error.clone()), (None, None, None));
    assert_eq!((job.started_at, job.finished_at, job.dedup_key.clone()), (None, None, None));
    assert_eq!(j.job(job.id).await.expect("job"), Some(job.clone()));
    assert_eq!(j.job(uuid::Uuid::new_v4()).await.expect("unknown job"), None);

    // Other queues see nothing.
    assert_eq!(j.claim_job(Queue::GpuHigh, "w0", t, t + secs(30)).await.expect("claim other queue"), None);
    let t1 = t + secs(2);
    let run = j.claim_job(Queue::CpuDefault, "w1", t1, t1 + secs(30)).await.expect("claim").expect("a job");
    assert_eq!((run.id, run.state, run.attempts), (job.id, JobState::Running, 1));
    assert_eq!(
        (run.lease_owner.as_deref(), run.lease_expires_at, run.started_at, run.updated_at),
        (Some("w1"), Some(t1 + secs(30)), Some(t1), t1)
    );
    assert_eq!(j.job(job.id).await.expect("job"), Some(run.clone()));
    assert_eq!(j.claim_job(Queue::CpuDefault, "w2", t1, t1 + secs(30)).await.expect("claim again"), None, "a held job is not claimed");

    assert!(j.heartbeat_job(job.id, "w1", t1 + secs(60), t1 + secs(5)).await.expect("heartbeat"));
    assert_eq!(j.job(job.id).await.expect("job").expect("job").lease_expires_at, Some(t1 + secs(60)));
    assert!(!j.heartbeat_job(job.id, "w2", t1 + secs(60), t1 + secs(5)).await.expect("foreign heartbeat"));
    assert!(!j.complete_job(job.id, "w2", t1 + secs(6)).await.expect("foreign complete"), "only the owner completes");
    assert!(j.complete_job(job.id, "w1", t1 + secs(7)).await.expect("complete"));
    let done = j.job(job.id).await.expect("job").expect("job");
    assert_eq!((done.state, done.finished_at, done.updated_at, done.attempts), (JobState::Succeeded, Some(t1 + secs(7)), t1 + secs(7), 1));
    assert!(!j.complete_job(job.id, "w1", t1 + secs(8)).await.expect("complete twice"));
    assert!(!j.heartbeat_job(job.id, "w1", t1 + secs(90), t1 + secs(8)).await.expect("heartbeat after completion"));
    assert!(!j.fail_job(job.id, "w1", "late", None, t1 + secs(8)).await.expect("fail after completion"));
    assert_eq!(state_of(j, job.id).await, JobState::Succeeded);
    assert_eq!(j.claim_job(Queue::CpuDefault, "w1", t1 + secs(100), t1 + secs(130)).await.expect("claim"), None);

    let listed = j.list_jobs(&JobFilter { book_id: new.book_id.clone(), limit: 10, ..JobFilter::default() }).await.expect("list");
    assert_eq!(listed, vec![done]);
}

/// Priority first, then run_at, then creation; a job due later waits; positions follow that order.
pub async fn ordering(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let mut specs = Vec::new();
    for (priority, run_at) in [(5, t - secs(10)), (1, t - secs(5)), (1, t - secs(20)), (1, t - secs(20)), (9, t + secs(3600))] {
        let mut new = new_job(Queue::GpuLow, "embed", run_at);
        new.priority = priority;
        new.now = t;
        specs.push(enqueued(j, new).await.id);
    }
    let (late_low, mid, first, second, future) = (specs[0], specs[1], specs[2], specs[3], specs[4]);
    let expected_order = [first, second, mid, late_low, future];
    for (position, id) in expected_order.iter().enumerate() {
        assert_eq!(j.queue_position(*id).await.expect("position"), Some(position as i64), "position of job {position}");
    }
    assert_eq!(j.queue_position(uuid::Uuid::new_v4()).await.expect("unknown position"), None);

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(claimed(j, Queue::GpuLow, "w", t).await.id);
    }
    assert_eq!(got, expected_order[..4].to_vec(), "claim order");
    assert_eq!(j.claim_job(Queue::GpuLow, "w", t, t + secs(30)).await.expect("claim"), None, "future job is not due");
    assert_eq!(j.queue_position(first).await.expect("position"), None, "a running job has no position");
    assert_eq!(j.queue_position(future).await.expect("position"), Some(0));
    // Their leases would have expired by then, and expired jobs of a better priority come first.
    for id in got {
        assert!(j.complete_job(id, "w", t + secs(1)).await.expect("complete"));
    }
    let later = claimed(j, Queue::GpuLow, "w", t + secs(3601)).await;
    assert_eq!(later.id, future);
    assert!(j.complete_job(future, "w", t + secs(3602)).await.expect("complete"));
}

/// A dedup key is held while its job is unfinished, and free again once it finishes.
pub async fn dedup(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let key = format!("cover:{}", uuid::Uuid::new_v4());
    let mut first = new_job(Queue::CpuDefault, "book.cover", t);
    first.dedup_key = Some(key.clone());
    let job = enqueued(j, first.clone()).await;
    assert_eq!(job.dedup_key.as_deref(), Some(key.as_str()));

    let mut again = new_job(Queue::CpuDefault, "book.cover", t + secs(1));
    again.dedup_key = Some(key.clone());
    let (same, created) = j.enqueue_job(again.clone()).await.expect("enqueue duplicate");
    assert!(!created);
    assert_eq!(same, job, "the unfinished job comes back unchanged");
    assert_eq!(j.job(again.id).await.expect("job"), None, "nothing was added");

    let run = claimed(j, Queue::CpuDefault, "w", t + secs(2)).await;
    assert_eq!(run.id, job.id);
    let (same, created) = j.enqueue_job(NewJob { id: uuid::Uuid::new_v4(), ..again.clone() }).await.expect("enqueue while running");
    assert!(!created);
    assert_eq!((same.id, same.state), (job.id, JobState::Running));

    assert!(j.complete_job(job.id, "w", t + secs(3)).await.expect("complete"));
    let (next, created) = j.enqueue_job(again.clone()).await.expect("enqueue after finish");
    assert!(created, "a finished job frees its key");
    assert_eq!((next.id, next.state), (again.id, JobState::Queued));

    // Cancelling frees it too.
    j.cancel_job(next.id, t + secs(4)).await.expect("cancel").expect("job");
    let third = NewJob { id: uuid::Uuid::new_v4(), ..again };
    let (job3, created) = j.enqueue_job(third.clone()).await.expect("enqueue after cancel");
    assert!(created);
    assert_eq!(job3.id, third.id);
    // Racing enqueues of one key: exactly one creates the job, and all of them get it.
    let raced = format!("race:{}", uuid::Uuid::new_v4());
    let racers: Vec<BoxFuture<'_, (Job, bool)>> = (0..8)
        .map(|_| {
            let new = NewJob { id: uuid::Uuid::new_v4(), dedup_key: Some(raced.clone()), ..new_job(Queue::GpuHigh, "ocr", t) };
            Box::pin(async move { j.enqueue_job(new).await.expect("racing enqueue") }) as BoxFuture<'_, (Job, bool)>
        })
        .collect();
    let results = join_all(racers).await;
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "one racer creates the job");
    assert!(results.iter().all(|(job, _)| job.id == results[0].0.id), "all racers get the same job");
    // Jobs without a key never collide.
    enqueued(j, new_job(Queue::CpuDefault, "book.cover", t)).await;
    enqueued(j, new_job(Queue::CpuDefault, "book.cover", t)).await;
    settle(j).await;
}

/// Eight claimers draining 200 jobs: each job is claimed exactly once, and all are claimed.
pub async fn concurrent_claims(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let mut ids = HashSet::new();
    for i in 0..200 {
        let mut new = new_job(Queue::GpuHigh, "ocr", t);
        new.priority = i % 3;
        ids.insert(enqueued(j, new).await.id);
    }
    let claimers: Vec<BoxFuture<'_, Vec<uuid::Uuid>>> = (0..8)
        .map(|w| {
            let owner = format!("worker-{w}");
            Box::pin(async move {
                let mut mine = Vec::new();
                while let Some(job) = j.claim_job(Queue::GpuHigh, &owner, t, t + secs(60)).await.expect("claim") {
                    assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                    assert!(j.complete_job(job.id, &owner, t).await.expect("complete"), "{owner} holds {}", job.id);
                    mine.push(job.id);
                }
                mine
            }) as BoxFuture<'_, Vec<uuid::Uuid>>
        })
        .collect();
    let per_worker = join_all(claimers).await;
    let all: Vec<uuid::Uuid> = per_worker.iter().flatten().copied().collect();
    let unique: HashSet<uuid::Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a job was claimed twice");
    assert_eq!(unique, ids, "every job was claimed");
    for id in ids.iter().take(5) {
        let job = j.job(*id).await.expect("job").expect("job");
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
    }
}

/// An expired lease lets another worker take the job; the first one's writes are refused.
pub async fn lease_expiry(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let job = enqueued(j, new_job(Queue::CpuDefault, "book.text", t)).await;
    let a = j.claim_job(Queue::CpuDefault, "a", t, t + secs(30)).await.expect("claim").expect("job");
    assert_eq!(a.id, job.id);
    assert_eq!(j.claim_job(Queue::CpuDefault, "b", t + secs(29), t + secs(59)).await.expect("claim before expiry"), None);
    let b = j.claim_job(Queue::CpuDefault, "b", t + secs(31), t + secs(61)).await.expect("claim after expiry").expect("job");
    assert_eq!((b.id, b.attempts, b.lease_owner.as_deref(), b.started_at), (job.id, 2, Some("b"), Some(t + secs(31))));
    assert!(!j.heartbeat_job(job.id, "a", t + secs(90), t + secs(32)).await.expect("stale heartbeat"));
    assert!(!j.complete_job(job.id, "a", t + secs(32)).await.expect("stale complete"));
    assert!(!j.fail_job(job.id, "a", "boom", None, t + secs(32)).await.expect("stale fail"));
    assert_eq!(j.job(job.id).await.expect("job").expect("job"), b, "the stale owner changed nothing");
    assert!(j.complete_job(job.id, "b", t + secs(33)).await.expect("complete"));
    assert_eq!(state_of(j, job.id).await, JobState::Succeeded);
}

/// Failures: retried later with attempts counted, or dead with the error; retry_job revives.
pub async fn failures_and_retry(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let job = enqueued(j, new_job(Queue::GpuLow, "embed", t)).await;
    claimed(j, Queue::GpuLow, "w", t).await;
    assert!(j.fail_job(job.id, "w", "timeout", Some(t + secs(10)), t + secs(1)).await.expect("fail with retry"));
    let queued = j.job(job.id).await.expect("job").expect("job");
    assert_eq!((queued.state, queued.attempts, queued.run_at), (JobState::Queued, 1, t + secs(10)));
    assert_eq!((queued.last_error.as_deref(), queued.lease_owner.clone(), queued.finished_at), (Some("timeout"), None, None));
    assert!(!j.complete_job(job.id, "w", t + secs(2)).await.expect("complete a queued job"), "a requeued job has no owner");
    assert_eq!(j.claim_job(Queue::GpuLow, "w", t + secs(9), t + secs(39)).await.expect("claim"), None, "backoff");
    let again = claimed(j, Queue::GpuLow, "w2", t + secs(11)).await;
    assert_eq!((again.id, again.attempts), (job.id, 2));

    // Without a retry time the job is dead; the error is clipped to 4,000 characters.
    let long: String = "é".repeat(5000);
    assert!(j.fail_job(job.id, "w2", &long, None, t + secs(12)).await.expect("fail for good"));
    let dead = j.job(job.id).await.expect("job").expect("job");
    assert_eq!((dead.state, dead.attempts, dead.finished_at), (JobState::Dead, 2, Some(t + secs(12))));
    assert_eq!(dead.last_error.as_deref().map(|e| e.chars().count()), Some(4000));
    assert!(dead.last_error.as_deref().is_some_and(|e| e.chars().all(|c| c == 'é')));
    assert_eq!(j.claim_job(Queue::GpuLow, "w", t + secs(100), t + secs(130)).await.expect("claim"), None, "dead jobs stay");

    let revived = j.retry_job(job.id, t + secs(20)).await.expect("retry").expect("job");
    assert_eq!((revived.state, revived.attempts, revived.run_at, revived.finished_at), (JobState::Queued, 0, t + secs(20), None));
    assert_eq!(j.queue_position(job.id).await.expect("position"), Some(0));
    let run = claimed(j, Queue::GpuLow, "w3", t + secs(21)).await;
    assert_eq!((run.id, run.attempts), (job.id, 1));
    // Retrying a running (or succeeded) job changes nothing.
    assert_eq!(j.retry_job(job.id, t + secs(22)).await.expect("retry running"), Some(run.clone()));
    assert!(j.complete_job(job.id, "w3", t + secs(23)).await.expect("complete"));
    let done = j.job(job.id).await.expect("job").expect("job");
    assert_eq!(j.retry_job(job.id, t + secs(24)).await.expect("retry succeeded"), Some(done));
    assert_eq!(j.retry_job(uuid::Uuid::new_v4(), t).await.expect("retry unknown"), None);
}

/// Cancelling queued and running jobs; a running job's worker learns it at its next heartbeat.
pub async fn cancellation(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let queued = enqueued(j, new_job(Queue::CpuDefault, "book.convert", t)).await;
    let cancelled = j.cancel_job(queued.id, t + secs(1)).await.expect("cancel").expect("job");
    assert_eq!((cancelled.state, cancelled.finished_at), (JobState::Cancelled, Some(t + secs(1))));
    assert_eq!(j.claim_job(Queue::CpuDefault, "w", t + secs(2), t + secs(32)).await.expect("claim"), None);

    let running = enqueued(j, new_job(Queue::CpuDefault, "book.convert", t)).await;
    claimed(j, Queue::CpuDefault, "w", t + secs(2)).await;
    let cancelled = j.cancel_job(running.id, t + secs(3)).await.expect("cancel running").expect("job");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(!j.heartbeat_job(running.id, "w", t + secs(60), t + secs(4)).await.expect("heartbeat"));
    assert!(!j.complete_job(running.id, "w", t + secs(4)).await.expect("complete"));
    assert!(!j.fail_job(running.id, "w", "x", Some(t + secs(9)), t + secs(4)).await.expect("fail"));
    assert_eq!(state_of(j, running.id).await, JobState::Cancelled);
    // A finished job is returned unchanged.
    assert_eq!(j.cancel_job(running.id, t + secs(5)).await.expect("cancel again"), Some(cancelled));
    assert_eq!(j.cancel_job(uuid::Uuid::new_v4(), t).await.expect("cancel unknown"), None);
    // A cancelled job can be retried.
    let revived = j.retry_job(running.id, t + secs(6)).await.expect("retry").expect("job");
    assert_eq!((revived.state, revived.attempts), (JobState::Queued, 0));
    settle(j).await;
}

/// Queue figures: one row per queue, in `Queue::ALL` order, counting each state.
pub async fn stats(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let before = j.queue_stats(t).await.expect("stats");
    assert_eq!(before.iter().map(|s| s.queue).collect::<Vec<_>>(), Queue::ALL.map(Some).to_vec());

    for _ in 0..3 {
        enqueued(j, new_job(Queue::CpuDefault, "x", t - secs(1))).await;
    }
    enqueued(j, new_job(Queue::CpuDefault, "x", t + secs(600))).await;
    let run = claimed(j, Queue::CpuDefault, "w", t).await;
    let dead = enqueued(j, new_job(Queue::GpuLow, "x", t)).await;
    claimed(j, Queue::GpuLow, "w", t).await;
    assert!(j.fail_job(dead.id, "w", "bad", None, t).await.expect("fail"));
    let ok = enqueued(j, new_job(Queue::GpuLow, "x", t)).await;
    claimed(j, Queue::GpuLow, "w", t).await;
    assert!(j.complete_job(ok.id, "w", t).await.expect("complete"));
    let gone = enqueued(j, new_job(Queue::GpuHigh, "x", t)).await;
    j.cancel_job(gone.id, t).await.expect("cancel");

    let after = j.queue_stats(t).await.expect("stats");
    let diff = |q: usize| {
        let (a, b) = (&after[q], &before[q]);
        QueueStats {
            queue: a.queue,
            ready: a.ready - b.ready,
            scheduled: a.scheduled - b.scheduled,
            running: a.running - b.running,
            dead: a.dead - b.dead,
            succeeded: a.succeeded - b.succeeded,
            cancelled: a.cancelled - b.cancelled,
        }
    };
    let z = QueueStats::default();
    assert_eq!(diff(0), QueueStats { queue: Some(Queue::GpuHigh), cancelled: 1, ..z.clone() });
    assert_eq!(diff(1), QueueStats { queue: Some(Queue::GpuLow), dead: 1, succeeded: 1, ..z.clone() });
    assert_eq!(diff(2), QueueStats { queue: Some(Queue::CpuDefault), ready: 2, scheduled: 1, running: 1, ..z });

    let filter = JobFilter { queue: Some(Queue::CpuDefault), state: Some(JobState::Running), limit: 10, ..JobFilter::default() };
    let running = j.list_jobs(&filter).await.expect("list");
    assert_eq!(running.into_iter().map(|x| x.id).collect::<Vec<_>>(), vec![run.id]);
    let capped = j.list_jobs(&JobFilter { kind: Some("x".into()), limit: 2, ..JobFilter::default() }).await.expect("list");
    assert_eq!(capped.len(), 2, "limit");
    settle(j).await;
}

/// Purging removes old succeeded and cancelled jobs; dead ones and recent ones stay.
pub async fn purge(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let old = t - chrono::Duration::days(10);
    let mut ids = Vec::new();
    for end in ["complete", "cancel", "dead"] {
        let job = enqueued(j, new_job(Queue::CpuDefault, "purge", old)).await;
        match end {
            "cancel" => {
                j.cancel_job(job.id, old).await.expect("cancel");
            }
            _ => {
                claimed(j, Queue::CpuDefault, "w", old).await;
                if end == "complete" {
                    assert!(j.complete_job(job.id, "w", old).await.expect("complete"));
                } else {
                    assert!(j.fail_job(job.id, "w", "no", None, old).await.expect("fail"));
                }
            }
        }
        ids.push(job.id);
    }
    let recent = enqueued(j, new_job(Queue::CpuDefault, "purge", t)).await;
    claimed(j, Queue::CpuDefault, "w", t).await;
    assert!(j.complete_job(recent.id, "w", t).await.expect("complete"));

    assert_eq!(j.purge_finished_jobs(t - chrono::Duration::days(1)).await.expect("purge"), 2);
    assert_eq!(j.job(ids[0]).await.expect("job"), None);
    assert_eq!(j.job(ids[1]).await.expect("job"), None);
    assert_eq!(state_of(j, ids[2]).await, JobState::Dead);
    assert_eq!(state_of(j, recent.id).await, JobState::Succeeded);
}

/// `NewBook.jobs` are enqueued with a created book, in its transaction, and not for an existing one.
pub async fn book_jobs(s: &dyn Store, j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let ann = user(s, "jobs").await;
    let sha = fresh_hash();
    let mut new = new_book(&ann.id, &sha, t);
    let mut job = new_job(Queue::CpuDefault, "book.cover", t);
    job.book_id = Some(new.id.clone());
    job.user_id = Some(ann.id.clone());
    job.dedup_key = Some(format!("cover:{}", new.id));
    new.jobs = vec![job.clone(), new_job(Queue::GpuLow, "book.embed", t)];
    let (book, _) = created(s, new.clone()).await;
    let stored = j.job(job.id).await.expect("job").expect("the book's job exists");
    assert_eq!((stored.book_id.as_ref(), stored.state, stored.kind.as_str()), (Some(&book.id), JobState::Queued, "book.cover"));
    assert!(j.job(new.jobs[1].id).await.expect("job").is_some());

    // The same content again: the existing book comes back and no job is added.
    let mut again = new_book(&ann.id, &sha, t + secs(1));
    again.jobs = vec![new_job(Queue::CpuDefault, "book.cover", t)];
    assert!(matches!(s.insert_book(again.clone()).await.expect("insert again"), BookInsert::Existing(_)));
    assert_eq!(j.job(again.jobs[0].id).await.expect("job"), None);

    // A job that cannot be stored (its id is taken) takes the book down with it.
    let sha2 = fresh_hash();
    let mut doomed = new_book(&ann.id, &sha2, t);
    doomed.jobs = vec![new_job(Queue::CpuDefault, "book.cover", t), NewJob { id: job.id, ..new_job(Queue::CpuDefault, "dup", t) }];
    assert!(s.insert_book(doomed.clone()).await.is_err(), "a duplicate job id fails the insert");
    assert_not_found(s.book(&ann.id, &doomed.id, true).await, "book of a failed insert");
    assert_eq!(s.content(&sha2).await.expect("content"), None, "no content reference was kept");
    assert_eq!(j.job(doomed.jobs[0].id).await.expect("job"), None, "no job was kept");
    settle(j).await;
    books_to_index(s, j).await;
}

/// The books a search rebuild indexes: live ones of every user (or one user, or one book), by id,
/// in keyset pages.
pub async fn books_to_index(s: &dyn Store, j: &dyn JobStore) {
    let t = now();
    let ann = user(s, "reindex").await;
    let bob = user(s, "reindex2").await;
    let mut anns = Vec::new();
    for _ in 0..3 {
        anns.push(created(s, new_book(&ann.id, &fresh_hash(), t)).await.0.id);
    }
    let (bobs, _) = created(s, new_book(&bob.id, &fresh_hash(), t)).await;
    let (gone, _) = created(s, new_book(&ann.id, &fresh_hash(), t)).await;
    s.set_book_deleted(&ann.id, &gone.id, Some(t), t).await.expect("soft delete");
    anns.sort();

    let mine = j.books_to_index(Some(&ann.id), None, None, 100).await.expect("ann's books");
    assert_eq!(mine, anns.iter().map(|b| (b.clone(), ann.id.clone())).collect::<Vec<_>>(), "live books only, by id");
    // Keyset pages of one: the same books, none twice.
    let mut paged = Vec::new();
    let mut after: Option<BookId> = None;
    loop {
        let page = j.books_to_index(Some(&ann.id), None, after.as_ref(), 1).await.expect("page");
        assert!(page.len() <= 1, "a page holds at most `limit` books");
        let Some((last, _)) = page.last().cloned() else { break };
        paged.extend(page);
        after = Some(last);
    }
    assert_eq!(paged, mine);
    assert_eq!(j.books_to_index(Some(&ann.id), None, Some(&anns[2]), 100).await.expect("after the last"), vec![]);

    // One book, whoever owns it; a deleted one is not indexed.
    assert_eq!(j.books_to_index(None, Some(&bobs.id), None, 10).await.expect("bob's book"), vec![(bobs.id.clone(), bob.id.clone())]);
    assert_eq!(j.books_to_index(Some(&ann.id), Some(&bobs.id), None, 10).await.expect("not ann's"), vec![]);
    assert_eq!(j.books_to_index(None, Some(&gone.id), None, 10).await.expect("deleted book"), vec![]);

    // Every user's: ordered, and holding both users' live books (other scenarios' books too).
    let mut all = Vec::new();
    let mut after: Option<BookId> = None;
    loop {
        let page = j.books_to_index(None, None, after.as_ref(), 500).await.expect("all books");
        let Some((last, _)) = page.last().cloned() else { break };
        all.extend(page);
        after = Some(last);
    }
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ordered by id, no duplicates");
    for b in &anns {
        assert!(all.contains(&(b.clone(), ann.id.clone())), "ann's book {b} is listed");
    }
    assert!(all.contains(&(bobs.id.clone(), bob.id.clone())));
    assert!(!all.iter().any(|(b, _)| b == &gone.id), "the deleted book is not listed");
}

/// The worker's view of books: any owner's book, partial updates, the meta merge, versions left alone;
/// and the derived objects that a permanent delete frees.
pub async fn book_processing(s: &dyn Store, j: &dyn JobStore) {
    let t = now();
    let ann = user(s, "proc").await;
    let bob = user(s, "proc2").await;
    let sha = fresh_hash();
    let mut new = new_book(&ann.id, &sha, t);
    new.meta = serde_json::json!({"publisher": "Ticknor", "series": {"name": "Essays", "index": 1}, "keep": true});
    let (book, _) = created(s, new).await;
    assert_eq!(j.book_for_job(&book.id).await.expect("book for job"), book);
    assert_not_found(j.book_for_job(&BookId::new()).await, "unknown book");

    // Only the given columns change; meta keys are replaced at the top level or removed.
    let epub = ObjectKey::for_converted(&ann.id, &book.id);
    let mut merge = serde_json::Map::new();
    merge.insert("series".into(), serde_json::json!({"name": "Walden"}));
    merge.insert("publisher".into(), serde_json::Value::Null);
    merge.insert("isbn".into(), serde_json::json!("978-0"));
    let update = BookProcessing {
        conversion_status: Some("completed".into()),
        converted_epub_key: Some(epub.clone()),
        page_count: Some(99),
        meta_merge: Some(merge),
        ..BookProcessing::default()
    };
    let t1 = t + secs(5);
    let updated = j.update_book_processing(&book.id, update, t1).await.expect("update");
    // The worker's writes leave `version` (the If-Match token of users' edits) alone.
    assert_eq!((updated.version, updated.updated_at), (book.version, t1));
    assert_eq!(
        (updated.conversion_status.as_deref(), updated.converted_epub_key.as_ref(), updated.page_count),
        (Some("completed"), Some(&epub), Some(99))
    );
    assert_eq!(updated.meta, serde_json::json!({"series": {"name": "Walden"}, "keep": true, "isbn": "978-0"}));
    let untouched = crate::Book {
        conversion_status: book.conversion_status.clone(),
        converted_epub_key: None,
        page_count: book.page_count,
        meta: book.meta.clone(),
        version: book.version,
        updated_at: book.updated_at,
        ..updated.clone()
    };
    assert_eq!(untouched, book, "no other column changed");
    assert_eq!(s.book(&ann.id, &book.id, false).await.expect("book"), updated);

    // Every column it can set, on a soft-deleted book (it is still the worker's to finish).
    s.set_book_deleted(&ann.id, &book.id, Some(t1), t1).await.expect("soft delete");
    let layered = ObjectKey::for_layered(&ann.id, &book.id);
    let cover = ObjectKey::for_cover(&book.id, "jpg");
    let all = BookProcessing {
        title: Some("Walden; or, Life in the Woods".into()),
        author: Some("Henry David Thoreau".into()),
        language: Some("en-US".into()),
        cover_key: Some(cover.clone()),
        page_count: Some(352),
        is_digitalized: Some(false),
        conversion_status: None,
        converted_epub_key: None,
        ocr_status: Some("completed".into()),
        ocr_result_key: Some(layered.clone()),
        meta_merge: None,
    };
    let t2 = t + secs(6);
    let full = j.update_book_processing(&book.id, all, t2).await.expect("update all");
    assert_eq!(
        (full.title.as_str(), full.author.as_deref(), full.language.as_deref()),
        ("Walden; or, Life in the Woods", Some("Henry David Thoreau"), Some("en-US"))
    );
    assert_eq!((full.cover_image_key.as_ref(), full.page_count, full.is_digitalized), (Some(&cover), Some(352), Some(false)));
    assert_eq!((full.ocr_status.as_deref(), full.ocr_result_key.as_ref()), (Some("completed"), Some(&layered)));
    assert_eq!((full.converted_epub_key.as_ref(), &full.meta, full.version), (Some(&epub), &updated.meta, updated.version + 1));
    assert!(full.deleted_at.is_some());
    assert_eq!(j.book_for_job(&book.id).await.expect("deleted book for job"), full);
    assert_not_found(j.update_book_processing(&BookId::new(), BookProcessing::default(), t2).await, "unknown book");

    // Bob holds the same content with his own OCR'd PDF; the content's OCR output is shared.
    let (bob_book, _) = created(s, new_book(&bob.id, &sha, t)).await;
    let bob_layered = ObjectKey::for_layered(&bob.id, &bob_book.id);
    let update = BookProcessing { ocr_result_key: Some(bob_layered.clone()), ..BookProcessing::default() };
    j.update_book_processing(&bob_book.id, update, t2).await.expect("bob update");
    let shared = ObjectKey::for_ocr_content(&sha);
    let ocr = OcrResult { content_sha256: sha.clone(), engine: "paddle".into(), page_count: 2, layered_key: shared.clone(), created_at: t };
    j.put_ocr_result(ocr).await.expect("ocr result");
    j.put_ocr_page(OcrPage { content_sha256: sha.clone(), page: 1, text: "x".into(), lines: serde_json::json!([]) }).await.expect("page");

    let mut freed = s.delete_book_permanently(&ann.id, &book.id).await.expect("delete ann's");
    freed.sort();
    let mut expected = vec![epub, layered, cover];
    expected.sort();
    assert_eq!(freed, expected, "ann's derived objects go; the content and its OCR stay for bob");
    assert!(j.ocr_result(&sha).await.expect("ocr").is_some());

    let mut freed = s.delete_book_permanently(&bob.id, &bob_book.id).await.expect("delete bob's");
    freed.sort();
    let mut expected = vec![bob_book.minio_key.clone(), bob_layered, shared];
    expected.sort();
    assert_eq!(freed, expected, "the last holder frees the content and its OCR output");
    assert_eq!(j.ocr_result(&sha).await.expect("ocr"), None);
    assert_eq!(j.ocr_page(&sha, 1).await.expect("page"), None);
}

/// OCR results, pages (search is a literal substring), and charges.
pub async fn ocr(s: &dyn Store, j: &dyn JobStore) {
    let t = now();
    let sha = fresh_hash();
    assert_eq!(j.ocr_result(&sha).await.expect("none yet"), None);
    let first = OcrResult {
        content_sha256: sha.clone(),
        engine: "tesseract".into(),
        page_count: 3,
        layered_key: ObjectKey::for_ocr_content(&sha),
        created_at: t,
    };
    j.put_ocr_result(first.clone()).await.expect("put");
    assert_eq!(j.ocr_result(&sha).await.expect("get"), Some(first.clone()));
    let second = OcrResult { engine: "paddle".into(), page_count: 4, created_at: t + secs(1), ..first };
    j.put_ocr_result(second.clone()).await.expect("replace");
    assert_eq!(j.ocr_result(&sha).await.expect("get"), Some(second));

    let texts = ["Hello World, 100% sure", "file_name and 100 percent", "filexname HELLO", "nothing here", "50%_off"];
    for (i, text) in texts.iter().enumerate() {
        let lines = serde_json::json!([{"text": text, "box": [0, 0, 10, 10], "score": 0.9}]);
        j.put_ocr_page(OcrPage { content_sha256: sha.clone(), page: i as i64 + 1, text: (*text).to_string(), lines }).await.expect("page");
    }
    let page2 = j.ocr_page(&sha, 2).await.expect("page").expect("page 2");
    assert_eq!((page2.page, page2.text.as_str()), (2, "file_name and 100 percent"));
    assert_eq!(page2.lines[0]["score"], serde_json::json!(0.9));
    assert_eq!(j.ocr_page(&sha, 9).await.expect("missing page"), None);
    assert_eq!(j.ocr_page(&fresh_hash(), 1).await.expect("other content"), None);

    let pages = |needle: &'static str, limit: u32| {
        let sha = sha.clone();
        async move { j.search_ocr_pages(&sha, needle, limit).await.expect("search").into_iter().map(|p| p.page).collect::<Vec<_>>() }
    };
    assert_eq!(pages("hello", 10).await, vec![1, 3], "case-insensitive, in page order");
    assert_eq!(pages("100%", 10).await, vec![1], "`%` is literal");
    assert_eq!(pages("file_name", 10).await, vec![2], "`_` is literal");
    assert_eq!(pages("%", 10).await, vec![1, 5]);
    assert_eq!(pages("%_", 10).await, vec![5]);
    assert_eq!(pages("hello", 1).await, vec![1], "limit");
    assert!(j.search_ocr_pages(&fresh_hash(), "hello", 10).await.expect("search").is_empty(), "other content");

    // Pages are replaced by a later run.
    j.put_ocr_page(OcrPage { content_sha256: sha.clone(), page: 4, text: "now hello".into(), lines: serde_json::json!([]) })
        .await
        .expect("replace");
    assert_eq!(pages("hello", 10).await, vec![1, 3, 4]);
    assert_eq!(j.ocr_page(&sha, 4).await.expect("page").expect("page").lines, serde_json::json!([]));

    let ann = user(s, "ocr").await;
    let bob = user(s, "ocr2").await;
    let book = BookId::new();
    for (units, at) in [(5, t - chrono::Duration::days(2)), (7, t - secs(3600)), (11, t)] {
        j.record_ocr_charge(OcrCharge { user_id: ann.id.clone(), book_id: book.clone(), units, at }).await.expect("charge");
    }
    j.record_ocr_charge(OcrCharge { user_id: bob.id.clone(), book_id: book, units: 100, at: t }).await.expect("charge");
    assert_eq!(j.ocr_units_used(&ann.id, t - chrono::Duration::days(1)).await.expect("used"), 18);
    assert_eq!(j.ocr_units_used(&ann.id, t - chrono::Duration::days(3)).await.expect("used"), 23);
    assert_eq!(j.ocr_units_used(&ann.id, t).await.expect("used"), 11, "`since` is inclusive");
    assert_eq!(j.ocr_units_used(&bob.id, t + secs(1)).await.expect("used"), 0);
}

/// Retrying a dead job whose dedup key another unfinished job took meanwhile is a conflict.
pub async fn retry_with_taken_key(j: &dyn JobStore) {
    settle(j).await;
    let t = now();
    let key = format!("convert:{}", uuid::Uuid::new_v4());
    let mut new = new_job(Queue::CpuDefault, "book.convert", t);
    new.dedup_key = Some(key.clone());
    let dead = enqueued(j, new.clone()).await;
    claimed(j, Queue::CpuDefault, "w", t).await;
    assert!(j.fail_job(dead.id, "w", "bad", None, t).await.expect("fail"));
    let live = enqueued(j, NewJob { id: uuid::Uuid::new_v4(), ..new }).await;
    match j.retry_job(dead.id, t).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(state_of(j, dead.id).await, JobState::Dead);
    assert_eq!(state_of(j, live.id).await, JobState::Queued);
    settle(j).await;
}
