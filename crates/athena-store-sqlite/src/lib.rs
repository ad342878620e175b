//! SQLite implementation of the `athena_store::Store` trait, for single-machine deployments and
//! tests: the connection pool (WAL, foreign keys, busy timeout), the embedded migrations under
//! `migrations/`, and the SQL of every operation, including the job queue (`athena_store::jobs::JobStore`).
//!
//! It knows the schema and SQLite's dialect only; it must not know about HTTP, object storage or
//! the rules above storage (quotas, auth): those live in the callers and reach here as plain values.

mod books;
mod client_writes;
mod db;
mod jobs;
mod rows;
mod shelves;
mod sync;
mod uploads;
mod users;
mod vectors;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use athena_domain::{BookId, ContentHash, Email, ObjectKey, Role, SessionId, ShelfId, UserId};
use athena_store::jobs::{BookProcessing, Job, JobFilter, JobStore, NewJob, OcrCharge, OcrPage, OcrResult, Queue, QueueStats};
use athena_store::*;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::{db, DbPool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A [`Store`] on one SQLite database file. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: DbPool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file with a small pool of connections.
    pub async fn connect(path: &Path) -> StoreResult<Self> {
        let options = base_options(SqliteConnectOptions::new().filename(path).create_if_missing(true));
        let pool =
            SqlitePoolOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(10)).connect_with(options).await.map_err(db)?;
        Ok(Self { pool })
    }

    /// A private in-memory database, for tests. One connection that never expires: every query
    /// sees the same database, and it lives as long as the store.
    pub async fn in_memory() -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(db)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base_options(options))
            .await
            .map_err(db)?;
        Ok(Self { pool })
    }

    /// The underlying pool, for backend-specific work (backups, sync) in sibling crates.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

fn base_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::internal)
    }
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db)?;
        Ok(())
    }
    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        users::create_user(&self.pool, new).await
    }
    async fn user(&self, id: &UserId) -> StoreResult<User> {
        users::user(&self.pool, id).await
    }
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        users::user_by_email(&self.pool, email).await
    }
    async fn set_user_role(&self, id: &UserId, role: Role) -> StoreResult<User> {
        users::set_user_role(&self.pool, id, role).await
    }

    async fn put_login_code(&self, code: LoginCode) -> StoreResult<()> {
        users::put_login_code(&self.pool, code).await
    }
    async fn login_code(&self, email: &Email) -> StoreResult<Option<LoginCode>> {
        users::login_code(&self.pool, email).await
    }
    async fn add_login_code_attempt(&self, email: &Email) -> StoreResult<u32> {
        users::add_login_code_attempt(&self.pool, email).await
    }
    async fn delete_login_code(&self, email: &Email) -> StoreResult<()> {
        users::delete_login_code(&self.pool, email).await
    }
    async fn record_rate_event(&self, scope: &str, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
        users::record_rate_event(&self.pool, scope, key, at).await
    }
    async fn count_rate_events(&self, scope: &str, key: &str, since: DateTime<Utc>) -> StoreResult<u64> {
        users::count_rate_events(&self.pool, scope, key, since).await
    }
    async fn prune_rate_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        users::prune_rate_events(&self.pool, before).await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        users::create_session(&self.pool, session).await
    }
    async fn session(&self, id: &SessionId) -> StoreResult<Session> {
        users::session(&self.pool, id).await
    }
    async fn session_by_refresh_hash(&self, refresh_hash: &str) -> StoreResult<Option<Session>> {
        users::session_by_refresh_hash(&self.pool, refresh_hash).await
    }
    async fn rotate_refresh(
        &self,
        id: &SessionId,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        users::rotate_refresh(&self.pool, id, old_hash, new_hash, new_expires_at, now).await
    }
    async fn list_sessions(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Session>> {
        users::list_sessions(&self.pool, user, now).await
    }
    async fn revoke_session(&self, user: &UserId, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()> {
        users::revoke_session(&self.pool, user, id, now).await
    }

    async fn content(&self, sha: &ContentHash) -> StoreResult<Option<BookContent>> {
        books::content(&self.pool, sha).await
    }
    async fn canonical_book_for(&self, sha: &ContentHash) -> StoreResult<Option<Book>> {
        books::canonical_book_for(&self.pool, sha).await
    }
    async fn content_key_in_use(&self, key: &ObjectKey) -> StoreResult<bool> {
        books::content_key_in_use(&self.pool, key).await
    }
    async fn insert_book(&self, new: NewBook) -> StoreResult<BookInsert> {
        books::insert_book(&self.pool, new).await
    }
    async fn book(&self, user: &UserId, id: &BookId, include_deleted: bool) -> StoreResult<Book> {
        books::book(&self.pool, user, id, include_deleted).await
    }
    async fn book_by_content(&self, user: &UserId, sha: &ContentHash) -> StoreResult<Option<Book>> {
        books::book_by_content(&self.pool, user, sha).await
    }
    async fn list_books(&self, user: &UserId, query: &BookQuery) -> StoreResult<Vec<Book>> {
        books::list_books(&self.pool, user, query).await
    }
    async fn update_book(
        &self,
        user: &UserId,
        id: &BookId,
        expected_version: Option<i64>,
        patch: BookPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Book> {
        books::update_book(&self.pool, user, id, expected_version, patch, now).await
    }
    async fn set_book_deleted(
        &self,
        user: &UserId,
        id: &BookId,
        deleted_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Book> {
        books::set_book_deleted(&self.pool, user, id, deleted_at, now).await
    }
    async fn delete_book_permanently(&self, user: &UserId, id: &BookId) -> StoreResult<Vec<ObjectKey>> {
        books::delete_book_permanently(&self.pool, user, id).await
    }
    async fn books_deleted_before(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Book>> {
        books::books_deleted_before(&self.pool, before, limit).await
    }
    async fn usage(&self, user: &UserId) -> StoreResult<Usage> {
        books::usage(&self.pool, user).await
    }

    async fn create_pending_upload(&self, upload: PendingUpload) -> StoreResult<()> {
        uploads::create_pending_upload(&self.pool, upload).await
    }
    async fn pending_upload(&self, user: &UserId, key: &ObjectKey) -> StoreResult<PendingUpload> {
        uploads::pending_upload(&self.pool, user, key).await
    }
    async fn delete_pending_upload(&self, key: &ObjectKey) -> StoreResult<()> {
        uploads::delete_pending_upload(&self.pool, key).await
    }
    async fn pending_uploads_expired(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<PendingUpload>> {
        uploads::pending_uploads_expired(&self.pool, before, limit).await
    }
    async fn create_dedup_challenge(&self, challenge: DedupChallenge) -> StoreResult<()> {
        uploads::create_dedup_challenge(&self.pool, challenge).await
    }
    async fn take_dedup_challenge(&self, user: &UserId, sha: &ContentHash, now: DateTime<Utc>) -> StoreResult<Option<DedupChallenge>> {
        uploads::take_dedup_challenge(&self.pool, user, sha, now).await
    }

    async fn create_shelf(&self, new: NewShelf) -> StoreResult<Shelf> {
        shelves::create_shelf(&self.pool, new).await
    }
    async fn shelf(&self, user: &UserId, id: &ShelfId) -> StoreResult<Shelf> {
        shelves::shelf(&self.pool, user, id).await
    }
    async fn list_shelves(&self, user: &UserId, after: Option<&ShelfId>, limit: u32) -> StoreResult<Vec<Shelf>> {
        shelves::list_shelves(&self.pool, user, after, limit).await
    }
    async fn update_shelf(
        &self,
        user: &UserId,
        id: &ShelfId,
        expected_version: Option<i64>,
        patch: ShelfPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Shelf> {
        shelves::update_shelf(&self.pool, user, id, expected_version, patch, now).await
    }
    async fn delete_shelf(&self, user: &UserId, id: &ShelfId, now: DateTime<Utc>) -> StoreResult<()> {
        shelves::delete_shelf(&self.pool, user, id, now).await
    }
    async fn add_shelf_item(&self, user: &UserId, shelf: &ShelfId, book: &BookId, now: DateTime<Utc>) -> StoreResult<ShelfItem> {
        shelves::add_shelf_item(&self.pool, user, shelf, book, now).await
    }
    async fn list_shelf_items(&self, user: &UserId, shelf: &ShelfId) -> StoreResult<Vec<ShelfItem>> {
        shelves::list_shelf_items(&self.pool, user, shelf).await
    }
    async fn remove_shelf_item(&self, user: &UserId, shelf: &ShelfId, book: &BookId) -> StoreResult<()> {
        shelves::remove_shelf_item(&self.pool, user, shelf, book).await
    }

    async fn apply_client_write(&self, user: &UserId, write: ClientWrite) -> StoreResult<WriteOutcome> {
        client_writes::apply_client_write(&self.pool, user, write).await
    }
    async fn client_row(
        &self,
        user: &UserId,
        table: SyncTable,
        id: &str,
    ) -> StoreResult<Option<serde_json::Map<String, serde_json::Value>>> {
        client_writes::client_row(&self.pool, user, table, id).await
    }
    async fn record_upload_rejection(&self, rejection: UploadRejection) -> StoreResult<()> {
        client_writes::record_upload_rejection(&self.pool, rejection).await
    }
    async fn upload_rejections(&self, user: &UserId, limit: u32) -> StoreResult<Vec<UploadRejection>> {
        client_writes::upload_rejections(&self.pool, user, limit).await
    }

    async fn idempotent_response(&self, user: &UserId, key: &str, since: DateTime<Utc>) -> StoreResult<Option<IdempotentResponse>> {
        uploads::idempotent_response(&self.pool, user, key, since).await
    }
    async fn put_idempotent_response(&self, response: IdempotentResponse) -> StoreResult<()> {
        uploads::put_idempotent_response(&self.pool, response).await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: NewJob) -> StoreResult<(Job, bool)> {
        jobs::enqueue_job(&self.pool, job).await
    }
    async fn claim_job(&self, queue: Queue, owner: &str, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Job>> {
        jobs::claim_job(&self.pool, queue, owner, now, lease_until).await
    }
    async fn heartbeat_job(&self, id: uuid::Uuid, owner: &str, lease_until: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<bool> {
        jobs::heartbeat_job(&self.pool, id, owner, lease_until, now).await
    }
    async fn complete_job(&self, id: uuid::Uuid, owner: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        jobs::complete_job(&self.pool, id, owner, now).await
    }
    async fn fail_job(
        &self,
        id: uuid::Uuid,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        jobs::fail_job(&self.pool, id, owner, error, retry_at, now).await
    }
    async fn job(&self, id: uuid::Uuid) -> StoreResult<Option<Job>> {
        jobs::job(&self.pool, id).await
    }
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        jobs::list_jobs(&self.pool, filter).await
    }
    async fn retry_job(&self, id: uuid::Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        jobs::retry_job(&self.pool, id, now).await
    }
    async fn cancel_job(&self, id: uuid::Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        jobs::cancel_job(&self.pool, id, now).await
    }
    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>> {
        jobs::queue_stats(&self.pool, now).await
    }
    async fn queue_position(&self, id: uuid::Uuid) -> StoreResult<Option<i64>> {
        jobs::queue_position(&self.pool, id).await
    }
    async fn purge_finished_jobs(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        jobs::purge_finished_jobs(&self.pool, before).await
    }

    async fn book_for_job(&self, id: &BookId) -> StoreResult<Book> {
        jobs::book_for_job(&self.pool, id).await
    }
    async fn update_book_processing(&self, id: &BookId, update: BookProcessing, now: DateTime<Utc>) -> StoreResult<Book> {
        jobs::update_book_processing(&self.pool, id, update, now).await
    }
    async fn books_to_index(
        &self,
        user: Option<&UserId>,
        book: Option<&BookId>,
        after: Option<&BookId>,
        limit: u32,
    ) -> StoreResult<Vec<(BookId, UserId)>> {
        jobs::books_to_index(&self.pool, user, book, after, limit).await
    }

    async fn ocr_result(&self, sha: &ContentHash) -> StoreResult<Option<OcrResult>> {
        jobs::ocr_result(&self.pool, sha).await
    }
    async fn put_ocr_page(&self, page: OcrPage) -> StoreResult<()> {
        jobs::put_ocr_page(&self.pool, page).await
    }
    async fn ocr_page(&self, sha: &ContentHash, page: i64) -> StoreResult<Option<OcrPage>> {
        jobs::ocr_page(&self.pool, sha, page).await
    }
    async fn search_ocr_pages(&self, sha: &ContentHash, needle: &str, limit: u32) -> StoreResult<Vec<OcrPage>> {
        jobs::search_ocr_pages(&self.pool, sha, needle, limit).await
    }
    async fn put_ocr_result(&self, result: OcrResult) -> StoreResult<()> {
        jobs::put_ocr_result(&self.pool, result).await
    }
    async fn record_ocr_charge(&self, charge: OcrCharge) -> StoreResult<()> {
        jobs::record_ocr_charge(&self.pool, charge).await
    }
    async fn ocr_units_used(&self, user: &UserId, since: DateTime<Utc>) -> StoreResult<i64> {
        jobs::ocr_units_used(&self.pool, user, since).await
    }
}

#[async_trait]
impl athena_store::vectors::VectorStore for SqliteStore {
    async fn put_content_vectors(
        &self,
        sha: &ContentHash,
        model: &str,
        chunks: Vec<athena_store::vectors::ChunkVector>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        vectors::put_content_vectors(&self.pool, sha, model, chunks, now).await
    }
    async fn content_vector_sets(&self, shas: &[ContentHash], model: &str) -> StoreResult<Vec<athena_store::vectors::ContentVectorSet>> {
        vectors::content_vector_sets(&self.pool, shas, model).await
    }
    async fn content_vectors(&self, sha: &ContentHash, model: &str) -> StoreResult<Vec<athena_store::vectors::ChunkVector>> {
        vectors::content_vectors(&self.pool, sha, model).await
    }
    async fn delete_content_vectors(&self, sha: &ContentHash) -> StoreResult<()> {
        vectors::delete_content_vectors(&self.pool, sha).await
    }
    async fn put_annotation_vector(&self, vector: athena_store::vectors::AnnotationVector) -> StoreResult<()> {
        vectors::put_annotation_vector(&self.pool, vector).await
    }
    async fn delete_annotation_vector(&self, user: &UserId, doc_id: &str) -> StoreResult<()> {
        vectors::delete_annotation_vector(&self.pool, user, doc_id).await
    }
    async fn annotation_vectors(&self, user: &UserId, model: &str) -> StoreResult<Vec<athena_store::vectors::AnnotationVector>> {
        vectors::annotation_vectors(&self.pool, user, model).await
    }
    async fn live_annotation_ids(&self, user: &UserId, book: &BookId) -> StoreResult<Vec<(SyncTable, String)>> {
        vectors::live_annotation_ids(&self.pool, user, book).await
    }
}
