//! Backend glue: connection types, the timestamp encoding, and the mapping of driver errors to
//! [`StoreError`] kinds. The other modules only use what is defined here, so they read the same as
//! their PostgreSQL counterparts.

use std::str::FromStr;

use athena_store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::{Decode, Row, Type};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type DbPool = sqlx::SqlitePool;
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;
pub(crate) type Tx = sqlx::Transaction<'static, Db>;

/// Timestamps are stored as fixed-width UTC text so that SQL text comparison and `ORDER BY` follow
/// time order (sqlx's own encoding varies the number of fraction digits).
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

/// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up front (waiting up to the
/// busy timeout), instead of failing with SQLITE_BUSY when a read is later upgraded to a write.
pub(crate) async fn begin_write(pool: &DbPool) -> StoreResult<Tx> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
}

/// Reads one column, mapping a decoding failure to [`StoreError::Internal`].
pub(crate) fn get<'r, T>(row: &'r DbRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Db> + Type<Db>,
{
    row.try_get(column).map_err(db)
}

/// Reads a text column into a checked domain type (ids, hashes, keys…).
pub(crate) fn parsed<T>(row: &DbRow, column: &str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = get(row, column)?;
    text.parse().map_err(StoreError::internal)
}

pub(crate) fn parsed_opt<T>(row: &DbRow, column: &str) -> StoreResult<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = get(row, column)?;
    text.map(|t| t.parse().map_err(StoreError::internal)).transpose()
}

/// Maps a driver error to its kind. Messages never carry SQL: the error is kept only as `source`.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict("already exists".to_string()),
        sqlx::Error::Database(d) if is_busy(d.code().as_deref()) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Internal(Box::new(e)),
    }
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6), in any of their extended forms.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
}
