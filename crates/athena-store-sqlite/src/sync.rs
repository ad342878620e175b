//! [`SyncStore`] on SQLite. SQLite has one writer at a time, so a sequencing pass inside a
//! `BEGIN IMMEDIATE` transaction is already the only sequencer, and captured changes are committed
//! in capture order.

use std::collections::HashMap;

use async_trait::async_trait;
use athena_store::sync::*;
use athena_store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{begin_write, db, ts};
use crate::SqliteStore;

const U32: i64 = 1 << 32;
/// Ops per multi-row INSERT (8 parameters each, well under SQLite's 32,766-parameter limit).
const OPS_PER_INSERT: usize = 500;

fn parse_row(text: Option<String>) -> StoreResult<Option<serde_json::Map<String, serde_json::Value>>> {
    match text {
        None => Ok(None),
        Some(t) => match serde_json::from_str::<serde_json::Value>(&t).map_err(StoreError::internal)? {
            serde_json::Value::Object(m) => Ok(Some(m)),
            _ => Err(StoreError::Internal("captured row is not a JSON object".into())),
        },
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn entry(row: &sqlx::sqlite::SqliteRow) -> StoreResult<OplogEntry> {
    let op: String = row.try_get("op").map_err(db)?;
    let captured: Option<String> = row.try_get("captured_at").map_err(db)?;
    Ok(OplogEntry {
        op_id: row.try_get("op_id").map_err(db)?,
        bucket: row.try_get("bucket").map_err(db)?,
        op: OpKind::parse(&op).ok_or_else(|| StoreError::Internal("unknown op kind".into()))?,
        object_type: row.try_get("object_type").map_err(db)?,
        object_id: row.try_get("object_id").map_err(db)?,
        data: row.try_get("data").map_err(db)?,
        checksum: row.try_get::<i64, _>("checksum").map_err(db)? as u32,
        captured_at: captured.as_deref().and_then(parse_time),
    })
}

/// An op with its id, waiting to be written.
struct PendingOp {
    op_id: i64,
    draft: OpDraft,
    captured_at: String,
}

/// The running state of one sequencing pass.
struct Pass {
    last_op_id: i64,
    /// Per touched bucket: checksum sum, op count, last op id.
    buckets: HashMap<String, (i64, i64, i64)>,
    max_change: i64,
    ops: u64,
}

impl Pass {
    /// Turns captured rows into numbered ops, in capture order.
    fn evaluate(&mut self, rows: &[sqlx::sqlite::SqliteRow], evaluate: Evaluate<'_>) -> StoreResult<Vec<PendingOp>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let captured_text: String = row.try_get("captured_at").map_err(db)?;
            let change = CapturedChange {
                id: row.try_get("id").map_err(db)?,
                table: row.try_get("table_name").map_err(db)?,
                op: row.try_get("op").map_err(db)?,
                old_row: parse_row(row.try_get("old_row").map_err(db)?)?,
                new_row: parse_row(row.try_get("new_row").map_err(db)?)?,
                captured_at: parse_time(&captured_text).unwrap_or_else(Utc::now),
            };
            self.max_change = self.max_change.max(change.id);
            for draft in evaluate(&change) {
                self.last_op_id += 1;
                let b = match self.buckets.get_mut(&draft.bucket) {
                    Some(b) => b,
                    None => self.buckets.entry(draft.bucket.clone()).or_insert((0, 0, 0)),
                };
                b.0 = (b.0 + i64::from(draft.checksum)) % U32;
                b.1 += 1;
                b.2 = self.last_op_id;
                out.push(PendingOp { op_id: self.last_op_id, draft, captured_at: captured_text.clone() });
            }
        }
        self.ops += out.len() as u64;
        Ok(out)
    }
}

/// Writes ops with many rows per statement: one round trip to SQLite per few hundred ops.
async fn insert_ops(tx: &mut crate::db::Tx, ops: &[PendingOp]) -> StoreResult<()> {
    for chunk in ops.chunks(OPS_PER_INSERT) {
        let mut sql =
            String::from("INSERT INTO sync_oplog (op_id, bucket, op, object_type, object_id, data, checksum, captured_at) VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?, ?)" });
        }
        let mut query = sqlx::query(&sql);
        for op in chunk {
            let draft = &op.draft;
            query = query
                .bind(op.op_id)
                .bind(&draft.bucket)
                .bind(draft.op.as_str())
                .bind(&draft.object_type)
                .bind(&draft.object_id)
                .bind(&draft.data)
                .bind(i64::from(draft.checksum))
                .bind(&op.captured_at);
        }
        query.execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}

#[async_trait]
impl SyncStore for SqliteStore {
    async fn sequence(&self, limit: u32, evaluate: Evaluate<'_>) -> StoreResult<SequenceOutcome> {
        let mut tx = begin_write(self.pool()).await?;
        let rows = sqlx::query("SELECT id, table_name, op, old_row, new_row, captured_at FROM sync_changes ORDER BY id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let last_op_id: i64 = sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1").fetch_one(&mut *tx).await.map_err(db)?;
        if rows.is_empty() {
            tx.rollback().await.map_err(db)?;
            return Ok(SequenceOutcome { changes: 0, ops: 0, last_op_id, ran: true, buckets: vec![] });
        }
        let mut pass = Pass { last_op_id, buckets: HashMap::new(), max_change: 0, ops: 0 };
        // SQLite writes on its own worker thread: while it inserts one chunk's ops, this thread
        // evaluates the next chunk, so the two halves of the work overlap on two cores.
        evaluate_while_writing(
            &rows,
            OPS_PER_INSERT,
            &mut tx,
            |chunk| pass.evaluate(chunk, evaluate),
            |tx, ops| Box::pin(insert_ops(tx, ops)),
        )
        .await?;
        let Pass { last_op_id, buckets, max_change, ops } = pass;
        let touched: Vec<String> = buckets.keys().cloned().collect();
        for (bucket, (checksum, count, last)) in buckets {
            sqlx::query(
                "INSERT INTO sync_buckets (bucket, checksum, op_count, last_op_id) VALUES (?, ?, ?, ?)
                 ON CONFLICT (bucket) DO UPDATE SET checksum = (sync_buckets.checksum + excluded.checksum) % 4294967296,
                 op_count = sync_buckets.op_count + excluded.op_count, last_op_id = excluded.last_op_id",
            )
            .bind(&bucket)
            .bind(checksum)
            .bind(count)
            .bind(last)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query("UPDATE sync_state SET last_op_id = ? WHERE id = 1").bind(last_op_id).execute(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM sync_changes WHERE id <= ?").bind(max_change).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(SequenceOutcome { changes: rows.len() as u64, ops, last_op_id, ran: true, buckets: touched })
    }

    async fn pending_changes(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes").fetch_one(self.pool()).await.map_err(db)
    }

    async fn log_checkpoint(&self, buckets: &[String]) -> StoreResult<LogCheckpoint> {
        // One read transaction: the log end and the bucket states come from the same snapshot.
        let mut tx = self.pool().begin().await.map_err(db)?;
        let last_op_id: i64 = sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1").fetch_one(&mut *tx).await.map_err(db)?;
        let mut states = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let row = sqlx::query("SELECT checksum, op_count, last_op_id FROM sync_buckets WHERE bucket = ?")
                .bind(bucket)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            states.push(match row {
                Some(r) => BucketState {
                    bucket: bucket.clone(),
                    checksum: r.try_get::<i64, _>("checksum").map_err(db)? as u32,
                    count: r.try_get("op_count").map_err(db)?,
                    last_op_id: r.try_get("last_op_id").map_err(db)?,
                },
                None => BucketState { bucket: bucket.clone(), checksum: 0, count: 0, last_op_id: 0 },
            });
        }
        tx.commit().await.map_err(db)?;
        Ok(LogCheckpoint { last_op_id, buckets: states })
    }

    async fn ops_after(&self, bucket: &str, after: i64, until: i64, limit: u32) -> StoreResult<Vec<OplogEntry>> {
        let rows = sqlx::query(
            "SELECT op_id, bucket, op, object_type, object_id, data, checksum, captured_at FROM sync_oplog
             WHERE bucket = ? AND op_id > ? AND op_id <= ? ORDER BY op_id LIMIT ?",
        )
        .bind(bucket)
        .bind(after)
        .bind(until)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter().map(entry).collect()
    }

    async fn create_write_checkpoint(&self, user: &str, client_id: &str, op_watermark: i64, now: DateTime<Utc>) -> StoreResult<i64> {
        let mut tx = begin_write(self.pool()).await?;
        let next: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(checkpoint), 0) + 1 FROM sync_write_checkpoints WHERE user_id = ? AND client_id = ?")
                .bind(user)
                .bind(client_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        sqlx::query("INSERT INTO sync_write_checkpoints (user_id, client_id, checkpoint, op_watermark, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(user)
            .bind(client_id)
            .bind(next)
            .bind(op_watermark)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Only recent checkpoints matter: a stream reports the newest one its checkpoint covers.
        sqlx::query("DELETE FROM sync_write_checkpoints WHERE user_id = ? AND client_id = ? AND checkpoint < ?")
            .bind(user)
            .bind(client_id)
            .bind(next - 16)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(next)
    }

    async fn write_checkpoint_at(&self, user: &str, client_id: &str, last_op_id: i64) -> StoreResult<Option<i64>> {
        sqlx::query_scalar("SELECT MAX(checkpoint) FROM sync_write_checkpoints WHERE user_id = ? AND client_id = ? AND op_watermark <= ?")
            .bind(user)
            .bind(client_id)
            .bind(last_op_id)
            .fetch_one(self.pool())
            .await
            .map_err(db)
    }

    async fn rules_version(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT rules_version FROM sync_state WHERE id = 1").fetch_one(self.pool()).await.map_err(db)
    }

    async fn reset_for_rules(&self, version: &str, tables: &[String], now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = begin_write(self.pool()).await?;
        let mut last_op_id: i64 =
            sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1").fetch_one(&mut *tx).await.map_err(db)?;
        let buckets: Vec<String> =
            sqlx::query_scalar("SELECT bucket FROM sync_buckets ORDER BY bucket").fetch_all(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM sync_oplog").execute(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM sync_buckets").execute(&mut *tx).await.map_err(db)?;
        for bucket in buckets {
            last_op_id += 1;
            sqlx::query("INSERT INTO sync_oplog (op_id, bucket, op, checksum, captured_at) VALUES (?, ?, 'CLEAR', 0, ?)")
                .bind(last_op_id)
                .bind(&bucket)
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("INSERT INTO sync_buckets (bucket, checksum, op_count, last_op_id) VALUES (?, 0, 1, ?)")
                .bind(&bucket)
                .bind(last_op_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM sync_changes").execute(&mut *tx).await.map_err(db)?;
        for table in tables {
            // Table names come from the sync rules, which only name known synced tables; quote anyway.
            let quoted = format!("\"{}\"", table.replace('"', ""));
            let cols: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{}')", table.replace('\'', "")))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            if cols.is_empty() {
                return Err(StoreError::Internal(format!("sync rules name a table that does not exist: {table}").into()));
            }
            let object = cols.iter().map(|c| format!("'{c}', \"{c}\"")).collect::<Vec<_>>().join(", ");
            sqlx::query(&format!(
                "INSERT INTO sync_changes (table_name, op, new_row) SELECT '{}', 'INSERT', json_object({object}) FROM {quoted}",
                table.replace('\'', "")
            ))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query("UPDATE sync_state SET last_op_id = ?, rules_version = ? WHERE id = 1")
            .bind(last_op_id)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn compact_bucket(&self, bucket: &str, until: i64) -> StoreResult<u64> {
        let mut tx = begin_write(self.pool()).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_oplog WHERE bucket = ? AND op_id <= ?")
            .bind(bucket)
            .bind(until)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        // The newest op of every object: those that are PUTs are the bucket's live rows.
        let live = sqlx::query(
            "SELECT o.op_id, o.object_type, o.object_id, o.data, o.checksum, o.captured_at FROM sync_oplog o
             JOIN (SELECT object_type, object_id, MAX(op_id) AS m FROM sync_oplog
                   WHERE bucket = ? AND op_id <= ? AND op IN ('PUT', 'REMOVE') GROUP BY object_type, object_id) n
               ON o.op_id = n.m
             WHERE o.op = 'PUT'",
        )
        .bind(bucket)
        .bind(until)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        // Worth it only when most of the history is superseded.
        if total < 2 || (live.len() as i64) * 2 > total {
            tx.rollback().await.map_err(db)?;
            return Ok(0);
        }
        let sum: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(checksum), 0) % 4294967296 FROM sync_oplog WHERE bucket = ? AND op_id <= ?")
            .bind(bucket)
            .bind(until)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let clear_at: i64 = sqlx::query_scalar("SELECT MAX(op_id) FROM sync_oplog WHERE bucket = ? AND op_id <= ?")
            .bind(bucket)
            .bind(until)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM sync_oplog WHERE bucket = ? AND op_id <= ?")
            .bind(bucket)
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // One CLEAR carries the checksum of everything it replaced; clients past it already hold
        // that sum, clients before it start the bucket over.
        sqlx::query("INSERT INTO sync_oplog (op_id, bucket, op, checksum) VALUES (?, ?, 'CLEAR', ?)")
            .bind(clear_at)
            .bind(bucket)
            .bind(sum)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Live rows move to the end of the log, so the CLEAR precedes every op a new client needs.
        let mut last_op_id: i64 =
            sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1").fetch_one(&mut *tx).await.map_err(db)?;
        let mut added = 0i64;
        for row in &live {
            last_op_id += 1;
            let checksum: i64 = row.try_get("checksum").map_err(db)?;
            sqlx::query(
                "INSERT INTO sync_oplog (op_id, bucket, op, object_type, object_id, data, checksum, captured_at) VALUES (?, ?, 'PUT', ?, ?, ?, ?, ?)",
            )
            .bind(last_op_id)
            .bind(bucket)
            .bind(row.try_get::<Option<String>, _>("object_type").map_err(db)?)
            .bind(row.try_get::<Option<String>, _>("object_id").map_err(db)?)
            .bind(row.try_get::<Option<String>, _>("data").map_err(db)?)
            .bind(checksum)
            .bind(row.try_get::<Option<String>, _>("captured_at").map_err(db)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            added = (added + checksum) % U32;
        }
        let later: (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(checksum), 0) % 4294967296 FROM sync_oplog WHERE bucket = ? AND op_id > ?")
                .bind(bucket)
                .bind(clear_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let _ = added;
        sqlx::query("UPDATE sync_buckets SET checksum = ?, op_count = ?, last_op_id = ? WHERE bucket = ?")
            .bind((sum + later.1) % U32)
            .bind(1 + later.0)
            .bind(last_op_id.max(clear_at))
            .bind(bucket)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("UPDATE sync_state SET last_op_id = ? WHERE id = 1").bind(last_op_id).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((total - live.len() as i64).max(0) as u64)
    }

    async fn subscribe(&self) -> StoreResult<Option<SyncEvents>> {
        Ok(None)
    }

    async fn buckets_to_compact(&self, min_ops: i64, limit: u32) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT bucket FROM sync_buckets WHERE op_count >= ? ORDER BY op_count DESC LIMIT ?")
            .bind(min_ops)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(db)
    }
}
