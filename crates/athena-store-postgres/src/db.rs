//! Backend glue: connection types, transactions, and the mapping of driver errors to
//! [`StoreError`] kinds. The other modules only use what is defined here, so they read the same as
//! their SQLite counterparts.

use std::str::FromStr;

use athena_store::{StoreError, StoreResult};
use sqlx::{Decode, Row, Type};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type DbPool = sqlx::PgPool;
pub(crate) type DbRow = sqlx::postgres::PgRow;
pub(crate) type Tx = sqlx::Transaction<'static, Db>;

/// Starts a write transaction (READ COMMITTED; the statements inside lock the rows they change).
pub(crate) async fn begin_write(pool: &DbPool) -> StoreResult<Tx> {
    pool.begin().await.map_err(db)
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
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict("already exists".to_string()),
        sqlx::Error::Database(d) if is_transient(d.code().as_deref()) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Internal(Box::new(e)),
    }
}

/// SQLSTATEs worth a retry: connection exceptions (08…), serialization failure, deadlock, lock
/// timeout, too many connections / out of resources, and server shutdown or recovery.
fn is_transient(code: Option<&str>) -> bool {
    code.is_some_and(|c| {
        c.starts_with("08") || c.starts_with("53") || matches!(c, "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03")
    })
}
