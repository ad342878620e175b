//! Users, email login codes, rate-limit events and login sessions.

use athena_domain::{Email, Role, SessionId, UserId};
use athena_store::{LoginCode, NewSession, NewUser, Session, StoreError, StoreResult, User};
use chrono::{DateTime, Utc};

use crate::db::{db, get, DbPool};
use crate::rows;

pub(crate) async fn create_user(pool: &DbPool, new: NewUser) -> StoreResult<User> {
    let row = sqlx::query(
        "INSERT INTO users (id, email, display_name, role, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING *",
    )
    .bind(new.id.as_str())
    .bind(new.email.as_str())
    .bind(&new.display_name)
    .bind(new.role.as_str())
    .bind(new.now)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    rows::user(&row)
}

pub(crate) async fn user(pool: &DbPool, id: &UserId) -> StoreResult<User> {
    let row = sqlx::query("SELECT * FROM users WHERE id = $1").bind(id.as_str()).fetch_one(pool).await.map_err(db)?;
    rows::user(&row)
}

pub(crate) async fn user_by_email(pool: &DbPool, email: &Email) -> StoreResult<Option<User>> {
    let row = sqlx::query("SELECT * FROM users WHERE email = $1").bind(email.as_str()).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::user).transpose()
}

pub(crate) async fn set_user_role(pool: &DbPool, id: &UserId, role: Role) -> StoreResult<User> {
    // The trait passes no clock here; the role change is stamped with the server's time.
    let row = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3 RETURNING *")
        .bind(role.as_str())
        .bind(Utc::now())
        .bind(id.as_str())
        .fetch_one(pool)
        .await
        .map_err(db)?;
    rows::user(&row)
}

pub(crate) async fn put_login_code(pool: &DbPool, code: LoginCode) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO login_codes (email, code_hash, attempts, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email) DO UPDATE SET code_hash = excluded.code_hash,
             attempts = excluded.attempts, expires_at = excluded.expires_at,
             created_at = excluded.created_at",
    )
    .bind(code.email.as_str())
    .bind(&code.code_hash)
    .bind(i64::from(code.attempts))
    .bind(code.expires_at)
    .bind(code.created_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn login_code(pool: &DbPool, email: &Email) -> StoreResult<Option<LoginCode>> {
    let row = sqlx::query("SELECT * FROM login_codes WHERE email = $1").bind(email.as_str()).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::login_code).transpose()
}

pub(crate) async fn add_login_code_attempt(pool: &DbPool, email: &Email) -> StoreResult<u32> {
    let row = sqlx::query("UPDATE login_codes SET attempts = attempts + 1 WHERE email = $1 RETURNING attempts")
        .bind(email.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match row {
        Some(r) => {
            let n: i64 = get(&r, "attempts")?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        }
        None => Ok(0),
    }
}

pub(crate) async fn delete_login_code(pool: &DbPool, email: &Email) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_codes WHERE email = $1").bind(email.as_str()).execute(pool).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn record_rate_event(pool: &DbPool, scope: &str, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("INSERT INTO rate_events (scope, key, at) VALUES ($1, $2, $3)")
        .bind(scope)
        .bind(key)
        .bind(at)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn count_rate_events(pool: &DbPool, scope: &str, key: &str, since: DateTime<Utc>) -> StoreResult<u64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM rate_events WHERE scope = $1 AND key = $2 AND at >= $3")
        .bind(scope)
        .bind(key)
        .bind(since)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    let n: i64 = get(&row, "n")?;
    Ok(n.unsigned_abs())
}

pub(crate) async fn prune_rate_events(pool: &DbPool, before: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM rate_events WHERE at < $1").bind(before).execute(pool).await.map_err(db)?;
    Ok(done.rows_affected())
}

pub(crate) async fn create_session(pool: &DbPool, s: NewSession) -> StoreResult<Session> {
    let row = sqlx::query(
        "INSERT INTO sessions (id, user_id, user_agent, refresh_hash, refresh_expires_at, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
    )
    .bind(s.id.as_str())
    .bind(s.user_id.as_str())
    .bind(&s.user_agent)
    .bind(&s.refresh_hash)
    .bind(s.refresh_expires_at)
    .bind(s.now)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    rows::session(&row)
}

pub(crate) async fn session(pool: &DbPool, id: &SessionId) -> StoreResult<Session> {
    let row = sqlx::query("SELECT * FROM sessions WHERE id = $1").bind(id.as_str()).fetch_one(pool).await.map_err(db)?;
    rows::session(&row)
}

pub(crate) async fn session_by_refresh_hash(pool: &DbPool, hash: &str) -> StoreResult<Option<Session>> {
    let row = sqlx::query("SELECT * FROM sessions WHERE refresh_hash = $1").bind(hash).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::session).transpose()
}

pub(crate) async fn rotate_refresh(
    pool: &DbPool,
    id: &SessionId,
    old_hash: &str,
    new_hash: &str,
    new_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // One conditional UPDATE is the compare-and-swap: of two racing rotations only one matches.
    let done = sqlx::query(
        "UPDATE sessions SET refresh_hash = $1, refresh_expires_at = $2, last_used_at = $3
         WHERE id = $4 AND refresh_hash = $5 AND revoked_at IS NULL AND refresh_expires_at > $3",
    )
    .bind(new_hash)
    .bind(new_expires_at)
    .bind(now)
    .bind(id.as_str())
    .bind(old_hash)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn list_sessions(pool: &DbPool, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Session>> {
    let found = sqlx::query(
        "SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND refresh_expires_at > $2
         ORDER BY created_at DESC, id DESC",
    )
    .bind(user.as_str())
    .bind(now)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    found.iter().map(rows::session).collect()
}

pub(crate) async fn revoke_session(pool: &DbPool, user: &UserId, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()> {
    // Revoking twice keeps the first revocation time.
    let done = sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3")
        .bind(now)
        .bind(id.as_str())
        .bind(user.as_str())
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
