//! `book.metadata`: metadata from the readable file (the converted EPUB for converted books) and the
//! cover, stored as a 400 px wide lossy WebP at `covers/{book_id}.webp`: the book's own cover, the
//! first page of a PDF, or a generated one (title on a colour) when the book has none.

use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::TaskKind;
use athena_domain::{BookFormat, ObjectKey};
use athena_formats::QuickMetadata;
use athena_store::jobs::{BookProcessing, Job};
use athena_store::Book;

use super::{blocking, fetch, load_book, readable, record_error};
use crate::{Task, TaskCtx, TaskError};

pub struct MetadataTask {
    pub limit: Duration,
}

#[async_trait]
impl Task for MetadataTask {
    fn kind(&self) -> &'static str {
        TaskKind::Metadata.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let Some(book) = load_book(ctx, job).await? else { return Ok(()) };
        let Some((key, format)) = readable(&book) else {
            return Err(TaskError::permanent("not_converted", "the book has not been converted yet"));
        };
        let path = fetch(ctx, &key, "book").await?;
        let meta = {
            let path = path.clone();
            blocking(move || athena_formats::quick_metadata(&path, format, &athena_formats::Limits::default())).await?
        }
        .map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?;

        let cover = self.cover(ctx, &book, format, &path, &meta).await?;
        let cover_key = ObjectKey::for_cover(&book.id, "webp");
        ctx.app.blobs.put_bytes(&cover_key, bytes::Bytes::from(cover)).await?;
        if let Some(old) = book.cover_image_key.as_ref().filter(|old| **old != cover_key) {
            // An older cover in another format (stored by an earlier version at upload).
            let _ = ctx.app.blobs.delete(old).await;
        }
        let update = self.update_for(&book, &meta, cover_key);
        ctx.app.store.update_book_processing(&book.id, update, ctx.app.clock.now()).await?;
        Ok(())
    }

    async fn give_up(&self, ctx: &TaskCtx, job: &Job, error: &TaskError) -> Result<(), TaskError> {
        record_error(ctx, job, "metadata_error", error, BookProcessing::default()).await
    }
}

impl MetadataTask {
    /// The book's cover as WebP; a cover that cannot be used (too large, undecodable) falls back
    /// to a generated one rather than failing the book.
    async fn cover(
        &self,
        ctx: &TaskCtx,
        book: &Book,
        format: BookFormat,
        path: &std::path::Path,
        meta: &QuickMetadata,
    ) -> Result<Vec<u8>, TaskError> {
        let limits = athena_media::MediaLimits::default();
        let source: Option<Vec<u8>> = if let Some(c) = &meta.cover {
            Some(c.bytes.clone())
        } else if format == BookFormat::Pdf {
            let (pdf, dir) = (path.to_path_buf(), ctx.work_dir.clone());
            let timeout = self.limit / 2;
            match blocking(move || athena_media::pdf_first_page_png(&pdf, 400, timeout, &dir)).await? {
                Ok(png) => Some(png),
                Err(e) => {
                    tracing::warn!(book = %book.id, error = %e, "could not render the first page");
                    None
                }
            }
        } else {
            None
        };
        if let Some(bytes) = source {
            match blocking(move || athena_media::cover_webp(&bytes, &limits)).await? {
                Ok(webp) => return Ok(webp),
                Err(e) => tracing::warn!(book = %book.id, error = %e, "cover unusable; generating one"),
            }
        }
        let title = title_for(book, meta);
        let author = meta.authors.first().cloned().or_else(|| book.author.clone());
        let font = ctx.app.config.worker.cover_font.clone();
        let generated = blocking(move || {
            let font = font.map(athena_media::FontSource::Path);
            athena_media::generated_cover(&title, author.as_deref(), font.as_ref())
        })
        .await?
        .map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?;
        if !generated.text_rendered {
            tracing::warn!(book = %book.id, "no font found for generated covers; set ATHENA_COVER_FONT");
        }
        Ok(generated.webp)
    }

    /// What the file says, applied where the user has not confirmed their own metadata. Books
    /// that were converted got only a file-name title at upload, so their metadata comes from the
    /// EPUB; for the others the upload already read it and only gaps are filled.
    fn update_for(&self, book: &Book, meta: &QuickMetadata, cover_key: ObjectKey) -> BookProcessing {
        let editable = !book.metadata_confirmed;
        let converted = from_converted_metadata(book);
        let clean = |s: &Option<String>| s.as_ref().map(|s| s.trim().to_string()).filter(|s| meaningful(s));
        let authors = (!meta.authors.is_empty()).then(|| meta.authors.join(", "));
        let mut merge = serde_json::Map::new();
        merge.insert("publisher".into(), serde_json::json!(meta.publisher));
        merge.insert("identifiers".into(), serde_json::json!(meta.identifiers));
        merge.insert("description".into(), serde_json::json!(meta.description));
        merge.insert("toc".into(), serde_json::json!(meta.toc));
        merge.insert("authors".into(), serde_json::json!(meta.authors));
        merge.insert("metadata_error".into(), serde_json::Value::Null);
        BookProcessing {
            title: clean(&meta.title).filter(|_| editable && converted).map(|t| t.chars().take(500).collect()),
            author: authors.filter(|_| editable && (converted || book.author.is_none())).map(|a| a.chars().take(500).collect()),
            language: clean(&meta.language).filter(|_| editable && (converted || book.language.is_none())),
            cover_key: Some(cover_key),
            page_count: meta.page_count.map(i64::from).filter(|_| book.page_count.is_none()),
            meta_merge: Some(merge),
            ..Default::default()
        }
    }
}

/// False for empty values and for text lost to a wrong encoding upstream ("??", "���").
fn meaningful(s: &str) -> bool {
    s.chars().any(|c| c.is_alphanumeric() && c != '\u{FFFD}')
}

/// Converted books whose source format carries metadata (a TXT file has none: Calibre would name
/// the book after its first line).
fn from_converted_metadata(book: &Book) -> bool {
    !book.original_format.is_readable_directly() && book.original_format != BookFormat::Txt
}

fn title_for(book: &Book, meta: &QuickMetadata) -> String {
    if from_converted_metadata(book) && !book.metadata_confirmed {
        if let Some(t) = meta.title.as_ref().filter(|t| meaningful(t)) {
            return t.clone();
        }
    }
    book.title.clone()
}
