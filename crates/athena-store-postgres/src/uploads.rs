//! Two-step uploads, dedup challenges and idempotency keys: short-lived request bookkeeping.

use athena_domain::{ContentHash, ObjectKey, UserId};
use athena_store::{DedupChallenge, IdempotentResponse, PendingUpload, StoreError, StoreResult};
use chrono::{DateTime, Utc};

use crate::db::{db, DbPool};
use crate::rows;

pub(crate) async fn create_pending_upload(pool: &DbPool, u: PendingUpload) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO pending_uploads (key, user_id, filename, content_type, declared_size, declared_sha256, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(u.key.as_str())
    .bind(u.user_id.as_str())
    .bind(&u.filename)
    .bind(&u.content_type)
    .bind(u.declared_size)
    .bind(u.declared_sha256.as_ref().map(ContentHash::as_str))
    .bind(u.expires_at)
    .bind(u.created_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn pending_upload(pool: &DbPool, user: &UserId, key: &ObjectKey) -> StoreResult<PendingUpload> {
    let row = sqlx::query("SELECT * FROM pending_uploads WHERE key = $1 AND user_id = $2")
        .bind(key.as_str())
        .bind(user.as_str())
        .fetch_one(pool)
        .await
        .map_err(db)?;
    rows::pending_upload(&row)
}

pub(crate) async fn delete_pending_upload(pool: &DbPool, key: &ObjectKey) -> StoreResult<()> {
    sqlx::query("DELETE FROM pending_uploads WHERE key = $1").bind(key.as_str()).execute(pool).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn pending_uploads_expired(pool: &DbPool, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<PendingUpload>> {
    let found = sqlx::query("SELECT * FROM pending_uploads WHERE expires_at < $1 ORDER BY expires_at, key LIMIT $2")
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    found.iter().map(rows::pending_upload).collect()
}

pub(crate) async fn create_dedup_challenge(pool: &DbPool, c: DedupChallenge) -> StoreResult<()> {
    let ranges = serde_json::to_string(&c.ranges).map_err(StoreError::internal)?;
    sqlx::query(
        "INSERT INTO dedup_challenges (id, user_id, sha256, ranges, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.id)
    .bind(c.user_id.as_str())
    .bind(c.sha256.as_str())
    .bind(ranges)
    .bind(c.expires_at)
    .bind(c.created_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn take_dedup_challenge(
    pool: &DbPool,
    user: &UserId,
    sha: &ContentHash,
    now: DateTime<Utc>,
) -> StoreResult<Option<DedupChallenge>> {
    // One DELETE … RETURNING: of two concurrent takers only one gets the row (single use).
    let row = sqlx::query(
        "DELETE FROM dedup_challenges WHERE id = (
             SELECT id FROM dedup_challenges
             WHERE user_id = $1 AND sha256 = $2 AND expires_at > $3
             ORDER BY created_at DESC, id DESC LIMIT 1)
         RETURNING *",
    )
    .bind(user.as_str())
    .bind(sha.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(rows::dedup_challenge).transpose()
}

pub(crate) async fn idempotent_response(
    pool: &DbPool,
    user: &UserId,
    key: &str,
    since: DateTime<Utc>,
) -> StoreResult<Option<IdempotentResponse>> {
    let row = sqlx::query("SELECT * FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at >= $3")
        .bind(user.as_str())
        .bind(key)
        .bind(since)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::idempotent_response).transpose()
}

pub(crate) async fn put_idempotent_response(pool: &DbPool, r: IdempotentResponse) -> StoreResult<()> {
    // First response wins: a racing or repeated put leaves the stored one untouched.
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request, status, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(r.user_id.as_str())
    .bind(&r.key)
    .bind(&r.request)
    .bind(i64::from(r.status))
    .bind(&r.body)
    .bind(r.created_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}
