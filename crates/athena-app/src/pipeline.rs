//! The background work a book needs, as job descriptions. The worker (`athena-worker`) runs them;
//! this module only says which jobs exist, which queue each belongs to, and which a new book gets,
//! so the upload flow can enqueue them in the same transaction that creates the book.

use std::fmt;
use std::str::FromStr;

use athena_domain::{BookFormat, BookId, UserId};
use athena_store::jobs::{NewJob, Queue};
use chrono::{DateTime, Utc};

/// Every kind of job the worker knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Calibre (or LibreOffice + Calibre) to EPUB; then queues `Metadata` and `Extract`.
    Convert,
    /// Metadata from the readable file, and the WebP cover (embedded, first PDF page, or generated).
    Metadata,
    /// Text by chapter (EPUB) or page (PDF), stored for search.
    Extract,
    /// The book's text and metadata into the search index.
    Index,
    /// OCR of an image PDF into page text and a layered PDF.
    Ocr,
    /// The book's text in chunks through the embedding model, for semantic search.
    Embed,
    /// A user's changed notes and highlights through the embedding model.
    EmbedAnnotations,
    /// Does nothing; for queue benchmarks and tests.
    Noop,
}

impl TaskKind {
    pub const ALL: [TaskKind; 8] =
        [Self::Convert, Self::Metadata, Self::Extract, Self::Index, Self::Ocr, Self::Embed, Self::EmbedAnnotations, Self::Noop];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Convert => "book.convert",
            Self::Metadata => "book.metadata",
            Self::Extract => "book.extract",
            Self::Index => "book.index",
            Self::Ocr => "book.ocr",
            Self::Embed => "book.embed",
            Self::EmbedAnnotations => "annotations.embed",
            Self::Noop => "noop",
        }
    }

    /// The seed's queue for this work: OCR on `gpu_high`, embeddings on `gpu_low`, the rest on `cpu_default`.
    pub fn queue(self) -> Queue {
        match self {
            Self::Ocr => Queue::GpuHigh,
            Self::Embed | Self::EmbedAnnotations => Queue::GpuLow,
            _ => Queue::CpuDefault,
        }
    }

    /// A job of this kind for a book; the dedup key makes enqueueing it twice harmless.
    pub fn for_book(self, book: &BookId, user: &UserId, max_attempts: u32, now: DateTime<Utc>) -> NewJob {
        NewJob {
            id: uuid::Uuid::now_v7(),
            queue: self.queue(),
            kind: self.as_str().to_string(),
            payload: serde_json::json!({ "book_id": book.as_str() }),
            dedup_key: Some(format!("{}:{}", self.as_str(), book.as_str())),
            max_attempts: max_attempts as i32,
            // Conversion first: the other jobs of a converted book wait for it anyway.
            priority: if self == Self::Convert { 0 } else { 10 },
            run_at: now,
            user_id: Some(user.clone()),
            book_id: Some(book.clone()),
            now,
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown job kind {s:?}"))
    }
}

/// A job embedding some of a user's notes and highlights (`(table, id)` pairs as the sync upload
/// names them). Not deduplicated: each carries its own rows, and embedding a row twice is harmless.
pub fn embed_annotations_job(user: &UserId, rows: &[(String, String)], max_attempts: u32, now: DateTime<Utc>) -> NewJob {
    let kind = TaskKind::EmbedAnnotations;
    NewJob {
        id: uuid::Uuid::now_v7(),
        queue: kind.queue(),
        kind: kind.as_str().to_string(),
        payload: serde_json::json!({
            "user_id": user.as_str(),
            "rows": rows.iter().map(|(table, id)| serde_json::json!({ "table": table, "id": id })).collect::<Vec<_>>(),
        }),
        dedup_key: None,
        max_attempts: max_attempts as i32,
        // Before books: a note is small and its user is waiting to find it.
        priority: 5,
        run_at: now,
        user_id: Some(user.clone()),
        book_id: None,
        now,
    }
}

/// The jobs a newly created book starts with.
pub fn jobs_for_new_book(format: BookFormat, book: &BookId, user: &UserId, max_attempts: u32, now: DateTime<Utc>) -> Vec<NewJob> {
    if format.is_readable_directly() {
        vec![TaskKind::Metadata.for_book(book, user, max_attempts, now), TaskKind::Extract.for_book(book, user, max_attempts, now)]
    } else {
        vec![TaskKind::Convert.for_book(book, user, max_attempts, now)]
    }
}

/// The book a job is about, from its payload.
pub fn book_of(payload: &serde_json::Value) -> Option<BookId> {
    payload.get("book_id")?.as_str()?.parse().ok()
}

/// OCR units for a page count under the configured tiers (`[600, 1000, 2000]` → 1, 2, 3);
/// None when the book has more pages than the last tier allows.
pub fn ocr_units(pages: u32, tiers: &[u32]) -> Option<u32> {
    tiers.iter().position(|&limit| pages <= limit).map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_contract() {
        let tiers = [600, 1000, 2000];
        assert_eq!(ocr_units(1, &tiers), Some(1));
        assert_eq!(ocr_units(600, &tiers), Some(1));
        assert_eq!(ocr_units(601, &tiers), Some(2));
        assert_eq!(ocr_units(1000, &tiers), Some(2));
        assert_eq!(ocr_units(2000, &tiers), Some(3));
        assert_eq!(ocr_units(2001, &tiers), None);
    }

    #[test]
    fn kinds_round_trip_and_pick_queues() {
        for kind in TaskKind::ALL {
            assert_eq!(kind.as_str().parse::<TaskKind>().unwrap(), kind);
        }
        assert_eq!(TaskKind::Ocr.queue(), Queue::GpuHigh);
        assert_eq!(TaskKind::Convert.queue(), Queue::CpuDefault);
    }

    #[test]
    fn new_books_get_conversion_or_processing() {
        let (b, u) = (BookId::new(), UserId::new());
        let now = Utc::now();
        let kinds = |f| jobs_for_new_book(f, &b, &u, 3, now).into_iter().map(|j| j.kind).collect::<Vec<_>>();
        assert_eq!(kinds(BookFormat::Mobi), ["book.convert"]);
        assert_eq!(kinds(BookFormat::Epub), ["book.metadata", "book.extract"]);
        assert_eq!(book_of(&TaskKind::Ocr.for_book(&b, &u, 3, now).payload), Some(b));
    }
}
