//! Writes from clients: the PowerSync CRUD queue replayed through `POST /sync/upload`
//! (`DATA-MODEL.md`, "Writes from clients").
//!
//! The rules are data: [`TABLES`] says, per synced table, which client columns exist and their
//! kinds and bounds, which are writable, the conflict policy, the uniqueness key, what a delete does
//! and which columns reference other rows. An operation is parsed against its table's spec into an
//! [`athena_store::ClientWrite`] (never trusting `id`/`user_id` from the client) and applied by the
//! store in its own transaction. Permanent refusals are answered per operation and recorded; a
//! failure worth retrying (database unavailable or locked) fails the whole request, so the client's
//! SDK sends the batch again — which is harmless, as every write is idempotent.

use athena_store::{
    ClientOp, ClientValue, ClientWrite, ConflictPolicy, DeleteRule, Reference, RejectReason, SyncTable, UploadRejection, WriteOutcome,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::{App, AppError, AppResult};

/// Most operations one request may carry.
pub const MAX_SYNC_OPERATIONS: usize = 10_000;
/// Longest `table`, `op` or `id` text accepted (longer ones are refused, and echoed truncated).
const MAX_NAME_CHARS: usize = 64;
/// How much of a refused operation's `data` is kept with its rejection record.
const MAX_RECORDED_PAYLOAD: usize = 8 * 1024;

/// One entry of a client's CRUD queue, as received.
#[derive(Clone, Debug)]
pub struct SyncOperation {
    pub table: String,
    /// `PUT`, `PATCH` or `DELETE`.
    pub op: String,
    pub id: String,
    /// The client columns: the whole row for `PUT`, the changed ones for `PATCH`.
    pub data: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncUploadResult {
    /// Operations applied (including writes that changed nothing because a newer one was stored).
    pub processed: usize,
    /// Operations refused for good, in request order.
    pub errors: Vec<SyncOpError>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncOpError {
    pub id: String,
    pub code: &'static str,
    pub message: String,
}

// ---------- the rules, as data ----------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    /// A UUID, stored in canonical lowercase form (ids of other rows).
    Uuid,
    Int,
    Real,
    /// A real number in 0..=1.
    Fraction,
    /// 0/1 or true/false.
    Bool,
    /// ISO-8601 text; UTC assumed when it names no offset.
    Timestamp,
    /// JSON, stored as its text (clients send the text, or the value itself).
    Json,
}

#[derive(Clone, Copy, Debug)]
struct Column {
    name: &'static str,
    kind: Kind,
    writable: bool,
    nullable: bool,
    /// For text kinds: the most characters accepted.
    max_chars: usize,
    /// Set to the server's time when a row is inserted without it.
    default_now: bool,
}

const fn col(name: &'static str, kind: Kind, max_chars: usize) -> Column {
    Column { name, kind, writable: true, nullable: true, max_chars, default_now: false }
}
const fn text(name: &'static str, max_chars: usize) -> Column {
    col(name, Kind::Text, max_chars)
}
const fn uuid(name: &'static str) -> Column {
    col(name, Kind::Uuid, 36)
}
const fn int(name: &'static str) -> Column {
    col(name, Kind::Int, 0)
}
const fn real(name: &'static str) -> Column {
    col(name, Kind::Real, 0)
}
const fn flag(name: &'static str) -> Column {
    col(name, Kind::Bool, 0)
}
const fn time(name: &'static str) -> Column {
    col(name, Kind::Timestamp, 0)
}
const fn json(name: &'static str, max_chars: usize) -> Column {
    col(name, Kind::Json, max_chars)
}
const fn read_only(name: &'static str) -> Column {
    Column { writable: false, ..col(name, Kind::Text, 0) }
}

impl Column {
    const fn not_null(self) -> Self {
        Self { nullable: false, ..self }
    }
    const fn now_on_insert(self) -> Self {
        Self { default_now: true, nullable: false, ..self }
    }
}

const DEVICE_ID: Column = text("device_id", 64);
const CFI: usize = 4096;
const IS_DELETED: Column = flag("is_deleted").not_null();
const CREATED_AT: Column = time("created_at").now_on_insert();
const UPDATED_AT: Column = time("updated_at").now_on_insert();
const BOOK: Reference = Reference { column: "book_id", table: SyncTable::Books };

#[derive(Debug)]
struct TableSpec {
    table: SyncTable,
    /// Every client column (client names; for the synced tables written here they equal the
    /// server's). `id` and `user_id` are not listed: they are never taken from the client.
    columns: &'static [Column],
    policy: ConflictPolicy,
    unique_key: Option<&'static [&'static str]>,
    delete: DeleteRule,
    references: &'static [Reference],
    delete_cascade: &'static [Reference],
    may_insert: bool,
    /// Columns a `PUT` must carry (it is the whole row).
    required_on_put: &'static [&'static str],
    /// Conflict-copy tables: the writable columns a copy takes over.
    copy_columns: &'static [&'static str],
}

impl TableSpec {
    fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    /// Tables whose rule compares times need the client's `updated_at` on every write.
    fn needs_stamp(&self) -> bool {
        self.policy != ConflictPolicy::ColumnMerge
    }
}

const TABLES: &[TableSpec] = &[
    TableSpec {
        table: SyncTable::Books,
        columns: &[
            text("title", 500).not_null(),
            text("author", 500),
            time("deleted_at"),
            read_only("cover_url"),
            read_only("file_type"),
            read_only("file_size"),
            read_only("original_content_sha256"),
            read_only("content_sha256"),
            read_only("storage_key"),
            read_only("metadata_confirmed"),
            read_only("is_digitalized"),
            read_only("initial_digitalization_confidence"),
            read_only("page_count"),
            read_only("ocr_status"),
            read_only("conversion_status"),
            read_only("converted_epub_key"),
            read_only("created_at"),
            read_only("updated_at"),
        ],
        policy: ConflictPolicy::ColumnMerge,
        unique_key: None,
        delete: DeleteRule::SoftDeletedAt,
        references: &[],
        delete_cascade: &[],
        may_insert: false,
        required_on_put: &[],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::ReadingProgress,
        columns: &[
            uuid("book_id").not_null(),
            DEVICE_ID,
            col("progress", Kind::Fraction, 0).not_null(),
            text("last_position", CFI),
            json("last_location", CFI),
            time("finished_at"),
            time("updated_at").not_null(),
            int("tts_chapter_index"),
            int("tts_position_ms"),
            time("tts_last_played_at"),
        ],
        policy: ConflictPolicy::LastWriterWins,
        unique_key: Some(&["book_id"]),
        delete: DeleteRule::Remove,
        references: &[BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &["book_id"],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::ReadingSessions,
        columns: &[uuid("book_id").not_null(), DEVICE_ID, flag("is_active").not_null(), int("total_ms").not_null(), CREATED_AT, UPDATED_AT],
        policy: ConflictPolicy::ColumnMerge,
        unique_key: None,
        delete: DeleteRule::Remove,
        references: &[BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &["book_id"],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::Notes,
        columns: &[
            uuid("book_id").not_null(),
            DEVICE_ID,
            text("content", 100_000).not_null(),
            int("page_number"),
            text("position_cfi", CFI),
            text("color", 64),
            uuid("conflict_of"),
            IS_DELETED,
            time("deleted_at"),
            CREATED_AT,
            UPDATED_AT,
        ],
        policy: ConflictPolicy::ConflictCopy,
        unique_key: None,
        delete: DeleteRule::SoftFlag,
        references: &[BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &["book_id"],
        copy_columns: &[
            "book_id",
            "device_id",
            "content",
            "page_number",
            "position_cfi",
            "color",
            "is_deleted",
            "deleted_at",
            "created_at",
            "updated_at",
        ],
    },
    TableSpec {
        table: SyncTable::Highlights,
        columns: &[
            uuid("book_id").not_null(),
            DEVICE_ID,
            text("text", 100_000).not_null(),
            int("page_number"),
            text("position_start_cfi", CFI),
            text("position_end_cfi", CFI),
            text("color", 64),
            uuid("conflict_of"),
            IS_DELETED,
            time("deleted_at"),
            CREATED_AT,
            UPDATED_AT,
        ],
        policy: ConflictPolicy::ConflictCopy,
        unique_key: None,
        delete: DeleteRule::SoftFlag,
        references: &[BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &["book_id"],
        copy_columns: &[
            "book_id",
            "device_id",
            "text",
            "page_number",
            "position_start_cfi",
            "position_end_cfi",
            "color",
            "is_deleted",
            "deleted_at",
            "created_at",
            "updated_at",
        ],
    },
    TableSpec {
        table: SyncTable::Bookmarks,
        columns: &[
            uuid("book_id").not_null(),
            DEVICE_ID,
            text("title", 500),
            int("page_number"),
            text("position_cfi", CFI),
            IS_DELETED,
            time("deleted_at"),
            CREATED_AT,
            UPDATED_AT,
        ],
        policy: ConflictPolicy::ColumnMerge,
        unique_key: None,
        delete: DeleteRule::SoftFlag,
        references: &[BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &["book_id"],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::Shelves,
        columns: &[
            text("name", 200).not_null(),
            text("description", 2000),
            text("cover_url", 2048),
            int("sort_order").not_null(),
            IS_DELETED,
            time("deleted_at"),
            CREATED_AT,
            UPDATED_AT,
        ],
        policy: ConflictPolicy::ColumnMerge,
        unique_key: None,
        delete: DeleteRule::SoftFlag,
        references: &[],
        // A deleted shelf's items go, as with `DELETE /shelves/{id}`.
        delete_cascade: &[Reference { column: "shelf_id", table: SyncTable::ShelfBooks }],
        may_insert: true,
        required_on_put: &["name"],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::ShelfBooks,
        columns: &[uuid("shelf_id").not_null(), uuid("book_id").not_null(), int("sort_order").not_null(), time("added_at").now_on_insert()],
        policy: ConflictPolicy::ColumnMerge,
        unique_key: Some(&["shelf_id", "book_id"]),
        delete: DeleteRule::Remove,
        references: &[Reference { column: "shelf_id", table: SyncTable::Shelves }, BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &["shelf_id", "book_id"],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::UserSettings,
        columns: &[DEVICE_ID, json("settings_json", 64 * 1024).not_null(), time("updated_at").not_null()],
        policy: ConflictPolicy::LastWriterWins,
        unique_key: Some(&[]),
        delete: DeleteRule::Remove,
        references: &[],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &[],
        copy_columns: &[],
    },
    TableSpec {
        table: SyncTable::ReadingSettings,
        columns: &[
            uuid("book_id"),
            DEVICE_ID,
            text("theme_id", 64),
            text("background_color", 64),
            text("text_color", 64),
            text("font_family", 200),
            real("font_size"),
            int("font_weight"),
            real("line_height"),
            real("paragraph_spacing"),
            real("margin_horizontal"),
            text("text_align", 32),
            flag("hyphenation"),
            IS_DELETED,
            time("deleted_at"),
            CREATED_AT,
            time("updated_at").not_null(),
        ],
        policy: ConflictPolicy::LastWriterWins,
        // `book_id` NULL is the user's global row.
        unique_key: Some(&["book_id"]),
        delete: DeleteRule::Remove,
        references: &[BOOK],
        delete_cascade: &[],
        may_insert: true,
        required_on_put: &[],
        copy_columns: &[],
    },
];

fn spec(table: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|s| s.table.name() == table)
}

// ---------- the use case ----------

/// A permanent refusal of one operation.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal { code: "validation_error", message: message.into() }
}

impl App {
    /// Applies a client's queued operations in order, each on its own. Answers which were refused
    /// (and records them); fails as a whole only when the client should retry the batch.
    pub async fn sync_upload(&self, who: &Principal, operations: Vec<SyncOperation>) -> AppResult<SyncUploadResult> {
        if !self.config.powersync_upload_enabled {
            return Err(AppError::Forbidden(
                "client uploads through sync are disabled on this server (POWERSYNC_UPLOAD_ENABLED=false)".into(),
            ));
        }
        if operations.len() > MAX_SYNC_OPERATIONS {
            return Err(AppError::validation(
                "operations",
                format!(
                    "at most {MAX_SYNC_OPERATIONS} operations per request (got {}); send the queue in smaller batches",
                    operations.len()
                ),
            ));
        }
        let read_only = self.over_quota(who).await?;
        let mut result = SyncUploadResult::default();
        // Notes and highlights whose rows changed, to bring the search index up to date afterwards.
        let mut annotations: Vec<(SyncTable, String)> = Vec::new();
        for operation in &operations {
            let now = self.clock.now();
            let refusal = if read_only {
                Some(Refusal {
                    code: "readonly_mode_quota_exceeded",
                    message: "the account is over its storage quota and is read-only; free space to make changes".into(),
                })
            } else {
                match parse_operation(operation, now) {
                    Err(refusal) => Some(refusal),
                    Ok(write) => match self.store.apply_client_write(&who.user_id, write).await {
                        Ok(WriteOutcome::Rejected { reason, message }) => Some(Refusal {
                            code: match reason {
                                RejectReason::NotFound => "not_found",
                                RejectReason::Invalid => "validation_error",
                            },
                            message,
                        }),
                        Ok(outcome) => {
                            tracing::debug!(table = %operation.table, ?outcome, "client write applied");
                            if let Some(table) = annotation_table(&operation.table) {
                                annotations.push((table, operation.id.clone()));
                                if let WriteOutcome::ConflictCopy { copy_id } = &outcome {
                                    annotations.push((table, copy_id.clone()));
                                }
                            }
                            None
                        }
                        Err(e) => return Err(e.into()),
                    },
                }
            };
            match refusal {
                None => result.processed += 1,
                Some(refusal) => {
                    self.record_refusal(who, operation, &refusal, now).await?;
                    result.errors.push(SyncOpError { id: bounded(&operation.id), code: refusal.code, message: refusal.message });
                }
            }
        }
        if !result.errors.is_empty() {
            tracing::info!(user = %who.user_id, refused = result.errors.len(), processed = result.processed, "sync upload refused operations");
        }
        self.index_annotations(who, annotations).await;
        Ok(result)
    }

    /// Over either quota, an account is read-only (the same limits that stop new uploads).
    async fn over_quota(&self, who: &Principal) -> AppResult<bool> {
        let usage = self.store.usage(&who.user_id).await?;
        let limits = &self.config.limits;
        Ok(usage.books as u64 >= limits.quota_books || usage.bytes as u64 >= limits.quota_bytes)
    }

    async fn record_refusal(&self, who: &Principal, op: &SyncOperation, refusal: &Refusal, now: DateTime<Utc>) -> AppResult<()> {
        let payload = op.data.as_ref().map(|d| truncate(&d.to_string(), MAX_RECORDED_PAYLOAD));
        self.store
            .record_upload_rejection(UploadRejection {
                user_id: who.user_id.clone(),
                table: bounded(&op.table),
                row_id: bounded(&op.id),
                op: bounded(&op.op),
                code: refusal.code.to_string(),
                message: refusal.message.clone(),
                payload,
                created_at: now,
            })
            .await?;
        Ok(())
    }
}

/// Parses one operation against its table's spec.
fn parse_operation(operation: &SyncOperation, now: DateTime<Utc>) -> Result<ClientWrite, Refusal> {
    let spec = spec(&operation.table).ok_or_else(|| invalid(format!("unknown table {:?}", bounded(&operation.table))))?;
    let op = match operation.op.to_ascii_uppercase().as_str() {
        "PUT" => ClientOp::Put,
        "PATCH" => ClientOp::Patch,
        "DELETE" => ClientOp::Delete,
        _ => return Err(invalid(format!("unknown op {:?} (PUT, PATCH or DELETE)", bounded(&operation.op)))),
    };
    let id = canonical_uuid(&operation.id).ok_or_else(|| invalid("id must be a UUID"))?;
    let mut values = Vec::new();
    if op != ClientOp::Delete {
        let data = match &operation.data {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(invalid("data must be an object of columns")),
        };
        // In the spec's order, so equal writes build equal statements.
        for column in spec.columns {
            if let Some(raw) = data.get(column.name) {
                if !column.writable {
                    return Err(invalid(format!("column {} of {} cannot be written by clients", column.name, spec.table.name())));
                }
                values.push((column.name, parse_value(column, raw)?));
            }
        }
        if let Some(unknown) = data.keys().find(|k| spec.column(k).is_none() && !matches!(k.as_str(), "id" | "user_id")) {
            return Err(invalid(format!("unknown column {:?} of {}", bounded(unknown), spec.table.name())));
        }
        if op == ClientOp::Put {
            if let Some(missing) = spec.required_on_put.iter().find(|c| !values.iter().any(|(v, _)| v == *c)) {
                return Err(invalid(format!("{missing} is required")));
            }
        }
        if spec.needs_stamp() && !values.iter().any(|(c, _)| *c == "updated_at") {
            return Err(invalid(format!("updated_at is required: changes to {} are ordered by it", spec.table.name())));
        }
    }
    let write_stamp = values.iter().find_map(|(c, v)| match (c, v) {
        (&"updated_at", ClientValue::Timestamp(t)) => Some(*t),
        _ => None,
    });
    let device = values.iter().find_map(|(c, v)| match (c, v) {
        (&"device_id", ClientValue::Text(d)) => Some(d.as_str()),
        _ => None,
    });
    let conflict_copy_id = match (spec.policy, write_stamp) {
        (ConflictPolicy::ConflictCopy, Some(at)) => Some(conflict_copy_id(&id, device.unwrap_or(""), at)),
        _ => None,
    };
    let insert_defaults = spec.columns.iter().filter(|c| c.default_now).map(|c| (c.name, ClientValue::Timestamp(now))).collect();
    Ok(ClientWrite {
        table: spec.table,
        op,
        id,
        values,
        insert_defaults,
        columns: spec.copy_columns,
        policy: spec.policy,
        unique_key: spec.unique_key,
        delete: spec.delete,
        references: spec.references,
        delete_cascade: spec.delete_cascade,
        may_insert: spec.may_insert,
        conflict_copy_id,
        now,
    })
}

fn parse_value(column: &Column, raw: &Value) -> Result<ClientValue, Refusal> {
    let name = column.name;
    let wrong = |what: &str| invalid(format!("{name} must be {what}"));
    if raw.is_null() {
        return if column.nullable { Ok(ClientValue::Null) } else { Err(invalid(format!("{name} must not be null"))) };
    }
    let value = match column.kind {
        Kind::Text => ClientValue::Text(checked_text(column, raw.as_str().ok_or_else(|| wrong("text"))?)?),
        Kind::Uuid => ClientValue::Text(raw.as_str().and_then(canonical_uuid).ok_or_else(|| wrong("a UUID"))?),
        Kind::Int => ClientValue::Int(integer(raw).ok_or_else(|| wrong("an integer"))?),
        Kind::Real | Kind::Fraction => {
            let x = raw.as_f64().filter(|x| x.is_finite()).ok_or_else(|| wrong("a number"))?;
            if column.kind == Kind::Fraction && !(0.0..=1.0).contains(&x) {
                return Err(wrong("between 0 and 1"));
            }
            ClientValue::Real(x)
        }
        Kind::Bool => ClientValue::Bool(boolean(raw).ok_or_else(|| wrong("0/1 or true/false"))?),
        Kind::Timestamp => ClientValue::Timestamp(raw.as_str().and_then(timestamp).ok_or_else(|| wrong("an ISO-8601 timestamp"))?),
        Kind::Json => {
            let text = match raw {
                Value::String(s) => {
                    serde_json::from_str::<Value>(s).map_err(|_| wrong("JSON text"))?;
                    s.clone()
                }
                other => other.to_string(),
            };
            ClientValue::Text(checked_text(column, &text)?)
        }
    };
    Ok(value)
}

fn checked_text(column: &Column, s: &str) -> Result<String, Refusal> {
    if s.chars().count() > column.max_chars {
        return Err(invalid(format!("{} must be at most {} characters", column.name, column.max_chars)));
    }
    if s.contains('\0') {
        return Err(invalid(format!("{} must not contain NUL characters", column.name)));
    }
    Ok(s.to_string())
}

fn integer(raw: &Value) -> Option<i64> {
    raw.as_i64().or_else(|| raw.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15).map(|x| x as i64))
}

fn boolean(raw: &Value) -> Option<bool> {
    match raw {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.as_str() {
            "0" | "false" => Some(false),
            "1" | "true" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// ISO-8601 with an offset, or without one (UTC), `T` or space separated; cut to microseconds,
/// the precision both backends keep, so a stored time compares equal to the one sent again.
fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    if s.len() > 64 {
        return None;
    }
    let parsed = DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok().or_else(|| {
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f%#z"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok().map(|n| n.and_utc()))
    })?;
    DateTime::from_timestamp_micros(parsed.timestamp_micros())
}

fn canonical_uuid(s: &str) -> Option<String> {
    (s.len() <= MAX_NAME_CHARS).then(|| uuid::Uuid::parse_str(s).ok()).flatten().map(|u| u.hyphenated().to_string())
}

/// The id of the conflict copy an edit makes: a UUID (version 8, name-based on SHA-256) of the
/// original id, the device (`""` when the edit names none) and the edit's time (microseconds), so
/// a retried upload finds the copy it made.
pub fn conflict_copy_id(original: &str, device: &str, at: DateTime<Utc>) -> String {
    let mut hasher = Sha256::new();
    for part in ["athena-conflict-copy", original, device, &at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

fn bounded(s: &str) -> String {
    truncate(s, MAX_NAME_CHARS)
}

fn truncate(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn annotation_table(table: &str) -> Option<SyncTable> {
    match table {
        "notes" => Some(SyncTable::Notes),
        "highlights" => Some(SyncTable::Highlights),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(table: &str, op: &str, data: Value) -> SyncOperation {
        SyncOperation { table: table.into(), op: op.into(), id: "0191b1a2-0000-7000-8000-000000000001".into(), data: Some(data) }
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn every_synced_table_has_a_spec_and_copy_columns_are_writable() {
        for table in SyncTable::ALL {
            let s = spec(table.name()).unwrap_or_else(|| panic!("{table:?} has no spec"));
            for c in s.copy_columns.iter().chain(s.required_on_put).chain(s.unique_key.unwrap_or(&[])) {
                assert!(s.column(c).is_some_and(|c| c.writable), "{table:?}.{c}");
            }
            for r in s.references {
                assert!(s.column(r.column).is_some(), "{table:?}.{}", r.column);
            }
            assert_eq!(s.policy == ConflictPolicy::ConflictCopy, !s.copy_columns.is_empty(), "{table:?}");
        }
    }

    #[test]
    fn values_are_typed_and_bounded() {
        let w = parse_operation(
            &op(
                "reading_progress",
                "PUT",
                json!({"book_id": "0191B1A2-0000-7000-8000-0000000000AA", "progress": 0.5, "updated_at": "2024-05-01 10:00:00.1234567",
                        "tts_chapter_index": 3.0, "last_location": {"current": 3, "total": 10}, "user_id": "someone-else", "id": "x"}),
            ),
            now(),
        )
        .expect("valid");
        assert_eq!(w.value("book_id"), Some(&ClientValue::Text("0191b1a2-0000-7000-8000-0000000000aa".into())));
        assert_eq!(w.value("tts_chapter_index"), Some(&ClientValue::Int(3)));
        assert_eq!(w.value("last_location"), Some(&ClientValue::Text("{\"current\":3,\"total\":10}".into())));
        assert_eq!(w.client_updated_at().unwrap().to_rfc3339(), "2024-05-01T10:00:00.123456+00:00");
        assert!(w.value("user_id").is_none());

        let refused = |o: SyncOperation| parse_operation(&o, now()).expect_err("refused").message;
        assert!(refused(op("nope", "PUT", json!({}))).contains("unknown table"));
        assert!(refused(op("notes", "UPSERT", json!({}))).contains("unknown op"));
        assert!(refused(op("notes", "PATCH", json!({"bogus": 1, "updated_at": "2024-01-01T00:00:00Z"}))).contains("unknown column"));
        assert!(refused(op("books", "PATCH", json!({"file_size": 1}))).contains("cannot be written"));
        assert!(refused(op("reading_progress", "PATCH", json!({"progress": 2, "updated_at": "2024-01-01T00:00:00Z"})))
            .contains("between 0 and 1"));
        assert!(refused(op("reading_progress", "PATCH", json!({"progress": 0.2}))).contains("updated_at is required"));
        assert!(refused(op("notes", "PUT", json!({"content": "x", "updated_at": "2024-01-01T00:00:00Z"}))).contains("book_id is required"));
        assert!(refused(op("bookmarks", "PATCH", json!({"device_id": "d".repeat(65)}))).contains("at most 64"));
        assert!(refused(op("bookmarks", "PATCH", json!({"is_deleted": 2}))).contains("0/1"));
        assert!(refused(op("shelves", "PATCH", json!({"name": null}))).contains("must not be null"));
        assert!(
            refused(op("user_settings", "PATCH", json!({"settings_json": "{oops", "updated_at": "2024-01-01T00:00:00Z"}))).contains("JSON")
        );
        let mut bad_id = op("notes", "DELETE", Value::Null);
        bad_id.id = "not-a-uuid".into();
        assert!(refused(bad_id).contains("UUID"));
    }

    #[test]
    fn booleans_and_timestamps_in_client_forms() {
        assert_eq!(boolean(&json!(1)), Some(true));
        assert_eq!(boolean(&json!(false)), Some(false));
        assert_eq!(boolean(&json!("0")), Some(false));
        assert_eq!(boolean(&json!(0.5)), None);
        assert!(timestamp("2024-05-01T10:00:00+02:00").is_some_and(|t| t.to_rfc3339() == "2024-05-01T08:00:00+00:00"));
        assert!(timestamp("2024-05-01T10:00:00").is_some());
        assert!(timestamp("yesterday").is_none());
    }

    #[test]
    fn conflict_copy_ids_are_deterministic_uuids() {
        let at = timestamp("2024-05-01T10:00:00Z").unwrap();
        let a = conflict_copy_id("0191b1a2-0000-7000-8000-000000000001", "phone", at);
        assert_eq!(a, conflict_copy_id("0191b1a2-0000-7000-8000-000000000001", "phone", at));
        assert_ne!(a, conflict_copy_id("0191b1a2-0000-7000-8000-000000000001", "tablet", at));
        assert_eq!(canonical_uuid(&a), Some(a.clone()));
    }
}
