//! Athena's use cases: email-code login and sessions, the library (uploads with server-side hashing,
//! dedup with proof of possession, metadata, soft delete, content), shelves, and housekeeping.
//!
//! [`App`] holds the backends as trait objects (`Arc<dyn Store>`, `Arc<dyn BlobStore>`) and the
//! configuration; its methods are the use cases, grouped by file. This crate knows no HTTP (no axum,
//! no status codes) and no SQL: it speaks domain types and returns [`AppError`] kinds, which the HTTP
//! layer maps to the stable codes of `CONTRACTS.md`.

mod auth;
mod clock;
mod error;
mod housekeeping;
pub use housekeeping::SweepReport;
mod ingest;
mod library;
mod mailer;
pub mod pipeline;
mod processing;
mod search;
pub mod semantic;
mod shelves;
mod sync_upload;

use std::sync::Arc;

use athena_blob::BlobStore;
use athena_config::Config;
use athena_store::Store;

pub use auth::{LoginResult, Principal, SendCodeResult, TokenPair};
pub use clock::{Clock, SystemClock};
pub use error::{AppError, AppResult};
pub use library::{BookList, ContentRead, MetadataEdit, UploadComplete, UploadInit, UploadInitResult};
pub use mailer::{LogMailer, Mailer, SmtpMailer};
pub use processing::{JobView, OcrHit, OcrPageView, OcrRequest, OcrStatus, ProcessingStatus};
pub use search::{SearchHit, SearchParams, SearchResults};
pub use shelves::{ShelfCreate, ShelfEdit};
pub use sync_upload::{conflict_copy_id, SyncOpError, SyncOperation, SyncUploadResult, MAX_SYNC_OPERATIONS};

/// The use cases over one set of backends. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    /// The search index, when this process has one (the API and worker roles open it).
    pub search: Option<Arc<dyn athena_search::SearchIndex>>,
    /// The embedding model, when semantic search is on (`with_semantic`).
    pub semantic: Option<Arc<semantic::Semantic>>,
    mailer: Arc<dyn Mailer>,
    tokens: Arc<auth::TokenKeys>,
    live_sessions: Arc<auth::LiveSessions>,
}

impl App {
    /// `config.jwt_secret` must be set (the server calls `ensure_dev_secret` first).
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        config: Arc<Config>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> AppResult<Self> {
        let secret = config.jwt_secret.as_ref().ok_or_else(|| AppError::Internal("no signing secret configured".into()))?;
        let tokens = Arc::new(auth::TokenKeys::new(secret.expose().as_bytes()));
        Ok(Self { store, blobs, config, clock, search: None, semantic: None, mailer, tokens, live_sessions: Default::default() })
    }

    /// The same use cases with a search index.
    pub fn with_search(mut self, index: Arc<dyn athena_search::SearchIndex>) -> Self {
        self.search = Some(index);
        self
    }

    /// Where uploads are spooled before they are stored (hot dir, same disk as the database).
    pub fn spool_dir(&self) -> std::path::PathBuf {
        self.config.hot_dir.join("tmp").join("uploads")
    }
}

/// Constant-time comparison of two secrets' text forms.
pub(crate) fn auth_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The result of an upload: the book, and whether this request created it (false: the caller
/// already had these bytes, and gets that book back).
#[derive(Clone, Debug)]
pub struct Uploaded {
    pub book: athena_store::Book,
    pub created: bool,
}
