//! The job queue, the worker's writes onto books, and OCR results.
//!
//! SQLite serialises writers, so a claim is one `UPDATE … WHERE seq = (SELECT …) RETURNING *`
//! inside a `BEGIN IMMEDIATE` transaction: the write lock is held from before the candidate is
//! chosen until it is marked running, and two claimers can never pick the same row.

use athena_domain::{BookId, ContentHash, UserId};
use athena_store::jobs::{BookProcessing, Job, JobFilter, NewJob, OcrCharge, OcrPage, OcrResult, Queue, QueueStats};
use athena_store::{Book, StoreError, StoreResult};
use chrono::{DateTime, Utc};

use crate::db::{begin_write, db, get, parsed, ts, DbPool, Tx};
use crate::rows;

/// How many characters of an error message are kept.
const MAX_ERROR_CHARS: usize = 4000;
const MAX_LIST: u32 = 1000;

pub(crate) async fn enqueue_job(pool: &DbPool, job: NewJob) -> StoreResult<(Job, bool)> {
    let mut tx = begin_write(pool).await?;
    let result = enqueue_in(&mut tx, &job).await?;
    tx.commit().await.map_err(db)?;
    Ok(result)
}

/// Inserts the job unless an unfinished job holds its dedup key, in which case that job is
/// returned. Used on its own and inside `insert_book`'s transaction.
pub(crate) async fn enqueue_in(tx: &mut Tx, job: &NewJob) -> StoreResult<(Job, bool)> {
    let payload = serde_json::to_string(&job.payload).map_err(StoreError::internal)?;
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, queue, kind, payload, dedup_key, state, attempts, max_attempts, priority, run_at,
             user_id, book_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $9, $10, $11, $11)
         ON CONFLICT (dedup_key) WHERE state IN ('queued', 'running') DO NOTHING
         RETURNING *",
    )
    .bind(job.id.to_string())
    .bind(job.queue.as_str())
    .bind(&job.kind)
    .bind(payload)
    .bind(&job.dedup_key)
    .bind(job.max_attempts)
    .bind(job.priority)
    .bind(ts(job.run_at))
    .bind(job.user_id.as_ref().map(UserId::as_str))
    .bind(job.book_id.as_ref().map(BookId::as_str))
    .bind(ts(job.now))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    if let Some(row) = inserted {
        return Ok((rows::job(&row)?, true));
    }
    // Only the dedup index is a conflict target, so the key is set and an unfinished job holds it;
    // the transaction holds the write lock, so that job cannot finish before it is read.
    let row = sqlx::query("SELECT * FROM jobs WHERE dedup_key = $1 AND state IN ('queued', 'running')")
        .bind(&job.dedup_key)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    Ok((rows::job(&row)?, false))
}

pub(crate) async fn claim_job(
    pool: &DbPool,
    queue: Queue,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Option<Job>> {
    let mut tx = begin_write(pool).await?;
    // The best due queued job and the best expired running job, each found through the claim
    // index in order, then the better of the two.
    let row = sqlx::query(
        "UPDATE jobs SET state = 'running', lease_owner = $3, lease_expires_at = $4, attempts = attempts + 1,
             started_at = $2, updated_at = $2
         WHERE seq = (
             SELECT seq FROM (
                 SELECT * FROM (SELECT seq, priority, run_at FROM jobs
                     WHERE queue = $1 AND state = 'queued' AND run_at <= $2
                     ORDER BY priority, run_at, seq LIMIT 1)
                 UNION ALL
                 SELECT * FROM (SELECT seq, priority, run_at FROM jobs
                     WHERE queue = $1 AND state = 'running' AND lease_expires_at < $2
                     ORDER BY priority, run_at, seq LIMIT 1)
             ) ORDER BY priority, run_at, seq LIMIT 1)
         RETURNING *",
    )
    .bind(queue.as_str())
    .bind(ts(now))
    .bind(owner)
    .bind(ts(lease_until))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    row.as_ref().map(rows::job).transpose()
}

pub(crate) async fn heartbeat_job(
    pool: &DbPool,
    id: uuid::Uuid,
    owner: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE jobs SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 AND state = 'running' AND lease_owner = $4")
            .bind(ts(lease_until))
            .bind(ts(now))
            .bind(id.to_string())
            .bind(owner)
            .execute(pool)
            .await
            .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn complete_job(pool: &DbPool, id: uuid::Uuid, owner: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'succeeded', lease_expires_at = NULL, finished_at = $1, updated_at = $1
         WHERE id = $2 AND state = 'running' AND lease_owner = $3",
    )
    .bind(ts(now))
    .bind(id.to_string())
    .bind(owner)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn fail_job(
    pool: &DbPool,
    id: uuid::Uuid,
    owner: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let error = clip(error);
    // A retry keeps the job unfinished (it still holds its dedup key); without one it is dead.
    let done = sqlx::query(
        "UPDATE jobs SET
             state = CASE WHEN $1 IS NULL THEN 'dead' ELSE 'queued' END,
             run_at = COALESCE($1, run_at),
             lease_owner = CASE WHEN $1 IS NULL THEN lease_owner ELSE NULL END,
             lease_expires_at = NULL,
             finished_at = CASE WHEN $1 IS NULL THEN $2 ELSE NULL END,
             last_error = $3, updated_at = $2
         WHERE id = $4 AND state = 'running' AND lease_owner = $5",
    )
    .bind(retry_at.map(ts))
    .bind(ts(now))
    .bind(error)
    .bind(id.to_string())
    .bind(owner)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn job(pool: &DbPool, id: uuid::Uuid) -> StoreResult<Option<Job>> {
    let row = sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id.to_string()).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::job).transpose()
}

pub(crate) async fn list_jobs(pool: &DbPool, filter: &JobFilter) -> StoreResult<Vec<Job>> {
    let found = sqlx::query(
        "SELECT * FROM jobs
         WHERE ($1 IS NULL OR queue = $1) AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR kind = $3)
           AND ($4 IS NULL OR book_id = $4)
         ORDER BY created_at DESC, seq DESC LIMIT $5",
    )
    .bind(filter.queue.map(Queue::as_str))
    .bind(filter.state.map(|s| s.as_str()))
    .bind(&filter.kind)
    .bind(filter.book_id.as_ref().map(BookId::as_str))
    .bind(i64::from(filter.limit.min(MAX_LIST)))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    found.iter().map(rows::job).collect()
}

pub(crate) async fn retry_job(pool: &DbPool, id: uuid::Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
    let row = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, lease_owner = NULL, lease_expires_at = NULL,
             finished_at = NULL, updated_at = $1
         WHERE id = $2 AND state IN ('dead', 'cancelled')
         RETURNING *",
    )
    .bind(ts(now))
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    match row {
        Some(row) => Ok(Some(rows::job(&row)?)),
        None => job(pool, id).await,
    }
}

pub(crate) async fn cancel_job(pool: &DbPool, id: uuid::Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
    let row = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, finished_at = $1, updated_at = $1
         WHERE id = $2 AND state IN ('queued', 'running')
         RETURNING *",
    )
    .bind(ts(now))
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    match row {
        Some(row) => Ok(Some(rows::job(&row)?)),
        None => job(pool, id).await,
    }
}

pub(crate) async fn queue_stats(pool: &DbPool, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>> {
    let found = sqlx::query(
        "SELECT queue,
             SUM(state = 'queued' AND run_at <= $1) AS ready,
             SUM(state = 'queued' AND run_at > $1) AS scheduled,
             SUM(state = 'running') AS running,
             SUM(state = 'dead') AS dead,
             SUM(state = 'succeeded') AS succeeded,
             SUM(state = 'cancelled') AS cancelled
         FROM jobs GROUP BY queue",
    )
    .bind(ts(now))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut stats: Vec<QueueStats> = Queue::ALL.iter().map(|q| QueueStats { queue: Some(*q), ..QueueStats::default() }).collect();
    for row in &found {
        let queue: String = get(row, "queue")?;
        let Some(s) = stats.iter_mut().find(|s| s.queue.is_some_and(|q| q.as_str() == queue)) else {
            continue;
        };
        s.ready = get(row, "ready")?;
        s.scheduled = get(row, "scheduled")?;
        s.running = get(row, "running")?;
        s.dead = get(row, "dead")?;
        s.succeeded = get(row, "succeeded")?;
        s.cancelled = get(row, "cancelled")?;
    }
    Ok(stats)
}

pub(crate) async fn queue_position(pool: &DbPool, id: uuid::Uuid) -> StoreResult<Option<i64>> {
    // Queued jobs that sort before this one in claim order.
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM jobs o
                 WHERE o.queue = j.queue AND o.state = 'queued' AND (o.priority, o.run_at, o.seq) < (j.priority, j.run_at, j.seq)
                ) AS ahead
         FROM jobs j WHERE j.id = $1 AND j.state = 'queued'",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(|r| get(r, "ahead")).transpose()
}

pub(crate) async fn purge_finished_jobs(pool: &DbPool, before: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM jobs WHERE state IN ('succeeded', 'cancelled') AND finished_at < $1")
        .bind(ts(before))
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(done.rows_affected())
}

pub(crate) async fn book_for_job(pool: &DbPool, id: &BookId) -> StoreResult<Book> {
    let row = sqlx::query("SELECT * FROM books WHERE id = $1").bind(id.as_str()).fetch_one(pool).await.map_err(db)?;
    rows::book(&row)
}

pub(crate) async fn books_to_index(
    pool: &DbPool,
    user: Option<&UserId>,
    book: Option<&BookId>,
    after: Option<&BookId>,
    limit: u32,
) -> StoreResult<Vec<(BookId, UserId)>> {
    let found = sqlx::query(
        "SELECT id, user_id FROM books
         WHERE deleted_at IS NULL AND ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR id = $2)
           AND ($3 IS NULL OR id > $3)
         ORDER BY id LIMIT $4",
    )
    .bind(user.map(UserId::as_str))
    .bind(book.map(BookId::as_str))
    .bind(after.map(BookId::as_str))
    .bind(i64::from(limit.min(MAX_LIST)))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    found.iter().map(|row| Ok((parsed(row, "id")?, parsed(row, "user_id")?))).collect()
}

pub(crate) async fn update_book_processing(pool: &DbPool, id: &BookId, update: BookProcessing, now: DateTime<Utc>) -> StoreResult<Book> {
    let mut tx = begin_write(pool).await?;
    // The meta merge is read-modify-write in Rust: SQLite's json_patch merges nested objects
    // recursively, while the contract (and PostgreSQL's `||`) replaces top-level keys. The write
    // lock taken by BEGIN IMMEDIATE keeps the read and the write together.
    let meta = match &update.meta_merge {
        None => None,
        Some(merge) => {
            let current: String =
                sqlx::query_scalar("SELECT meta FROM books WHERE id = $1").bind(id.as_str()).fetch_one(&mut *tx).await.map_err(db)?;
            let mut meta = match serde_json::from_str(&current) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            for (key, value) in merge {
                if value.is_null() {
                    meta.remove(key);
                } else {
                    meta.insert(key.clone(), value.clone());
                }
            }
            Some(serde_json::to_string(&meta).map_err(StoreError::internal)?)
        }
    };
    let row = sqlx::query(
        "UPDATE books SET
             title = COALESCE($1, title),
             author = COALESCE($2, author),
             language = COALESCE($3, language),
             cover_image_key = COALESCE($4, cover_image_key),
             page_count = COALESCE($5, page_count),
             is_digitalized = COALESCE($6, is_digitalized),
             conversion_status = COALESCE($7, conversion_status),
             converted_epub_key = COALESCE($8, converted_epub_key),
             ocr_status = COALESCE($9, ocr_status),
             ocr_result_key = COALESCE($10, ocr_result_key),
             meta = COALESCE($11, meta),
             updated_at = $12
         WHERE id = $13
         RETURNING *",
    )
    .bind(update.title)
    .bind(update.author)
    .bind(update.language)
    .bind(update.cover_key.map(String::from))
    .bind(update.page_count)
    .bind(update.is_digitalized)
    .bind(update.conversion_status)
    .bind(update.converted_epub_key.map(String::from))
    .bind(update.ocr_status)
    .bind(update.ocr_result_key.map(String::from))
    .bind(meta)
    .bind(ts(now))
    .bind(id.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let book = rows::book(&row)?;
    tx.commit().await.map_err(db)?;
    Ok(book)
}

pub(crate) async fn ocr_result(pool: &DbPool, sha: &ContentHash) -> StoreResult<Option<OcrResult>> {
    let row =
        sqlx::query("SELECT * FROM ocr_results WHERE content_sha256 = $1").bind(sha.as_str()).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::ocr_result).transpose()
}

pub(crate) async fn put_ocr_page(pool: &DbPool, page: OcrPage) -> StoreResult<()> {
    let lines = serde_json::to_string(&page.lines).map_err(StoreError::internal)?;
    sqlx::query(
        "INSERT INTO ocr_pages (content_sha256, page, text, lines) VALUES ($1, $2, $3, $4)
         ON CONFLICT (content_sha256, page) DO UPDATE SET text = excluded.text, lines = excluded.lines",
    )
    .bind(page.content_sha256.as_str())
    .bind(page.page)
    .bind(&page.text)
    .bind(lines)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn ocr_page(pool: &DbPool, sha: &ContentHash, page: i64) -> StoreResult<Option<OcrPage>> {
    let row = sqlx::query("SELECT * FROM ocr_pages WHERE content_sha256 = $1 AND page = $2")
        .bind(sha.as_str())
        .bind(page)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::ocr_page).transpose()
}

pub(crate) async fn search_ocr_pages(pool: &DbPool, sha: &ContentHash, needle: &str, limit: u32) -> StoreResult<Vec<OcrPage>> {
    // instr() matches the needle literally (LIKE would treat `%` and `_` as wildcards); SQLite's
    // lower() folds ASCII only, which is what the contract promises.
    let found =
        sqlx::query("SELECT * FROM ocr_pages WHERE content_sha256 = $1 AND instr(lower(text), lower($2)) > 0 ORDER BY page LIMIT $3")
            .bind(sha.as_str())
            .bind(needle)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db)?;
    found.iter().map(rows::ocr_page).collect()
}

pub(crate) async fn put_ocr_result(pool: &DbPool, result: OcrResult) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ocr_results (content_sha256, engine, page_count, layered_key, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (content_sha256) DO UPDATE SET engine = excluded.engine, page_count = excluded.page_count,
             layered_key = excluded.layered_key, created_at = excluded.created_at",
    )
    .bind(result.content_sha256.as_str())
    .bind(&result.engine)
    .bind(result.page_count)
    .bind(result.layered_key.as_str())
    .bind(ts(result.created_at))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn record_ocr_charge(pool: &DbPool, charge: OcrCharge) -> StoreResult<()> {
    sqlx::query("INSERT INTO ocr_charges (user_id, book_id, units, at) VALUES ($1, $2, $3, $4)")
        .bind(charge.user_id.as_str())
        .bind(charge.book_id.as_str())
        .bind(charge.units)
        .bind(ts(charge.at))
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn ocr_units_used(pool: &DbPool, user: &UserId, since: DateTime<Utc>) -> StoreResult<i64> {
    let used: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(units), 0) FROM ocr_charges WHERE user_id = $1 AND at >= $2")
        .bind(user.as_str())
        .bind(ts(since))
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(used)
}

fn clip(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => &error[..end],
        None => error,
    }
}
