//! Indexing a book's extracted text (`text/{sha}.jsonl`, written by the worker's `book.extract`).

use std::io::BufRead;

use serde::Deserialize;

use crate::{Doc, Kind, Result, SearchError, SearchIndex};

/// Documents sent to the engine at once: bounds memory for huge books.
const BATCH_DOCS: usize = 128;
const BATCH_CHARS: usize = 4 << 20;

/// One line of the stored text as the worker's `book.extract` writes it: a chapter or a page, with
/// where it starts.
#[derive(serde::Serialize)]
pub struct TextLine<'a> {
    pub index: u32,
    /// `epubcfi(...)` for EPUB chapters, `page:N` for PDF pages.
    pub location: &'a str,
    pub title: Option<&'a str>,
    pub href: Option<&'a str>,
    pub page: Option<u32>,
    pub text: &'a str,
}

/// One line of the stored text as read here; unknown fields are ignored so the format can grow.
#[derive(Deserialize)]
struct Line {
    index: u32,
    location: Option<String>,
    title: Option<String>,
    text: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub sections: u64,
    pub chars: u64,
}

/// Replaces the shared text of `content_key` with the sections read from `lines`, one document
/// per section (id `{content_key}:{index}`). Nothing is visible until the caller commits; a
/// malformed line stops the import with `BadText` and the caller should not commit.
///
/// `book_id` is stored on every section and returned in hits to *every* owner of the content:
/// pass it only for content with a single owner, else `None` (callers map `content_key` to the
/// searching user's own book).
pub fn index_book_text(index: &dyn SearchIndex, content_key: &str, book_id: Option<&str>, lines: impl BufRead) -> Result<ImportStats> {
    index.delete_by_content(content_key)?;
    let mut stats = ImportStats::default();
    let (mut batch, mut batch_chars) = (Vec::new(), 0usize);
    for (n, line) in lines.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = line.map_err(|e| SearchError::BadText { line: line_no, reason: e.to_string() })?;
        if line.trim().is_empty() {
            continue;
        }
        let section: Line = serde_json::from_str(&line).map_err(|e| SearchError::BadText { line: line_no, reason: e.to_string() })?;
        if section.text.trim().is_empty() {
            continue;
        }
        stats.sections += 1;
        stats.chars += section.text.chars().count() as u64;
        batch_chars += section.text.len();
        batch.push(Doc {
            id: format!("{content_key}:{}", section.index),
            owner: None,
            content_key: Some(content_key.to_string()),
            book_id: book_id.map(str::to_string),
            kind: Kind::BookText,
            location: section.location,
            title: section.title,
            text: section.text,
        });
        if batch.len() >= BATCH_DOCS || batch_chars >= BATCH_CHARS {
            index.upsert(std::mem::take(&mut batch))?;
            batch_chars = 0;
        }
    }
    if !batch.is_empty() {
        index.upsert(batch)?;
    }
    Ok(stats)
}
