//! Embedding vectors for semantic search: the chunks of a book's text (keyed by content hash and
//! model, shared by every owner like the text itself) and a user's notes and highlights.
//!
//! Vectors are opaque bytes here (`athena_search::vector` encodes them); a vector is only ever
//! compared with vectors of the same `model`, so a changed model makes old vectors stale, not wrong.

use async_trait::async_trait;
use athena_domain::{BookId, ContentHash, UserId};
use chrono::{DateTime, Utc};

use crate::{StoreResult, SyncTable};

/// One chunk of a book's text and its vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkVector {
    /// Order of the chunk in the book, from 0.
    pub chunk_no: i64,
    /// Where the reader opens: an EPUB CFI or `page:N`.
    pub location: Option<String>,
    /// The chapter's title, when known.
    pub title: Option<String>,
    /// The start of the chunk's text, shown as the hit's excerpt.
    pub preview: String,
    pub vector: Vec<u8>,
}

/// That a content hash has vectors of a model, and when they were made.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentVectorSet {
    pub content_sha256: ContentHash,
    pub model: String,
    pub chunks: i64,
    pub embedded_at: DateTime<Utc>,
}

/// The vector of one note or highlight, owned by one user.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnotationVector {
    pub user_id: UserId,
    /// The search document id (`note:{id}` / `highlight:{id}`).
    pub doc_id: String,
    pub book_id: Option<String>,
    /// `note` or `highlight`.
    pub kind: String,
    pub location: Option<String>,
    pub preview: String,
    pub model: String,
    pub vector: Vec<u8>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait VectorStore: Send + Sync + 'static {
    /// Replaces every chunk vector of `sha` under `model` in one transaction.
    async fn put_content_vectors(&self, sha: &ContentHash, model: &str, chunks: Vec<ChunkVector>, now: DateTime<Utc>) -> StoreResult<()>;
    /// Which of `shas` have vectors of `model`.
    async fn content_vector_sets(&self, shas: &[ContentHash], model: &str) -> StoreResult<Vec<ContentVectorSet>>;
    /// The chunk vectors of `sha` under `model`, in chunk order.
    async fn content_vectors(&self, sha: &ContentHash, model: &str) -> StoreResult<Vec<ChunkVector>>;
    /// Forgets every vector of a content hash (the last book with it is gone, or its text changed).
    async fn delete_content_vectors(&self, sha: &ContentHash) -> StoreResult<()>;
    /// Adds or replaces the vector of one annotation.
    async fn put_annotation_vector(&self, vector: AnnotationVector) -> StoreResult<()>;
    async fn delete_annotation_vector(&self, user: &UserId, doc_id: &str) -> StoreResult<()>;
    /// Every annotation vector of a user under `model`.
    async fn annotation_vectors(&self, user: &UserId, model: &str) -> StoreResult<Vec<AnnotationVector>>;
    /// The ids of a user's live notes and highlights of one book, to rebuild their search documents.
    async fn live_annotation_ids(&self, user: &UserId, book: &BookId) -> StoreResult<Vec<(SyncTable, String)>>;
}
