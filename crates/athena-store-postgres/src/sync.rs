//! [`SyncStore`] on PostgreSQL. Many processes may serve one database: an advisory lock makes one
//! sequencer run at a time, and a pass deletes exactly the captured rows it read — never "everything
//! below an id" — because capture ids are taken at write time, not commit time: a slow transaction's
//! lower id becomes visible later and is sequenced then, with a higher op id.

use std::collections::HashMap;

use async_trait::async_trait;
use athena_store::sync::*;
use athena_store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{begin_write, db};
use crate::PgStore;

const U32: i64 = 1 << 32;
/// Key of the transaction-scoped advisory lock held by the one running sequencer or compactor.
const SEQUENCER_LOCK: i64 = 0x4154_4845_4e41_5351; // "ATHENASQ"

fn as_object(v: Option<serde_json::Value>) -> StoreResult<Option<serde_json::Map<String, serde_json::Value>>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(StoreError::Internal("captured row is not a JSON object".into())),
    }
}

fn entry(row: &sqlx::postgres::PgRow) -> StoreResult<OplogEntry> {
    let op: String = row.try_get("op").map_err(db)?;
    Ok(OplogEntry {
        op_id: row.try_get("op_id").map_err(db)?,
        bucket: row.try_get("bucket").map_err(db)?,
        op: OpKind::parse(&op).ok_or_else(|| StoreError::Internal("unknown op kind".into()))?,
        object_type: row.try_get("object_type").map_err(db)?,
        object_id: row.try_get("object_id").map_err(db)?,
        data: row.try_get("data").map_err(db)?,
        checksum: row.try_get::<i64, _>("checksum").map_err(db)? as u32,
        captured_at: row.try_get("captured_at").map_err(db)?,
    })
}

/// `last_op_id`, then the touched bucket names one per line — or only the id when they would not
/// fit in a notification (8000 bytes), which makes listeners check every stream.
fn ops_payload(last_op_id: i64, buckets: &[String]) -> String {
    let mut payload = last_op_id.to_string();
    let size: usize = buckets.iter().map(|b| b.len() + 1).sum();
    if size + payload.len() < 7000 {
        for b in buckets {
            payload.push('\n');
            payload.push_str(b);
        }
    }
    payload
}

fn parse_ops_payload(payload: &str) -> Option<(i64, Option<Vec<String>>)> {
    let mut lines = payload.split('\n');
    let id = lines.next()?.parse().ok()?;
    let buckets: Vec<String> = lines.map(str::to_string).collect();
    Some((id, (!buckets.is_empty()).then_some(buckets)))
}

async fn lock_sequencer(tx: &mut crate::db::Tx) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(SEQUENCER_LOCK).fetch_one(&mut **tx).await.map_err(db)
}

/// Changes evaluated per chunk (one `UNNEST` insert each).
const CHANGES_PER_CHUNK: usize = 2000;

/// Ops waiting to be written, as the columns of one `UNNEST` insert.
#[derive(Default)]
struct OpColumns {
    ids: Vec<i64>,
    buckets: Vec<String>,
    kinds: Vec<&'static str>,
    types: Vec<Option<String>>,
    objects: Vec<Option<String>>,
    data: Vec<Option<String>>,
    sums: Vec<i64>,
    times: Vec<DateTime<Utc>>,
}

/// The running state of one sequencing pass.
struct Pass {
    last_op_id: i64,
    /// Per touched bucket: checksum sum, op count, last op id.
    buckets: HashMap<String, (i64, i64, i64)>,
    /// The captured rows read, to delete exactly those.
    ids: Vec<i64>,
    ops: u64,
}

impl Pass {
    /// Turns captured rows into numbered ops, in capture order.
    fn evaluate(&mut self, rows: &[sqlx::postgres::PgRow], evaluate: Evaluate<'_>) -> StoreResult<OpColumns> {
        let mut out = OpColumns::default();
        for row in rows {
            let change = CapturedChange {
                id: row.try_get("id").map_err(db)?,
                table: row.try_get("table_name").map_err(db)?,
                op: row.try_get("op").map_err(db)?,
                old_row: as_object(row.try_get("old_row").map_err(db)?)?,
                new_row: as_object(row.try_get("new_row").map_err(db)?)?,
                captured_at: row.try_get("captured_at").map_err(db)?,
            };
            self.ids.push(change.id);
            for draft in evaluate(&change) {
                self.last_op_id += 1;
                let b = match self.buckets.get_mut(&draft.bucket) {
                    Some(b) => b,
                    None => self.buckets.entry(draft.bucket.clone()).or_insert((0, 0, 0)),
                };
                b.0 = (b.0 + i64::from(draft.checksum)) % U32;
                b.1 += 1;
                b.2 = self.last_op_id;
                out.ids.push(self.last_op_id);
                out.buckets.push(draft.bucket);
                out.kinds.push(draft.op.as_str());
                out.types.push(draft.object_type);
                out.objects.push(draft.object_id);
                out.data.push(draft.data);
                out.sums.push(i64::from(draft.checksum));
                out.times.push(change.captured_at);
            }
        }
        self.ops += out.ids.len() as u64;
        Ok(out)
    }
}

/// One statement per chunk: `UNNEST` keeps a 100,000-row transaction fast.
async fn insert_ops(tx: &mut crate::db::Tx, ops: &OpColumns) -> StoreResult<()> {
    if ops.ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sync_oplog (op_id, bucket, op, object_type, object_id, data, checksum, captured_at)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::timestamptz[])",
    )
    .bind(&ops.ids)
    .bind(&ops.buckets)
    .bind(&ops.kinds)
    .bind(&ops.types)
    .bind(&ops.objects)
    .bind(&ops.data)
    .bind(&ops.sums)
    .bind(&ops.times)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl SyncStore for PgStore {
    async fn sequence(&self, limit: u32, evaluate: Evaluate<'_>) -> StoreResult<SequenceOutcome> {
        let mut tx = begin_write(self.pool()).await?;
        if !lock_sequencer(&mut tx).await? {
            tx.rollback().await.map_err(db)?;
            return Ok(SequenceOutcome::default());
        }
        let rows = sqlx::query("SELECT id, table_name, op, old_row, new_row, captured_at FROM sync_changes ORDER BY id LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let last_op_id: i64 =
            sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await.map_err(db)?;
        if rows.is_empty() {
            tx.rollback().await.map_err(db)?;
            return Ok(SequenceOutcome { changes: 0, ops: 0, last_op_id, ran: true, buckets: vec![] });
        }
        let mut pass = Pass { last_op_id, buckets: HashMap::new(), ids: Vec::with_capacity(rows.len()), ops: 0 };
        // PostgreSQL writes in its own process: while it inserts one chunk's ops, this thread
        // evaluates the next chunk.
        evaluate_while_writing(
            &rows,
            CHANGES_PER_CHUNK,
            &mut tx,
            |chunk| pass.evaluate(chunk, evaluate),
            |tx, ops| Box::pin(insert_ops(tx, ops)),
        )
        .await?;
        let Pass { last_op_id, buckets, ids, ops } = pass;
        let (mut b_names, mut b_sums, mut b_counts, mut b_last) = (vec![], vec![], vec![], vec![]);
        for (bucket, (checksum, count, last)) in buckets {
            b_names.push(bucket);
            b_sums.push(checksum);
            b_counts.push(count);
            b_last.push(last);
        }
        let touched = b_names.clone();
        sqlx::query(
            "INSERT INTO sync_buckets (bucket, checksum, op_count, last_op_id)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
             ON CONFLICT (bucket) DO UPDATE SET checksum = (sync_buckets.checksum + excluded.checksum) % 4294967296,
             op_count = sync_buckets.op_count + excluded.op_count, last_op_id = excluded.last_op_id",
        )
        .bind(&b_names)
        .bind(&b_sums)
        .bind(&b_counts)
        .bind(&b_last)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE sync_state SET last_op_id = $1 WHERE id = 1").bind(last_op_id).execute(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM sync_changes WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await.map_err(db)?;
        sqlx::query("SELECT pg_notify('athena_sync_ops', $1)")
            .bind(ops_payload(last_op_id, &touched))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(SequenceOutcome { changes: rows.len() as u64, ops, last_op_id, ran: true, buckets: touched })
    }

    async fn pending_changes(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes").fetch_one(self.pool()).await.map_err(db)
    }

    async fn log_checkpoint(&self, buckets: &[String]) -> StoreResult<LogCheckpoint> {
        // One statement, one snapshot: the log end and the states agree.
        let rows = sqlx::query(
            "SELECT s.last_op_id AS log_end, b.name AS bucket, COALESCE(k.checksum, 0) AS checksum,
                    COALESCE(k.op_count, 0) AS op_count, COALESCE(k.last_op_id, 0) AS last_op_id
             FROM sync_state s CROSS JOIN UNNEST($1::text[]) AS b(name)
             LEFT JOIN sync_buckets k ON k.bucket = b.name WHERE s.id = 1",
        )
        .bind(buckets)
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        let last_op_id = match rows.first() {
            Some(r) => r.try_get("log_end").map_err(db)?,
            None => sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1").fetch_one(self.pool()).await.map_err(db)?,
        };
        let states = rows
            .iter()
            .map(|r| {
                Ok(BucketState {
                    bucket: r.try_get("bucket").map_err(db)?,
                    checksum: r.try_get::<i64, _>("checksum").map_err(db)? as u32,
                    count: r.try_get("op_count").map_err(db)?,
                    last_op_id: r.try_get("last_op_id").map_err(db)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(LogCheckpoint { last_op_id, buckets: states })
    }

    async fn ops_after(&self, bucket: &str, after: i64, until: i64, limit: u32) -> StoreResult<Vec<OplogEntry>> {
        let rows = sqlx::query(
            "SELECT op_id, bucket, op, object_type, object_id, data, checksum, captured_at FROM sync_oplog
             WHERE bucket = $1 AND op_id > $2 AND op_id <= $3 ORDER BY op_id LIMIT $4",
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
        // Serialise per (user, client) so numbers never repeat.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{user}\u{1f}{client_id}"))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let next: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(checkpoint), 0) + 1 FROM sync_write_checkpoints WHERE user_id = $1 AND client_id = $2")
                .bind(user)
                .bind(client_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        sqlx::query(
            "INSERT INTO sync_write_checkpoints (user_id, client_id, checkpoint, op_watermark, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user)
        .bind(client_id)
        .bind(next)
        .bind(op_watermark)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM sync_write_checkpoints WHERE user_id = $1 AND client_id = $2 AND checkpoint < $3")
            .bind(user)
            .bind(client_id)
            .bind(next - 16)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("SELECT pg_notify('athena_sync_wcp', $1)").bind(user).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(next)
    }

    async fn write_checkpoint_at(&self, user: &str, client_id: &str, last_op_id: i64) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MAX(checkpoint) FROM sync_write_checkpoints WHERE user_id = $1 AND client_id = $2 AND op_watermark <= $3",
        )
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
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SEQUENCER_LOCK).execute(&mut *tx).await.map_err(db)?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT rules_version FROM sync_state WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await.map_err(db)?;
        if current.as_deref() == Some(version) {
            // Another process switched first.
            tx.rollback().await.map_err(db)?;
            return Ok(());
        }
        let mut last_op_id: i64 =
            sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1").fetch_one(&mut *tx).await.map_err(db)?;
        let buckets: Vec<String> =
            sqlx::query_scalar("SELECT bucket FROM sync_buckets ORDER BY bucket").fetch_all(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM sync_oplog").execute(&mut *tx).await.map_err(db)?;
        sqlx::query("DELETE FROM sync_buckets").execute(&mut *tx).await.map_err(db)?;
        for bucket in buckets {
            last_op_id += 1;
            sqlx::query("INSERT INTO sync_oplog (op_id, bucket, op, checksum, captured_at) VALUES ($1, $2, 'CLEAR', 0, $3)")
                .bind(last_op_id)
                .bind(&bucket)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("INSERT INTO sync_buckets (bucket, checksum, op_count, last_op_id) VALUES ($1, 0, 1, $2)")
                .bind(&bucket)
                .bind(last_op_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM sync_changes").execute(&mut *tx).await.map_err(db)?;
        for table in tables {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(&mut *tx).await.map_err(db)?;
            if !exists {
                return Err(StoreError::Internal(format!("sync rules name a table that does not exist: {table}").into()));
            }
            let quoted = format!("\"{}\"", table.replace('"', ""));
            sqlx::query(&format!("INSERT INTO sync_changes (table_name, op, new_row) SELECT $1, 'INSERT', to_jsonb(t) FROM {quoted} t"))
                .bind(table)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("UPDATE sync_state SET last_op_id = $1, rules_version = $2 WHERE id = 1")
            .bind(last_op_id)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("SELECT pg_notify('athena_sync_changes', '')").execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn compact_bucket(&self, bucket: &str, until: i64) -> StoreResult<u64> {
        let mut tx = begin_write(self.pool()).await?;
        // Wait for a running sequencer pass: compaction and sequencing both move the log's end.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SEQUENCER_LOCK).execute(&mut *tx).await.map_err(db)?;
        let mut last_op_id: i64 =
            sqlx::query_scalar("SELECT last_op_id FROM sync_state WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await.map_err(db)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_oplog WHERE bucket = $1 AND op_id <= $2")
            .bind(bucket)
            .bind(until)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let live = sqlx::query(
            "SELECT o.object_type, o.object_id, o.data, o.checksum, o.captured_at FROM sync_oplog o
             JOIN (SELECT object_type, object_id, MAX(op_id) AS m FROM sync_oplog
                   WHERE bucket = $1 AND op_id <= $2 AND op IN ('PUT', 'REMOVE') GROUP BY object_type, object_id) n
               ON o.op_id = n.m
             WHERE o.op = 'PUT' ORDER BY o.op_id",
        )
        .bind(bucket)
        .bind(until)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if total < 2 || (live.len() as i64) * 2 > total {
            tx.rollback().await.map_err(db)?;
            return Ok(0);
        }
        let (sum, clear_at): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(checksum), 0)::bigint % 4294967296, MAX(op_id) FROM sync_oplog WHERE bucket = $1 AND op_id <= $2",
        )
        .bind(bucket)
        .bind(until)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM sync_oplog WHERE bucket = $1 AND op_id <= $2")
            .bind(bucket)
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO sync_oplog (op_id, bucket, op, checksum) VALUES ($1, $2, 'CLEAR', $3)")
            .bind(clear_at)
            .bind(bucket)
            .bind(sum)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for row in &live {
            last_op_id += 1;
            sqlx::query(
                "INSERT INTO sync_oplog (op_id, bucket, op, object_type, object_id, data, checksum, captured_at) VALUES ($1, $2, 'PUT', $3, $4, $5, $6, $7)",
            )
            .bind(last_op_id)
            .bind(bucket)
            .bind(row.try_get::<Option<String>, _>("object_type").map_err(db)?)
            .bind(row.try_get::<Option<String>, _>("object_id").map_err(db)?)
            .bind(row.try_get::<Option<String>, _>("data").map_err(db)?)
            .bind(row.try_get::<i64, _>("checksum").map_err(db)?)
            .bind(row.try_get::<Option<DateTime<Utc>>, _>("captured_at").map_err(db)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        let (count, later): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(checksum), 0)::bigint % 4294967296 FROM sync_oplog WHERE bucket = $1 AND op_id > $2",
        )
        .bind(bucket)
        .bind(clear_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE sync_buckets SET checksum = $1, op_count = $2, last_op_id = $3 WHERE bucket = $4")
            .bind((sum + later) % U32)
            .bind(1 + count)
            .bind(last_op_id.max(clear_at))
            .bind(bucket)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("UPDATE sync_state SET last_op_id = $1 WHERE id = 1").bind(last_op_id).execute(&mut *tx).await.map_err(db)?;
        sqlx::query("SELECT pg_notify('athena_sync_ops', $1)")
            .bind(ops_payload(last_op_id, &[bucket.to_string()]))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((total - live.len() as i64).max(0) as u64)
    }

    async fn subscribe(&self) -> StoreResult<Option<SyncEvents>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.pool()).await.map_err(db)?;
        listener.listen_all(["athena_sync_changes", "athena_sync_ops", "athena_sync_wcp"]).await.map_err(db)?;
        // The listener reconnects by itself after a dropped connection; events missed meanwhile
        // are covered by the sequencer's periodic pass and streams' periodic checks.
        let events = futures::stream::unfold(listener, |mut listener| async move {
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        let event = match n.channel() {
                            "athena_sync_changes" => SyncEvent::ChangesCaptured,
                            "athena_sync_ops" => match parse_ops_payload(n.payload()) {
                                Some((id, buckets)) => SyncEvent::OpsAdvanced(id, buckets),
                                None => continue,
                            },
                            "athena_sync_wcp" => SyncEvent::WriteCheckpoint(n.payload().to_string()),
                            _ => continue,
                        };
                        return Some((event, listener));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sync listener error; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(Some(Box::pin(events)))
    }

    async fn buckets_to_compact(&self, min_ops: i64, limit: u32) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT bucket FROM sync_buckets WHERE op_count >= $1 ORDER BY op_count DESC LIMIT $2")
            .bind(min_ops)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(db)
    }
}
