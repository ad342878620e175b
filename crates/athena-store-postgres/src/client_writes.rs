//! Writes replayed from clients' CRUD queues: one [`ClientWrite`] per transaction, serialised per
//! user by a transaction-scoped advisory lock and reading the current row `FOR UPDATE`, so the read
//! that decides and the write that follows see the same row; and the record of refused operations.
//! SQL text is assembled only from the `&'static` table and column
//! names of the write (checked to be plain identifiers); every value is a bound parameter.

use athena_domain::UserId;
use athena_store::{
    ClientOp, ClientValue, ClientWrite, ConflictPolicy, DeleteRule, RejectReason, StoreError, StoreResult, SyncTable, UploadRejection,
    WriteOutcome,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::db::{begin_write, db, get, parsed, DbPool, DbRow, Tx};

pub(crate) async fn apply_client_write(pool: &DbPool, user: &UserId, w: ClientWrite) -> StoreResult<WriteOutcome> {
    check_identifiers(&w)?;
    let mut tx = begin_write(pool).await?;
    // One user's client writes run one at a time, so that finding no row by a uniqueness key and
    // inserting one cannot race with another device's upload (a missing row cannot be locked).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(user.as_str()).execute(&mut *tx).await.map_err(db)?;
    let outcome = apply(&mut tx, user, &w).await?;
    if matches!(outcome, WriteOutcome::Rejected { .. }) {
        tx.rollback().await.map_err(db)?;
    } else {
        tx.commit().await.map_err(db)?;
    }
    Ok(outcome)
}

/// The stored row a write is decided against.
struct Current {
    id: String,
    user_id: String,
    updated_at: Option<DateTime<Utc>>,
    device_id: Option<String>,
}

fn rejected(reason: RejectReason, message: impl Into<String>) -> WriteOutcome {
    WriteOutcome::Rejected { reason, message: message.into() }
}

async fn apply(tx: &mut Tx, user: &UserId, w: &ClientWrite) -> StoreResult<WriteOutcome> {
    let table = w.table.name();
    let id = mapped_id(tx, user, table, &w.id).await?.unwrap_or_else(|| w.id.clone());
    let current = current_by(tx, w, "id = $1", &[ClientValue::Text(id.clone())]).await?;
    if let Some(c) = &current {
        if c.user_id != user.as_str() {
            // Another user's row is indistinguishable from a missing one, except that its id is taken.
            return Ok(match w.op {
                ClientOp::Delete => WriteOutcome::AlreadyGone,
                ClientOp::Patch => rejected(RejectReason::NotFound, "no such row"),
                ClientOp::Put => rejected(RejectReason::Invalid, "this id is already used by another row"),
            });
        }
    }
    for r in w.references {
        if let Some(ClientValue::Text(target)) = w.value(r.column) {
            let found = sqlx::query(&format!("SELECT 1 FROM {} WHERE id = $1 AND user_id = $2", r.table.name()))
                .bind(target)
                .bind(user.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
            if found.is_none() {
                return Ok(rejected(RejectReason::NotFound, format!("{}: no such {} row of yours", r.column, r.table.name())));
            }
        }
    }
    match (w.op, current) {
        (ClientOp::Delete, None) => Ok(WriteOutcome::AlreadyGone),
        (ClientOp::Delete, Some(c)) => delete_row(tx, user, w, &c.id).await,
        (ClientOp::Patch, None) => Ok(rejected(RejectReason::NotFound, "no such row")),
        (ClientOp::Put | ClientOp::Patch, Some(c)) => update_existing(tx, user, w, &c).await,
        (ClientOp::Put, None) => {
            if let Some(key) = w.unique_key {
                let mut clauses = vec!["user_id = $1".to_string()];
                let mut args = vec![ClientValue::Text(user.to_string())];
                for column in key {
                    match w.value(column).unwrap_or(&ClientValue::Null) {
                        ClientValue::Null => clauses.push(format!("{column} IS NULL")),
                        v => {
                            args.push(v.clone());
                            clauses.push(format!("{column} = ${}", args.len()));
                        }
                    }
                }
                if let Some(existing) = current_by(tx, w, &clauses.join(" AND "), &args).await? {
                    sqlx::query(
                        "INSERT INTO sync_id_map (user_id, table_name, client_id, server_id, created_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (user_id, table_name, client_id) DO UPDATE SET server_id = excluded.server_id",
                    )
                    .bind(user.as_str())
                    .bind(table)
                    .bind(&w.id)
                    .bind(&existing.id)
                    .bind(w.now)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                    let applied = match update_existing(tx, user, w, &existing).await? {
                        WriteOutcome::Updated => true,
                        WriteOutcome::Rejected { reason, message } => return Ok(WriteOutcome::Rejected { reason, message }),
                        _ => false,
                    };
                    return Ok(WriteOutcome::Merged { into: existing.id, applied });
                }
            }
            if !w.may_insert {
                return Ok(rejected(RejectReason::NotFound, "no such row (rows of this table are not created by sync)"));
            }
            insert_row(tx, user, w, &id).await
        }
    }
}

async fn mapped_id(tx: &mut Tx, user: &UserId, table: &str, client_id: &str) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT server_id FROM sync_id_map WHERE user_id = $1 AND table_name = $2 AND client_id = $3")
        .bind(user.as_str())
        .bind(table)
        .bind(client_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)
}

/// The one row matching `clause` (with `args` as $1…), with what the policy needs to decide.
async fn current_by(tx: &mut Tx, w: &ClientWrite, clause: &str, args: &[ClientValue]) -> StoreResult<Option<Current>> {
    let updated_at = if w.table.has_updated_at() { "updated_at" } else { "NULL AS updated_at" };
    let device_id = if w.policy == ConflictPolicy::ConflictCopy { "device_id" } else { "NULL AS device_id" };
    let sql = format!("SELECT id, user_id, {updated_at}, {device_id} FROM {} WHERE {clause} FOR UPDATE", w.table.name());
    let row = bind_all(sqlx::query(&sql), args).fetch_optional(&mut **tx).await.map_err(db)?;
    row.map(|row| {
        Ok(Current {
            id: get(&row, "id")?,
            user_id: get(&row, "user_id")?,
            updated_at: get(&row, "updated_at")?,
            device_id: get(&row, "device_id")?,
        })
    })
    .transpose()
}

async fn update_existing(tx: &mut Tx, user: &UserId, w: &ClientWrite, c: &Current) -> StoreResult<WriteOutcome> {
    let older = matches!((w.client_updated_at(), c.updated_at), (Some(client), Some(stored)) if client < stored);
    match w.policy {
        ConflictPolicy::LastWriterWins if older => Ok(WriteOutcome::Stale),
        ConflictPolicy::ConflictCopy if older && c.device_id.as_deref() != w.device_id() => match &w.conflict_copy_id {
            Some(copy_id) => insert_conflict_copy(tx, user, w, &c.id, copy_id).await,
            None => Ok(WriteOutcome::Stale),
        },
        _ => update_columns(tx, user, w, &c.id).await,
    }
}

async fn update_columns(tx: &mut Tx, user: &UserId, w: &ClientWrite, id: &str) -> StoreResult<WriteOutcome> {
    let mut args = vec![ClientValue::Text(id.to_string()), ClientValue::Text(user.to_string())];
    let mut sets = Vec::new();
    let mut changes = Vec::new();
    for (column, v) in &w.values {
        let p = placeholder(&mut args, v);
        changes.push(differs(column, &p));
        sets.push(format!("{column} = {p}"));
    }
    if changes.is_empty() {
        // Nothing to change: a write that carries no columns leaves the row (and its version) alone.
        return Ok(WriteOutcome::Updated);
    }
    if w.table.has_updated_at() && w.value("updated_at").is_none() {
        sets.push(format!("updated_at = {}", placeholder(&mut args, &ClientValue::Timestamp(w.now))));
    }
    if w.table.has_version() {
        sets.push("version = version + 1".to_string());
    }
    // Only a write that changes something bumps `updated_at` and `version`, so a retry is a no-op.
    let sql = format!("UPDATE {} SET {} WHERE id = $1 AND user_id = $2 AND ({})", w.table.name(), sets.join(", "), changes.join(" OR "));
    match bind_all(sqlx::query(&sql), &args).execute(&mut **tx).await.map_err(db) {
        Ok(_) => Ok(WriteOutcome::Updated),
        Err(StoreError::Conflict(_)) => Ok(rejected(RejectReason::Invalid, "another row already has these values (one row per key)")),
        Err(e) => Err(e),
    }
}

async fn insert_row(tx: &mut Tx, user: &UserId, w: &ClientWrite, id: &str) -> StoreResult<WriteOutcome> {
    let mut args = vec![ClientValue::Text(id.to_string()), ClientValue::Text(user.to_string())];
    let mut columns = vec!["id", "user_id"];
    let mut values = vec!["$1".to_string(), "$2".to_string()];
    let defaults = w.insert_defaults.iter().filter(|(c, _)| w.value(c).is_none());
    for (column, v) in w.values.iter().chain(defaults) {
        columns.push(column);
        values.push(placeholder(&mut args, v));
    }
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", w.table.name(), columns.join(", "), values.join(", "));
    match bind_all(sqlx::query(&sql), &args).execute(&mut **tx).await.map_err(db) {
        Ok(_) => Ok(WriteOutcome::Inserted),
        // Uniqueness was checked above under the write lock; a clash means a concurrent writer: retry.
        Err(StoreError::Conflict(what)) => Err(StoreError::Unavailable(format!("concurrent write: {what}").into())),
        Err(e) => Err(e),
    }
}

/// The stale edit, over the stored row's other columns, as a new row pointing at the original.
async fn insert_conflict_copy(tx: &mut Tx, user: &UserId, w: &ClientWrite, original: &str, copy_id: &str) -> StoreResult<WriteOutcome> {
    let mut args =
        vec![ClientValue::Text(copy_id.to_string()), ClientValue::Text(original.to_string()), ClientValue::Text(user.to_string())];
    let mut columns = vec!["id", "user_id", "conflict_of"];
    let mut selected = vec!["$1".to_string(), "user_id".to_string(), "$2".to_string()];
    for column in w.columns.iter().filter(|c| **c != "conflict_of") {
        columns.push(column);
        selected.push(match w.value(column) {
            Some(v) => placeholder(&mut args, v),
            // The copy holds the other device's edit: never attribute it to the stored row's device.
            None if *column == "device_id" => "NULL".to_string(),
            None => column.to_string(),
        });
    }
    let sql = format!(
        "INSERT INTO {t} ({}) SELECT {} FROM {t} WHERE id = $2 AND user_id = $3 ON CONFLICT (id) DO NOTHING",
        columns.join(", "),
        selected.join(", "),
        t = w.table.name()
    );
    bind_all(sqlx::query(&sql), &args).execute(&mut **tx).await.map_err(db)?;
    Ok(WriteOutcome::ConflictCopy { copy_id: copy_id.to_string() })
}

async fn delete_row(tx: &mut Tx, user: &UserId, w: &ClientWrite, id: &str) -> StoreResult<WriteOutcome> {
    let table = w.table.name();
    let mut extra = String::new();
    if w.table.has_updated_at() {
        extra.push_str(", updated_at = $3");
    }
    if w.table.has_version() {
        extra.push_str(", version = version + 1");
    }
    let sql = match w.delete {
        DeleteRule::SoftDeletedAt => {
            format!("UPDATE {table} SET deleted_at = $3{extra} WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL")
        }
        DeleteRule::SoftFlag => {
            format!("UPDATE {table} SET is_deleted = TRUE, deleted_at = $3{extra} WHERE id = $1 AND user_id = $2 AND NOT is_deleted")
        }
        DeleteRule::Remove => format!("DELETE FROM {table} WHERE id = $1 AND user_id = $2"),
    };
    let mut query = sqlx::query(&sql).bind(id).bind(user.as_str());
    if w.delete != DeleteRule::Remove {
        query = query.bind(w.now);
    }
    query.execute(&mut **tx).await.map_err(db)?;
    for r in w.delete_cascade {
        sqlx::query(&format!("DELETE FROM {} WHERE {} = $1 AND user_id = $2", r.table.name(), r.column))
            .bind(id)
            .bind(user.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(WriteOutcome::Deleted)
}

/// Null-safe "the stored value is not this one".
fn differs(column: &str, placeholder: &str) -> String {
    format!("{column} IS DISTINCT FROM {placeholder}")
}

/// `NULL` for a null value (so no parameter type is needed), else the next `$n`.
fn placeholder(args: &mut Vec<ClientValue>, v: &ClientValue) -> String {
    if *v == ClientValue::Null {
        return "NULL".to_string();
    }
    args.push(v.clone());
    format!("${}", args.len())
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, crate::db::Db, sqlx::postgres::PgArguments>,
    args: &[ClientValue],
) -> sqlx::query::Query<'q, crate::db::Db, sqlx::postgres::PgArguments> {
    for a in args {
        q = match a {
            ClientValue::Null => q.bind(None::<String>),
            ClientValue::Text(s) => q.bind(s.clone()),
            ClientValue::Int(i) => q.bind(*i),
            ClientValue::Real(r) => q.bind(*r),
            ClientValue::Bool(b) => q.bind(*b),
            ClientValue::Timestamp(t) => q.bind(*t),
        };
    }
    q
}

/// Names reach SQL text, so they must be plain identifiers (they are `&'static` already).
fn check_identifiers(w: &ClientWrite) -> StoreResult<()> {
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let names = w
        .values
        .iter()
        .chain(&w.insert_defaults)
        .map(|(c, _)| *c)
        .chain(w.columns.iter().copied())
        .chain(w.unique_key.unwrap_or(&[]).iter().copied())
        .chain(w.references.iter().chain(w.delete_cascade).map(|r| r.column));
    for name in names {
        if !plain(name) || matches!(name, "id" | "user_id") {
            return Err(StoreError::Internal(format!("column name {name:?} cannot be written by clients").into()));
        }
    }
    Ok(())
}

pub(crate) async fn client_row(pool: &DbPool, user: &UserId, table: SyncTable, id: &str) -> StoreResult<Option<Map<String, Value>>> {
    let row = sqlx::query(&format!("SELECT * FROM {} WHERE id = $1 AND user_id = $2", table.name()))
        .bind(id)
        .bind(user.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.map(|row| to_json(&row)).transpose()
}

/// Decodes each column by its type, into what clients get: timestamps as fixed-width UTC text,
/// booleans as 0/1 (the same JSON the SQLite backend gives).
fn to_json(row: &DbRow) -> StoreResult<Map<String, Value>> {
    let mut out = Map::new();
    for column in row.columns() {
        let name = column.name();
        let raw = row.try_get_raw(column.ordinal()).map_err(db)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match column.type_info().name() {
                "INT8" => Value::from(get::<i64>(row, name)?),
                "INT4" => Value::from(get::<i32>(row, name)?),
                "FLOAT8" => Value::from(get::<f64>(row, name)?),
                "BOOL" => Value::from(i64::from(get::<bool>(row, name)?)),
                "TIMESTAMPTZ" => Value::from(get::<DateTime<Utc>>(row, name)?.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
                _ => Value::from(get::<String>(row, name)?),
            }
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

pub(crate) async fn record_upload_rejection(pool: &DbPool, r: UploadRejection) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sync_upload_rejections (user_id, table_name, row_id, op, code, message, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.user_id.as_str())
    .bind(&r.table)
    .bind(&r.row_id)
    .bind(&r.op)
    .bind(&r.code)
    .bind(&r.message)
    .bind(&r.payload)
    .bind(r.created_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn upload_rejections(pool: &DbPool, user: &UserId, limit: u32) -> StoreResult<Vec<UploadRejection>> {
    let found = sqlx::query("SELECT * FROM sync_upload_rejections WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    found
        .iter()
        .map(|row| {
            Ok(UploadRejection {
                user_id: parsed(row, "user_id")?,
                table: get(row, "table_name")?,
                row_id: get(row, "row_id")?,
                op: get(row, "op")?,
                code: get(row, "code")?,
                message: get(row, "message")?,
                payload: get(row, "payload")?,
                created_at: get(row, "created_at")?,
            })
        })
        .collect()
}
