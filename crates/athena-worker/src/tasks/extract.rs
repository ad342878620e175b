//! `book.extract`: the book's text by chapter (EPUB, with a CFI per chapter) or by page (PDF with a
//! text layer), stored as JSON lines at `text/{content_sha256}.jsonl` for the search index. Keyed by
//! content: the same bytes owned by several users are extracted once.

use std::io::Write;
use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::TaskKind;
use athena_domain::{BookFormat, ObjectKey};
use athena_store::jobs::{BookProcessing, Job};

use super::{blocking, enqueue_next, fetch, load_book, readable, record_error};
use crate::{Task, TaskCtx, TaskError};

pub struct ExtractTask {
    pub limit: Duration,
}

#[async_trait]
impl Task for ExtractTask {
    fn kind(&self) -> &'static str {
        TaskKind::Extract.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let Some(book) = load_book(ctx, job).await? else { return Ok(()) };
        let Some((key, format)) = readable(&book) else {
            return Err(TaskError::permanent("not_converted", "the book has not been converted yet"));
        };
        if format == BookFormat::Pdf && book.is_digitalized == Some(false) && book.ocr_result_key.is_none() {
            // An image-only PDF has no text until it is OCR'd; the OCR job stores its pages.
            let merge = serde_json::Map::from_iter([("text".to_string(), serde_json::json!({ "status": "needs_ocr" }))]);
            let update = BookProcessing { meta_merge: Some(merge), ..Default::default() };
            ctx.app.store.update_book_processing(&book.id, update, ctx.app.clock.now()).await?;
            // Its title and author are searchable already.
            return enqueue_next(ctx, TaskKind::Index, &book).await;
        }
        let text_key = ObjectKey::for_text(&book.content_sha256);
        let (sections, chars) = match ctx.app.blobs.stat(&text_key).await? {
            // Extracted before (another owner of the same bytes, or an earlier run).
            Some(_) => (None, None),
            None => {
                let path = fetch(ctx, &key, "book").await?;
                let out = ctx.work_dir.join("text.jsonl");
                let (sections, chars) = match format {
                    BookFormat::Epub => {
                        let out = out.clone();
                        blocking(move || write_epub_text(&path, &out)).await??
                    }
                    _ => write_pdf_text(&path, &out, &ctx.work_dir, self.limit).await?,
                };
                ctx.app.blobs.put_file(&text_key, &out).await?;
                (Some(sections), Some(chars))
            }
        };
        let mut info = serde_json::json!({ "status": "extracted", "key": text_key.as_str() });
        if let (Some(s), Some(c)) = (sections, chars) {
            info["sections"] = s.into();
            info["chars"] = c.into();
        }
        let merge = serde_json::Map::from_iter([("text".to_string(), info), ("text_error".to_string(), serde_json::Value::Null)]);
        ctx.app
            .store
            .update_book_processing(&book.id, BookProcessing { meta_merge: Some(merge), ..Default::default() }, ctx.app.clock.now())
            .await?;
        // The text is stored: make it searchable, by words and (when the model is on) by meaning.
        if ctx.app.semantic.is_some() {
            enqueue_next(ctx, TaskKind::Embed, &book).await?;
        }
        enqueue_next(ctx, TaskKind::Index, &book).await
    }

    async fn give_up(&self, ctx: &TaskCtx, job: &Job, error: &TaskError) -> Result<(), TaskError> {
        record_error(ctx, job, "text_error", error, BookProcessing::default()).await
    }
}

fn io_err(e: std::io::Error) -> TaskError {
    TaskError::retry(format!("writing extracted text: {e}"))
}

fn write_epub_text(path: &std::path::Path, out: &std::path::Path) -> Result<(u32, u64), TaskError> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io_err)?);
    let mut write_error = None;
    let summary = athena_formats::extract_epub_text(path, &athena_formats::Limits::default(), &mut |s| {
        let line = athena_search::TextLine {
            index: s.index,
            location: &s.location,
            title: s.title.as_deref(),
            href: Some(&s.href),
            page: None,
            text: &s.text,
        };
        if let Err(e) = serde_json::to_writer(&mut w, &line).map_err(std::io::Error::other).and_then(|_| w.write_all(b"\n")) {
            write_error.get_or_insert(e);
        }
        Ok(())
    })
    .map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?;
    if let Some(e) = write_error {
        return Err(io_err(e));
    }
    w.flush().map_err(io_err)?;
    Ok((summary.sections, summary.chars))
}

async fn write_pdf_text(
    path: &std::path::Path,
    out: &std::path::Path,
    work: &std::path::Path,
    limit: Duration,
) -> Result<(u32, u64), TaskError> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io_err)?);
    let (mut sections, mut chars, mut write_error) = (0u32, 0u64, None);
    let limits = athena_convert::PdfLimits {
        timeout: limit.saturating_sub(Duration::from_secs(5)).max(Duration::from_secs(5)),
        ..Default::default()
    };
    athena_convert::pdf_text_pages(path, work, &limits, |page, text| {
        let location = format!("page:{page}");
        let line = athena_search::TextLine {
            index: page.saturating_sub(1),
            location: &location,
            title: None,
            href: None,
            page: Some(page),
            text: &text,
        };
        if let Err(e) = serde_json::to_writer(&mut w, &line).map_err(std::io::Error::other).and_then(|_| w.write_all(b"\n")) {
            write_error.get_or_insert(e);
        }
        sections += 1;
        chars += text.chars().count() as u64;
    })
    .await
    .map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?;
    if let Some(e) = write_error {
        return Err(io_err(e));
    }
    w.flush().map_err(io_err)?;
    Ok((sections, chars))
}
