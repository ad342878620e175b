use athena_domain::{BookFormat, BookId, ContentHash, Email, ObjectKey, Role, SessionId, ShelfId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub display_name: String,
    pub role: Role,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub display_name: String,
    /// `zh-CN` by default.
    pub language: String,
    pub timezone: String,
    pub role: Role,
    pub membership_tier: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoginCode {
    pub email: Email,
    /// SHA-256 hex of the code (codes are never stored in clear).
    pub code_hash: String,
    pub attempts: u32,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    /// Client description (User-Agent), at most 256 characters.
    pub user_agent: String,
    pub refresh_hash: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Stored bytes identified by their server-computed hash, shared by every book that holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct BookContent {
    pub sha256: ContentHash,
    pub storage_key: ObjectKey,
    pub size: i64,
    pub format: BookFormat,
    pub ref_count: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewBook {
    pub id: BookId,
    pub user_id: UserId,
    pub title: String,
    pub author: Option<String>,
    pub language: Option<String>,
    pub format: BookFormat,
    pub size: i64,
    pub sha256: ContentHash,
    /// Where the bytes are, if this upload stored them; an existing content row's key wins.
    pub storage_key: ObjectKey,
    pub cover_key: Option<ObjectKey>,
    pub page_count: Option<i64>,
    pub is_digitalized: Option<bool>,
    pub digitalization_confidence: Option<f64>,
    /// Free-form metadata (JSON object text): toc, publisher, identifiers…
    pub meta: serde_json::Value,
    /// `pending` for formats that need conversion, else None.
    pub conversion_status: Option<String>,
    /// Background work for the new book (conversion, covers, OCR…), enqueued in the transaction
    /// that creates it, so a book never exists without its jobs. Ignored when the user already had
    /// the content ([`BookInsert::Existing`]).
    pub jobs: Vec<crate::jobs::NewJob>,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub enum BookInsert {
    /// A new book row; `content_is_new` says whether this upload's bytes became the stored content
    /// (false: they duplicate stored content and the caller deletes its copy).
    Created { book: Book, content_is_new: bool },
    /// The user already had this content; nothing was inserted.
    Existing(Book),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Book {
    pub id: BookId,
    pub user_id: UserId,
    pub title: String,
    pub author: Option<String>,
    pub language: Option<String>,
    pub cover_image_key: Option<ObjectKey>,
    pub original_format: BookFormat,
    pub size: i64,
    pub original_content_sha256: ContentHash,
    pub content_sha256: ContentHash,
    pub minio_key: ObjectKey,
    pub metadata_confirmed: bool,
    pub is_digitalized: Option<bool>,
    pub initial_digitalization_confidence: Option<f64>,
    pub page_count: Option<i64>,
    pub ocr_status: Option<String>,
    pub conversion_status: Option<String>,
    pub converted_epub_key: Option<ObjectKey>,
    /// The layered (OCR'd) PDF, once OCR finished.
    pub ocr_result_key: Option<ObjectKey>,
    pub meta: serde_json::Value,
    pub canonical_book_id: Option<BookId>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default)]
pub struct BookQuery {
    pub deleted: bool,
    /// Keyset cursor: (created_at, id) of the last book of the previous page.
    pub after: Option<(DateTime<Utc>, BookId)>,
    pub limit: u32,
}

#[derive(Clone, Debug, Default)]
pub struct BookPatch {
    pub title: Option<String>,
    /// `Some(None)` clears the author.
    pub author: Option<Option<String>>,
    pub language: Option<Option<String>>,
    pub metadata_confirmed: Option<bool>,
    pub cover_image_key: Option<Option<ObjectKey>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub books: i64,
    pub bytes: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PendingUpload {
    pub key: ObjectKey,
    pub user_id: UserId,
    pub filename: String,
    pub content_type: Option<String>,
    pub declared_size: Option<i64>,
    pub declared_sha256: Option<ContentHash>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Random byte ranges of a stored file the client must hash to prove it holds the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DedupChallenge {
    pub id: String,
    pub user_id: UserId,
    pub sha256: ContentHash,
    /// `[start, end)` byte ranges.
    pub ranges: Vec<(u64, u64)>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewShelf {
    pub id: ShelfId,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub sort_order: i64,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shelf {
    pub id: ShelfId,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub cover_url: Option<String>,
    pub sort_order: i64,
    pub is_deleted: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct ShelfPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub sort_order: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShelfItem {
    /// The `shelf_books` row id (text UUID).
    pub id: String,
    pub shelf_id: ShelfId,
    pub book_id: BookId,
    pub sort_order: i64,
    pub added_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IdempotentResponse {
    pub user_id: UserId,
    pub key: String,
    /// `METHOD path` the key was first used with; reuse on another route is refused.
    pub request: String,
    pub status: u16,
    pub body: String,
    pub created_at: DateTime<Utc>,
}
