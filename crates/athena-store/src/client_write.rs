//! Writes replayed from clients' CRUD queues (`POST /sync/upload`), as the store sees them: the
//! caller (the use case) has already validated the table, the columns and their values, and says
//! which conflict rule, uniqueness key, delete rule and references apply. The backend applies one
//! [`ClientWrite`] in one transaction: read the current row, decide by the policy, write.

use athena_domain::UserId;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The synced tables of `DATA-MODEL.md`. Client and server table names are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncTable {
    Books,
    ReadingProgress,
    ReadingSessions,
    Notes,
    Highlights,
    Bookmarks,
    Shelves,
    ShelfBooks,
    UserSettings,
    ReadingSettings,
}

impl SyncTable {
    pub const ALL: [SyncTable; 10] = [
        Self::Books,
        Self::ReadingProgress,
        Self::ReadingSessions,
        Self::Notes,
        Self::Highlights,
        Self::Bookmarks,
        Self::Shelves,
        Self::ShelfBooks,
        Self::UserSettings,
        Self::ReadingSettings,
    ];

    /// The table's name (SQL and wire).
    pub fn name(self) -> &'static str {
        match self {
            Self::Books => "books",
            Self::ReadingProgress => "reading_progress",
            Self::ReadingSessions => "reading_sessions",
            Self::Notes => "notes",
            Self::Highlights => "highlights",
            Self::Bookmarks => "bookmarks",
            Self::Shelves => "shelves",
            Self::ShelfBooks => "shelf_books",
            Self::UserSettings => "user_settings",
            Self::ReadingSettings => "reading_settings",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Schema fact: the table has a `version` column that every change bumps.
    pub fn has_version(self) -> bool {
        matches!(self, Self::Books | Self::Shelves)
    }

    /// Schema fact: the table has an `updated_at` column.
    pub fn has_updated_at(self) -> bool {
        !matches!(self, Self::ShelfBooks)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClientOp {
    /// Insert, or replace the columns it carries.
    Put,
    /// Change only the columns it carries.
    Patch,
    Delete,
}

impl ClientOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// A validated, typed column value. JSON columns arrive as their text.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientValue {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
}

/// How concurrent edits of one row from several devices are reconciled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Last writer wins by the client's `updated_at`: a write stamped earlier than the stored row
    /// changes nothing.
    LastWriterWins,
    /// The newer edit wins the row; an edit stamped earlier than the stored row, which another
    /// device (`device_id`) wrote, is kept as a new row with `conflict_of` = the original id.
    ConflictCopy,
    /// Column-level merge: a write changes exactly the columns it carries.
    ColumnMerge,
}

/// What `DELETE` does to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteRule {
    /// Sets `deleted_at` (books: restorable from the trash).
    SoftDeletedAt,
    /// Sets `is_deleted` and `deleted_at`.
    SoftFlag,
    /// Removes the row.
    Remove,
}

/// A column holding the id of another row, which must be the same user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    pub column: &'static str,
    pub table: SyncTable,
}

/// One client operation, validated and ready to apply.
#[derive(Clone, Debug)]
pub struct ClientWrite {
    pub table: SyncTable,
    pub op: ClientOp,
    /// The row id the client used (a canonical UUID). It may be mapped to an existing row's id
    /// when an earlier write was merged by the uniqueness key.
    pub id: String,
    /// The columns the client sent (server names, never `id` or `user_id`), in a fixed order.
    pub values: Vec<(&'static str, ClientValue)>,
    /// Values used only when the write inserts a row and the client did not send the column.
    pub insert_defaults: Vec<(&'static str, ClientValue)>,
    /// Every client-writable column of the table (conflict copies copy these).
    pub columns: &'static [&'static str],
    pub policy: ConflictPolicy,
    /// With `user_id`, the columns that identify at most one row: `None` = only the id;
    /// `Some(&[])` = one row per user; `Some(&["book_id"])` = one per (user, book) (NULL matches NULL).
    pub unique_key: Option<&'static [&'static str]>,
    pub delete: DeleteRule,
    pub references: &'static [Reference],
    /// Rows of other tables removed when this row is deleted (their `column` holds this row's id).
    pub delete_cascade: &'static [Reference],
    /// Whether a `PUT` of an unknown id may insert (books are never created by sync).
    pub may_insert: bool,
    /// The id a conflict copy gets, derived by the caller from (id, device, client timestamp) so a
    /// retried upload finds the copy it made before.
    pub conflict_copy_id: Option<String>,
    /// Server time, for soft deletes and defaults.
    pub now: DateTime<Utc>,
}

impl ClientWrite {
    pub fn value(&self, column: &str) -> Option<&ClientValue> {
        self.values.iter().find(|(c, _)| *c == column).map(|(_, v)| v)
    }

    /// The client's `updated_at`, when it sent one.
    pub fn client_updated_at(&self) -> Option<DateTime<Utc>> {
        match self.value("updated_at") {
            Some(ClientValue::Timestamp(t)) => Some(*t),
            _ => None,
        }
    }

    /// The writing device, when the write names it.
    pub fn device_id(&self) -> Option<&str> {
        match self.value("device_id") {
            Some(ClientValue::Text(d)) => Some(d),
            _ => None,
        }
    }
}

/// What applying a [`ClientWrite`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Inserted,
    Updated,
    /// The write named a new id for a row that already exists by the uniqueness key: it was merged
    /// into that row (under the table's policy) and the client's id now maps to `into`.
    Merged {
        into: String,
        applied: bool,
    },
    /// Older than the stored row (last writer wins): nothing changed.
    Stale,
    /// Older than another device's edit: saved as a new row `copy_id` with `conflict_of` = the row.
    ConflictCopy {
        copy_id: String,
    },
    Deleted,
    /// Deleting a row that does not exist (or is not the user's): nothing to do.
    AlreadyGone,
    /// A permanent refusal found inside the transaction; nothing changed.
    Rejected {
        reason: RejectReason,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The row, or a row it references, is missing or another user's.
    NotFound,
    /// The write breaks a rule of the data (an id taken by another user's row, a uniqueness clash).
    Invalid,
}

/// A client operation the server refused for good, kept for support and for the user.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UploadRejection {
    pub user_id: UserId,
    pub table: String,
    pub row_id: String,
    pub op: String,
    pub code: String,
    pub message: String,
    /// The operation's `data` as JSON text (bounded by the caller).
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
}
