//! Storage for the sync service: captured changes, the operation log, bucket checksums, write
//! checkpoints. Separate from [`crate::Store`] because only the sync role uses it; both backends
//! implement it next to their `Store`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

/// One captured change to a synced table, as the trigger recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedChange {
    pub id: i64,
    pub table: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub op: String,
    /// The row before the change (UPDATE, DELETE), every column as the database stored it.
    pub old_row: Option<serde_json::Map<String, serde_json::Value>>,
    /// The row after the change (INSERT, UPDATE).
    pub new_row: Option<serde_json::Map<String, serde_json::Value>>,
    pub captured_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Put,
    Remove,
    Move,
    Clear,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Remove => "REMOVE",
            Self::Move => "MOVE",
            Self::Clear => "CLEAR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PUT" => Some(Self::Put),
            "REMOVE" => Some(Self::Remove),
            "MOVE" => Some(Self::Move),
            "CLEAR" => Some(Self::Clear),
            _ => None,
        }
    }
}

/// An operation to append to a bucket; the store gives it its op id.
#[derive(Clone, Debug, PartialEq)]
pub struct OpDraft {
    pub bucket: String,
    pub op: OpKind,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// The row as the client sees it, as JSON text (PUT only).
    pub data: Option<String>,
    /// Any 32-bit value fixed for this op; buckets sum them (wrapping).
    pub checksum: u32,
}

/// An operation in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct OplogEntry {
    pub op_id: i64,
    pub bucket: String,
    pub op: OpKind,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub data: Option<String>,
    pub checksum: u32,
    pub captured_at: Option<DateTime<Utc>>,
}

/// A bucket's state at the log's current end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketState {
    pub bucket: String,
    pub checksum: u32,
    pub count: i64,
    /// The newest op id in the bucket (0 for an empty or unknown bucket).
    pub last_op_id: i64,
}

/// A consistent view: the log's last op id and the given buckets' states at exactly that op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub last_op_id: i64,
    pub buckets: Vec<BucketState>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequenceOutcome {
    pub changes: u64,
    pub ops: u64,
    pub last_op_id: i64,
    /// False when another process held the sequencer lock; nothing was done.
    pub ran: bool,
    /// The buckets that received ops, so only their streams need to look.
    pub buckets: Vec<String>,
}

/// Turns one captured change into operations (pure: the sync rules).
pub type Evaluate<'a> = &'a (dyn Fn(&CapturedChange) -> Vec<OpDraft> + Send + Sync);

/// Evaluates `items` chunk by chunk and writes each chunk's result with `write` while the next
/// chunk is evaluated. The backends' writes run elsewhere (SQLite's worker thread, a PostgreSQL
/// backend process), so a sequencing pass keeps two cores busy instead of alternating.
pub async fn evaluate_while_writing<T, O: Sync, C: Send>(
    items: &[T],
    chunk: usize,
    conn: &mut C,
    mut evaluate: impl FnMut(&[T]) -> StoreResult<O>,
    write: for<'c> fn(&'c mut C, &'c O) -> futures::future::BoxFuture<'c, StoreResult<()>>,
) -> StoreResult<()> {
    let mut ready: Option<O> = None;
    for part in items.chunks(chunk.max(1)) {
        let next = match ready.take() {
            None => evaluate(part)?,
            Some(done) => {
                let (written, next) = futures::join!(write(conn, &done), async { evaluate(part) });
                written?;
                next?
            }
        };
        ready = Some(next);
    }
    if let Some(done) = ready {
        write(conn, &done).await?;
    }
    Ok(())
}

/// What other processes sharing the database announce (PostgreSQL `LISTEN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncEvent {
    /// Changes were captured and wait for the sequencer.
    ChangesCaptured,
    /// The log grew to this op id; the buckets that changed, when known.
    OpsAdvanced(i64, Option<Vec<String>>),
    /// A write checkpoint was created for this user.
    WriteCheckpoint(String),
}

pub type SyncEvents = futures::stream::BoxStream<'static, SyncEvent>;

#[async_trait]
pub trait SyncStore: Send + Sync + 'static {
    /// One sequencing pass, in one transaction, by one process at a time: reads up to `limit`
    /// captured changes in capture order, appends `evaluate`'s operations with consecutive op ids
    /// after the log's end, updates bucket checksums and counts, and deletes the changes it read.
    async fn sequence(&self, limit: u32, evaluate: Evaluate<'_>) -> StoreResult<SequenceOutcome>;
    /// Changes captured but not sequenced yet.
    async fn pending_changes(&self) -> StoreResult<i64>;
    /// The given buckets' states and the log's last op id, read consistently.
    async fn log_checkpoint(&self, buckets: &[String]) -> StoreResult<LogCheckpoint>;
    /// Ops of `bucket` with `after < op_id <= until`, ascending, at most `limit`.
    async fn ops_after(&self, bucket: &str, after: i64, until: i64, limit: u32) -> StoreResult<Vec<OplogEntry>>;
    /// Records a write checkpoint for (user, client): the next number for that pair, standing for
    /// everything in the log up to `op_watermark`. Returns the number.
    async fn create_write_checkpoint(&self, user: &str, client_id: &str, op_watermark: i64, now: DateTime<Utc>) -> StoreResult<i64>;
    /// The newest write checkpoint of (user, client) whose watermark is at most `last_op_id`.
    async fn write_checkpoint_at(&self, user: &str, client_id: &str, last_op_id: i64) -> StoreResult<Option<i64>>;
    /// The sync rules version the log was built with (None on a new database).
    async fn rules_version(&self) -> StoreResult<Option<String>>;
    /// Switches the log to new rules in one transaction: a CLEAR (checksum 0) at the end of every
    /// known bucket, bucket states reset to that CLEAR, every row of `tables` captured again as an
    /// INSERT, and the version recorded. Clients then re-download under the new rules.
    async fn reset_for_rules(&self, version: &str, tables: &[String], now: DateTime<Utc>) -> StoreResult<()>;
    /// Rewrites superseded PUT/REMOVE ops of one bucket (older ops for an object that has a newer
    /// op) as MOVE ops (same checksum, no data), up to `until`. Returns how many were rewritten.
    async fn compact_bucket(&self, bucket: &str, until: i64) -> StoreResult<u64>;
    /// Events from other processes on the same database; `None` when the backend has no
    /// cross-process channel (SQLite: one process owns the file, and captured changes are polled).
    async fn subscribe(&self) -> StoreResult<Option<SyncEvents>>;
    /// Buckets with at least `min_ops` ops, for the compactor.
    async fn buckets_to_compact(&self, min_ops: i64, limit: u32) -> StoreResult<Vec<String>>;
}
