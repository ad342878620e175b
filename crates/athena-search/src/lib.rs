//! Full-text search over book text, book metadata, notes and highlights, aware of Chinese.
//!
//! This crate owns text analysis (`analysis`: NFKC and width folding, traditional→simplified
//! folding, jieba segmentation plus character n-grams, English stemming), the engine-neutral
//! `SearchIndex` trait with its request and result types, the embedded tantivy engine
//! (`TantivyIndex`), and the conformance suite (`conformance`) every engine must pass.
//!
//! It knows nothing of HTTP, databases or users' books: callers say which content hashes a user
//! may see (`Query::allowed_content`) and the index enforces it. Book text is indexed once per
//! content hash and shared by every owner; notes and highlights belong to one user.

pub mod analysis;
pub mod conformance;
pub mod cursor;
mod import;
mod query;
pub mod semantic;
mod snippet;
mod tantivy_index;

use std::fmt;

pub use import::{index_book_text, ImportStats, TextLine};
pub use query::{parse_query, ParsedQuery, Phrase};
pub use snippet::highlight;
pub use tantivy_index::TantivyIndex;

/// Most hits one page may hold.
pub const MAX_LIMIT: usize = 100;
/// Length of a hit's snippet, in characters of the original text.
pub const SNIPPET_CHARS: usize = 160;

/// What a document is; filters and hits name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A chapter or page of a book's text, shared by all owners of the content.
    BookText,
    /// A book's title, authors, description.
    BookMeta,
    Note,
    Highlight,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::BookText, Kind::BookMeta, Kind::Note, Kind::Highlight];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BookText => "book_text",
            Kind::BookMeta => "book_meta",
            Kind::Note => "note",
            Kind::Highlight => "highlight",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One indexed unit: a chapter, a page, a note, a highlight, a book's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    /// Unique across the index; upserting the same id replaces the document.
    pub id: String,
    /// The user a note, highlight or private metadata belongs to; `None` for shared book content.
    pub owner: Option<String>,
    /// Content sha256 of the book text; shared documents are visible to whoever owns this content.
    pub content_key: Option<String>,
    pub book_id: Option<String>,
    pub kind: Kind,
    /// `epubcfi(...)` or `page:N`, where a reader opens the hit.
    pub location: Option<String>,
    pub title: Option<String>,
    pub text: String,
}

/// A search request. Visibility: a document with an owner is returned only to that owner; a
/// shared document (no owner) only when its `content_key` is in `allowed_content`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Words, and exact phrases in double quotes.
    pub text: String,
    /// Empty means every kind.
    pub kinds: Vec<Kind>,
    /// Only documents whose `book_id` is listed. Shared text indexed without a book id is
    /// narrowed with `allowed_content` instead.
    pub book_ids: Option<Vec<String>>,
    /// Content hashes the user owns.
    pub allowed_content: Vec<String>,
    pub user_id: String,
    /// 1..=`MAX_LIMIT`; larger values are capped, 0 is taken as 1.
    pub limit: usize,
    /// `Page::next_cursor` of the previous page of the same query.
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub id: String,
    pub kind: Kind,
    pub book_id: Option<String>,
    pub content_key: Option<String>,
    pub location: Option<String>,
    pub title: Option<String>,
    pub score: f32,
    /// An HTML-escaped excerpt in the original script, matched terms in `<mark>…</mark>`.
    pub snippet: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Documents matching the query and the user's filters, all pages together.
    pub total: u64,
    /// Present when more hits follow.
    pub next_cursor: Option<String>,
}

/// Whether the index can answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexHealth {
    Ready {
        docs: u64,
    },
    /// The index was created empty, or reset after corruption, and the caller has not yet
    /// reported (`TantivyIndex::mark_ready`) that everything was indexed again. It answers, but
    /// results may be incomplete.
    Rebuilding {
        docs: u64,
        reason: String,
    },
    /// The index on disk cannot be read; searches and writes fail until it is reset.
    Corrupt {
        reason: String,
    },
}

impl IndexHealth {
    pub fn is_ready(&self) -> bool {
        matches!(self, IndexHealth::Ready { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query text is empty or too long: a user error.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The cursor is malformed or belongs to another query: a user error.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A document breaks the visibility rules (e.g. a note without owner): a caller bug.
    #[error("invalid document {id:?}: {reason}")]
    InvalidDoc { id: String, reason: String },
    /// A line of extracted text could not be read.
    #[error("extracted text line {line}: {reason}")]
    BadText { line: u64, reason: String },
    /// The index is corrupt; reset and rebuild it.
    #[error("search index unavailable: {0}")]
    Unavailable(String),
    #[error("search engine: {0}")]
    Engine(String),
    #[error("search index io: {0}")]
    Io(#[from] std::io::Error),
}

impl SearchError {
    /// True when the caller sent something wrong (maps to 422), false for internal failures.
    pub fn is_user_error(&self) -> bool {
        matches!(self, SearchError::InvalidQuery(_) | SearchError::InvalidCursor)
    }
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// The search engine interface. Writes become visible after `commit`. Every method may block on
/// disk or network IO: async callers run them on blocking threads.
pub trait SearchIndex: Send + Sync {
    /// Adds documents, replacing any with the same id.
    fn upsert(&self, docs: Vec<Doc>) -> Result<()>;
    /// Removes the per-user documents (notes, highlights, owned metadata) of a book. Shared text
    /// is left alone: other users may own the same content; see `delete_by_content`.
    fn delete_by_book(&self, book_id: &str) -> Result<()>;
    /// Removes the shared documents (book text, shared metadata) of a content hash.
    fn delete_by_content(&self, content_key: &str) -> Result<()>;
    fn delete(&self, id: &str) -> Result<()>;
    fn search(&self, q: &Query) -> Result<Page<Hit>>;
    fn commit(&self) -> Result<()>;
    fn health(&self) -> IndexHealth;
    /// Records that a rebuild finished: health `Rebuilding` becomes `Ready`. Engines without a
    /// rebuild state accept it and do nothing.
    fn mark_ready(&self) -> Result<()> {
        Ok(())
    }
    /// Short engine name for the `X-Search-Engine` header.
    fn engine(&self) -> &'static str;
}

/// Checks the visibility rules every engine enforces on write.
pub fn validate_doc(doc: &Doc) -> Result<()> {
    let bad = |reason: &str| Err(SearchError::InvalidDoc { id: doc.id.clone(), reason: reason.to_string() });
    if doc.id.is_empty() {
        return bad("empty id");
    }
    match (doc.kind, &doc.owner, &doc.content_key) {
        (_, Some(o), _) if o.is_empty() => bad("empty owner"),
        (Kind::Note | Kind::Highlight, None, _) => bad("notes and highlights need an owner"),
        (Kind::BookText, Some(_), _) => bad("book text is shared by content and has no owner"),
        (_, None, None) => bad("a shared document needs a content key"),
        (_, None, Some(k)) if k.is_empty() => bad("empty content key"),
        _ => Ok(()),
    }
}
