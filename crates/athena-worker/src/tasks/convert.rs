//! `book.convert`: MOBI, AZW3, FB2, TXT, RTF, DJVU, LIT, DOCX (and DOC through LibreOffice) to EPUB
//! with Calibre in a sandboxed subprocess. The original stays the book's content; the EPUB is
//! stored beside it and becomes what readers open. Then the book's metadata and text jobs follow.

use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::TaskKind;
use athena_domain::ObjectKey;
use athena_store::jobs::{BookProcessing, Job};

use super::{enqueue_next, fetch, load_book, record_error};
use crate::{Task, TaskCtx, TaskError};

pub struct ConvertTask {
    pub limit: Duration,
}

#[async_trait]
impl Task for ConvertTask {
    fn kind(&self) -> &'static str {
        TaskKind::Convert.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let Some(book) = load_book(ctx, job).await? else { return Ok(()) };
        let now = ctx.app.clock.now();
        if book.original_format.is_readable_directly() {
            return Err(TaskError::permanent("not_convertible", format!("{} needs no conversion", book.original_format)));
        }
        let done = book.conversion_status.as_deref() == Some("completed") && book.converted_epub_key.is_some();
        if !done {
            ctx.app
                .store
                .update_book_processing(
                    &book.id,
                    BookProcessing { conversion_status: Some("processing".into()), ..Default::default() },
                    now,
                )
                .await?;
            let input = fetch(ctx, &book.minio_key, "original").await?;
            let limits = athena_convert::ConvertLimits {
                timeout: self.limit.saturating_sub(Duration::from_secs(5)).max(Duration::from_secs(5)),
                address_space_bytes: ctx.app.config.worker.convert_memory_mb.saturating_mul(1024 * 1024),
                ..Default::default()
            };
            let converted = athena_convert::ebook_convert(&input, book.original_format, &ctx.work_dir, &limits)
                .await
                .map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?;
            let key = ObjectKey::for_converted(&book.user_id, &book.id);
            ctx.app.blobs.put_file(&key, converted.path()).await?;
            ctx.app
                .store
                .update_book_processing(
                    &book.id,
                    BookProcessing {
                        conversion_status: Some("completed".into()),
                        converted_epub_key: Some(key),
                        meta_merge: Some(serde_json::Map::from_iter([("conversion_error".to_string(), serde_json::Value::Null)])),
                        ..Default::default()
                    },
                    ctx.app.clock.now(),
                )
                .await?;
        }
        // Enqueued after the EPUB is recorded, so they read it; dedup keys make a rerun harmless.
        enqueue_next(ctx, TaskKind::Metadata, &book).await?;
        enqueue_next(ctx, TaskKind::Extract, &book).await
    }

    async fn give_up(&self, ctx: &TaskCtx, job: &Job, error: &TaskError) -> Result<(), TaskError> {
        record_error(ctx, job, "conversion_error", error, BookProcessing { conversion_status: Some("failed".into()), ..Default::default() })
            .await
    }
}
