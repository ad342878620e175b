//! The storage interface of Athena: one [`Store`] trait over every table, the records it reads and
//! writes, and [`StoreError`] with kinds that callers map to API codes.
//!
//! Backends (`athena-store-sqlite`, `athena-store-postgres`) implement the trait and own their SQL and
//! migrations; [`conformance`] is the scenario suite every backend must pass. This crate knows nothing
//! about SQL, HTTP or object storage. Multi-row changes that must be atomic (content reference counts,
//! refresh-token rotation) are single trait methods, so each backend makes them one transaction.

mod client_write;
pub mod conformance;
mod error;
pub mod jobs;
mod records;
pub mod sync;
pub mod vectors;

pub use client_write::*;
pub use error::StoreError;
pub use records::*;

use async_trait::async_trait;
use athena_domain::{BookId, ContentHash, Email, ObjectKey, Role, SessionId, ShelfId, UserId};
use chrono::{DateTime, Utc};

pub type StoreResult<T> = Result<T, StoreError>;

/// Every persistent operation Athena needs. Implementations are cheap to clone behind an `Arc`.
///
/// Methods that take a `user` only ever see or change that user's rows: a row of another user is
/// reported as [`StoreError::NotFound`], exactly like a missing one.
#[async_trait]
pub trait Store: jobs::JobStore + vectors::VectorStore + Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations (idempotent).
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip, for `/health`.
    async fn ping(&self) -> StoreResult<()>;
    /// Connection pool figures, for `/metrics`.
    fn pool_stats(&self) -> PoolStats;
    /// Closes the pool after in-flight work (graceful shutdown).
    async fn close(&self);

    // ---- users ----
    /// Creates a user; an existing email is [`StoreError::Conflict`].
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn user(&self, id: &UserId) -> StoreResult<User>;
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    async fn set_user_role(&self, id: &UserId, role: Role) -> StoreResult<User>;

    // ---- email login codes and rate-limit events ----
    /// Replaces any earlier code for this address (one live code per address).
    async fn put_login_code(&self, code: LoginCode) -> StoreResult<()>;
    async fn login_code(&self, email: &Email) -> StoreResult<Option<LoginCode>>;
    /// Adds one failed attempt to the live code and returns the new count (0 if there is no code).
    async fn add_login_code_attempt(&self, email: &Email) -> StoreResult<u32>;
    async fn delete_login_code(&self, email: &Email) -> StoreResult<()>;
    /// Records one event for a rate limit (`scope` such as `send_code`, `key` such as an email).
    async fn record_rate_event(&self, scope: &str, key: &str, at: DateTime<Utc>) -> StoreResult<()>;
    async fn count_rate_events(&self, scope: &str, key: &str, since: DateTime<Utc>) -> StoreResult<u64>;
    /// Forgets events older than `before` (housekeeping).
    async fn prune_rate_events(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // ---- login sessions and refresh tokens ----
    async fn create_session(&self, session: NewSession) -> StoreResult<Session>;
    /// The session, revoked or not; NotFound if it does not exist.
    async fn session(&self, id: &SessionId) -> StoreResult<Session>;
    async fn session_by_refresh_hash(&self, refresh_hash: &str) -> StoreResult<Option<Session>>;
    /// Compare-and-swap of the refresh token: succeeds only if the session is live and still holds
    /// `old_hash`. Returns false when another request rotated it first (token reuse).
    async fn rotate_refresh(
        &self,
        id: &SessionId,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Live (not revoked, refresh not expired) sessions of a user, newest first.
    async fn list_sessions(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Session>>;
    /// Revokes one of the user's sessions; NotFound if it is not theirs.
    async fn revoke_session(&self, user: &UserId, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()>;

    // ---- book contents (dedup by server-computed hash, reference counted) ----
    async fn content(&self, sha: &ContentHash) -> StoreResult<Option<BookContent>>;
    /// Some live or deleted book of any user holding this content, preferring the oldest
    /// (the canonical book for global dedup).
    async fn canonical_book_for(&self, sha: &ContentHash) -> StoreResult<Option<Book>>;
    /// Whether some content row stores its bytes under `key` (so an expired pending upload
    /// with that key must not delete the object).
    async fn content_key_in_use(&self, key: &ObjectKey) -> StoreResult<bool>;

    // ---- books ----
    /// In one transaction: creates the content row with `ref_count = 1` if this hash is new (using
    /// `new.content`'s key), or adds one reference to the existing content row (the key stored there
    /// wins), then inserts the book pointing at the content's key. If the user already has a book with
    /// this content (live or soft-deleted), nothing is inserted and that book is returned with
    /// [`BookInsert::Existing`] (restored if it was soft-deleted). A created book's `new.jobs` are
    /// enqueued (as [`jobs::JobStore::enqueue_job`] does) in the same transaction.
    async fn insert_book(&self, new: NewBook) -> StoreResult<BookInsert>;
    /// A book of the user; soft-deleted ones only if `include_deleted`.
    async fn book(&self, user: &UserId, id: &BookId, include_deleted: bool) -> StoreResult<Book>;
    async fn book_by_content(&self, user: &UserId, sha: &ContentHash) -> StoreResult<Option<Book>>;
    /// Live books (or only soft-deleted ones when `deleted`), newest first
    /// (`created_at` desc, then id desc), strictly after `after` when given.
    async fn list_books(&self, user: &UserId, query: &BookQuery) -> StoreResult<Vec<Book>>;
    /// Applies the patch if the book's version equals `expected_version` (when given); bumps
    /// `version` and `updated_at`. Stale version → [`StoreError::VersionConflict`].
    async fn update_book(
        &self,
        user: &UserId,
        id: &BookId,
        expected_version: Option<i64>,
        patch: BookPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Book>;
    /// Sets `deleted_at` (soft delete) or clears it (restore). Bumps version.
    async fn set_book_deleted(
        &self,
        user: &UserId,
        id: &BookId,
        deleted_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Book>;
    /// In one transaction: deletes the book and what hangs off it (shelf items, progress,
    /// notes, highlights, bookmarks, sessions, reading settings of that book), drops one reference
    /// from its content, and deletes the content row when none remain (with its OCR pages and
    /// result). Returns the object keys that are no longer referenced by anything (the content, the
    /// cover, the converted EPUB, the OCR'd PDF) so the caller frees them.
    async fn delete_book_permanently(&self, user: &UserId, id: &BookId) -> StoreResult<Vec<ObjectKey>>;
    /// Books soft-deleted before `before`, of all users (the 30-day purge).
    async fn books_deleted_before(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Book>>;
    /// The user's usage for quotas: live + soft-deleted books and their summed sizes.
    async fn usage(&self, user: &UserId) -> StoreResult<Usage>;

    // ---- two-step uploads ----
    async fn create_pending_upload(&self, upload: PendingUpload) -> StoreResult<()>;
    /// The pending upload under `key` if it belongs to `user`.
    async fn pending_upload(&self, user: &UserId, key: &ObjectKey) -> StoreResult<PendingUpload>;
    async fn delete_pending_upload(&self, key: &ObjectKey) -> StoreResult<()>;
    async fn pending_uploads_expired(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<PendingUpload>>;

    // ---- dedup challenges (proof of possession) ----
    async fn create_dedup_challenge(&self, challenge: DedupChallenge) -> StoreResult<()>;
    /// Removes and returns the user's newest unexpired challenge for this hash (single use).
    async fn take_dedup_challenge(&self, user: &UserId, sha: &ContentHash, now: DateTime<Utc>) -> StoreResult<Option<DedupChallenge>>;

    // ---- shelves ----
    async fn create_shelf(&self, new: NewShelf) -> StoreResult<Shelf>;
    async fn shelf(&self, user: &UserId, id: &ShelfId) -> StoreResult<Shelf>;
    /// Live shelves ordered by `sort_order`, then `created_at`, then id; `after` is the last id seen.
    async fn list_shelves(&self, user: &UserId, after: Option<&ShelfId>, limit: u32) -> StoreResult<Vec<Shelf>>;
    async fn update_shelf(
        &self,
        user: &UserId,
        id: &ShelfId,
        expected_version: Option<i64>,
        patch: ShelfPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Shelf>;
    /// Soft delete (`is_deleted`, `deleted_at`) and removal of its items.
    async fn delete_shelf(&self, user: &UserId, id: &ShelfId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Idempotent: adding a book already on the shelf returns the existing item. The shelf and the
    /// (live) book must both be the user's, else NotFound.
    async fn add_shelf_item(&self, user: &UserId, shelf: &ShelfId, book: &BookId, now: DateTime<Utc>) -> StoreResult<ShelfItem>;
    async fn list_shelf_items(&self, user: &UserId, shelf: &ShelfId) -> StoreResult<Vec<ShelfItem>>;
    async fn remove_shelf_item(&self, user: &UserId, shelf: &ShelfId, book: &BookId) -> StoreResult<()>;

    // ---- writes from clients (sync upload) ----
    /// Applies one validated client operation in one transaction: resolves an id mapped by an
    /// earlier merge, checks that referenced rows are the user's, reads the current row (locked),
    /// decides by `write.policy`, and writes. Permanent refusals are [`WriteOutcome::Rejected`];
    /// errors are failures ([`StoreError::Unavailable`] ones are worth a retry). Applying the same
    /// write twice leaves the same state.
    async fn apply_client_write(&self, user: &UserId, write: ClientWrite) -> StoreResult<WriteOutcome>;
    /// One synced row of the user as clients see it (server column names; booleans as 0/1,
    /// timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ` text), or None.
    async fn client_row(
        &self,
        user: &UserId,
        table: SyncTable,
        id: &str,
    ) -> StoreResult<Option<serde_json::Map<String, serde_json::Value>>>;
    /// Keeps a client operation the server refused for good.
    async fn record_upload_rejection(&self, rejection: UploadRejection) -> StoreResult<()>;
    /// The user's recorded rejections, newest first.
    async fn upload_rejections(&self, user: &UserId, limit: u32) -> StoreResult<Vec<UploadRejection>>;

    // ---- idempotency keys ----
    async fn idempotent_response(&self, user: &UserId, key: &str, since: DateTime<Utc>) -> StoreResult<Option<IdempotentResponse>>;
    /// Stores the first response for a key; a second put for the same (user, key) keeps the first.
    async fn put_idempotent_response(&self, response: IdempotentResponse) -> StoreResult<()>;
}
