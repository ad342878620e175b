//! Storage for background work: the durable job queue, what the worker writes back onto books,
//! and OCR results. Separate from [`crate::Store`] because only the worker (and the operator's
//! `athena jobs` commands) use most of it; both backends implement it next to their `Store`.
//!
//! The queue's guarantees live here, so both backends give the same ones:
//! - a job is claimed by at most one worker at a time (a lease with an expiry); a lease that
//!   expires (killed worker) makes the job claimable again;
//! - every state change made by a worker names its lease owner and is refused when the owner no
//!   longer holds the job (it was cancelled, or its lease expired and another worker took it);
//! - `dedup_key` makes enqueueing idempotent: while an unfinished (queued or running) job has the
//!   key, enqueueing the same key returns that job instead of adding one.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use athena_domain::{BookId, ContentHash, ObjectKey, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Book, StoreResult};

/// The seed's three Celery queues, kept so operators' habits and dashboards carry over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// OCR (the seed's single-GPU queue).
    GpuHigh,
    /// Embeddings.
    GpuLow,
    /// Everything else: conversion, covers and metadata, text extraction, imports.
    CpuDefault,
}

impl Queue {
    pub const ALL: [Queue; 3] = [Queue::GpuHigh, Queue::GpuLow, Queue::CpuDefault];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GpuHigh => "gpu_high",
            Self::GpuLow => "gpu_low",
            Self::CpuDefault => "cpu_default",
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Queue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|q| q.as_str() == s).ok_or_else(|| format!("unknown queue {s:?} (gpu_high, gpu_low, cpu_default)"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at` (a first run, or a retry after backoff).
    Queued,
    /// Claimed by `lease_owner` until `lease_expires_at`.
    Running,
    Succeeded,
    /// Out of attempts, or failed permanently; `last_error` says why. `retry_job` requeues it.
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Dead, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|q| q.as_str() == s).ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub id: uuid::Uuid,
    pub queue: Queue,
    /// What to run, e.g. `book.convert`; the worker maps kinds to handlers.
    pub kind: String,
    /// The task's arguments (a JSON object).
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
    pub max_attempts: i32,
    /// Lower runs first within a queue; ties by `run_at`, then creation order.
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub user_id: Option<UserId>,
    pub book_id: Option<BookId>,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: uuid::Uuid,
    pub queue: Queue,
    pub kind: String,
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
    pub state: JobState,
    /// Claims so far (a claim after a lease expired counts too).
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub user_id: Option<UserId>,
    pub book_id: Option<BookId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub queue: Option<Queue>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub book_id: Option<BookId>,
    /// Newest first; at most this many (the store caps it at 1,000).
    pub limit: u32,
}

/// One queue's figures, for metrics and `athena jobs list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: Option<Queue>,
    /// Queued and due now (what the seed's `redis-cli llen` showed).
    pub ready: i64,
    /// Queued for later (retry backoff).
    pub scheduled: i64,
    pub running: i64,
    pub dead: i64,
    pub succeeded: i64,
    pub cancelled: i64,
}

/// What the worker writes back onto a book; `None` leaves a column as it is. Every applied update
/// sets `updated_at` (the change reaches clients through sync) but not `version`: that is the
/// If-Match token of users' own edits, which background processing must not invalidate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BookProcessing {
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
    pub cover_key: Option<ObjectKey>,
    pub page_count: Option<i64>,
    pub is_digitalized: Option<bool>,
    /// `pending | processing | completed | failed`.
    pub conversion_status: Option<String>,
    pub converted_epub_key: Option<ObjectKey>,
    pub ocr_status: Option<String>,
    pub ocr_result_key: Option<ObjectKey>,
    /// Keys merged into the book's `meta` object (a key with value null is removed).
    pub meta_merge: Option<serde_json::Map<String, serde_json::Value>>,
}

/// OCR output is keyed by content: the same bytes uploaded by anyone reuse it.
#[derive(Clone, Debug, PartialEq)]
pub struct OcrResult {
    pub content_sha256: ContentHash,
    pub engine: String,
    pub page_count: i64,
    /// The layered PDF (page images + invisible text).
    pub layered_key: ObjectKey,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OcrPage {
    pub content_sha256: ContentHash,
    /// 1-based.
    pub page: i64,
    pub text: String,
    /// Lines with their boxes and scores, as the engine gave them (JSON array).
    pub lines: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OcrCharge {
    pub user_id: UserId,
    pub book_id: BookId,
    pub units: i64,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    // ---- the queue ----
    /// Adds a job, unless an unfinished job has the same `dedup_key`: then that job is returned
    /// and nothing is added. The bool says whether a job was created.
    async fn enqueue_job(&self, job: NewJob) -> StoreResult<(Job, bool)>;
    /// Atomically takes the next due job of `queue` (queued with `run_at <= now`, or running with a
    /// lease that expired before `now`), ordered by priority, run_at, creation: it becomes running
    /// under `owner` until `lease_until`, `attempts` + 1, `started_at` = now. Two workers never get
    /// the same job.
    async fn claim_job(&self, queue: Queue, owner: &str, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Job>>;
    /// Extends the lease; false when `owner` no longer holds the job (cancelled, or taken over).
    async fn heartbeat_job(&self, id: uuid::Uuid, owner: &str, lease_until: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Marks the job succeeded; false when `owner` no longer holds it (the result is then ignored).
    async fn complete_job(&self, id: uuid::Uuid, owner: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Records a failed attempt: with `retry_at` the job is queued again for then, without it the
    /// job is dead. `error` is kept as `last_error` (clipped to 4,000 characters). False when
    /// `owner` no longer holds it.
    async fn fail_job(
        &self,
        id: uuid::Uuid,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn job(&self, id: uuid::Uuid) -> StoreResult<Option<Job>>;
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;
    /// A dead or cancelled job is queued again now with its attempts reset; None if there is no
    /// such job. A queued, running or succeeded job is returned unchanged.
    async fn retry_job(&self, id: uuid::Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>>;
    /// A queued or running job becomes cancelled (a running one's worker learns it at its next
    /// heartbeat); a finished job is returned unchanged; None if there is no such job.
    async fn cancel_job(&self, id: uuid::Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>>;
    /// One row per queue (all three, zeros included).
    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>>;
    /// How many queued jobs of the same queue run before this one (0 = next); None unless queued.
    async fn queue_position(&self, id: uuid::Uuid) -> StoreResult<Option<i64>>;
    /// Deletes succeeded and cancelled jobs finished before `before` (dead jobs stay for operators).
    async fn purge_finished_jobs(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // ---- books, as the worker sees them (not user-scoped: jobs name their book) ----
    /// The book whatever its owner, deleted or not.
    async fn book_for_job(&self, id: &BookId) -> StoreResult<Book>;
    /// Applies `update` (see [`BookProcessing`]) and returns the book; NotFound if it is gone.
    async fn update_book_processing(&self, id: &BookId, update: BookProcessing, now: DateTime<Utc>) -> StoreResult<Book>;
    /// Live (not deleted) books with their owners, for rebuilding the search index: all users'
    /// unless `user` is given, only `book` when it is given (nothing if that book is deleted).
    /// Ordered by book id; `after` continues after the last id of the previous page (keyset), at
    /// most `limit` (capped at 1,000) per page.
    async fn books_to_index(
        &self,
        user: Option<&UserId>,
        book: Option<&BookId>,
        after: Option<&BookId>,
        limit: u32,
    ) -> StoreResult<Vec<(BookId, UserId)>>;

    // ---- OCR ----
    async fn ocr_result(&self, sha: &ContentHash) -> StoreResult<Option<OcrResult>>;
    /// Stores one page's text (replacing an earlier run's page).
    async fn put_ocr_page(&self, page: OcrPage) -> StoreResult<()>;
    async fn ocr_page(&self, sha: &ContentHash, page: i64) -> StoreResult<Option<OcrPage>>;
    /// Pages whose text contains `needle` (plain substring, case-insensitive for ASCII), in page
    /// order, at most `limit`.
    async fn search_ocr_pages(&self, sha: &ContentHash, needle: &str, limit: u32) -> StoreResult<Vec<OcrPage>>;
    /// Records the finished OCR of a content (replacing an earlier one).
    async fn put_ocr_result(&self, result: OcrResult) -> StoreResult<()>;
    async fn record_ocr_charge(&self, charge: OcrCharge) -> StoreResult<()>;
    /// Units charged to the user at or after `since`.
    async fn ocr_units_used(&self, user: &UserId, since: DateTime<Utc>) -> StoreResult<i64>;
}
