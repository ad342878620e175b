//! Athena's tasks. Each is idempotent: it writes to keys derived from the book or its content and
//! sets columns to values derived from the file, so a second run (after a crash, or a duplicate
//! enqueue) leaves the same result.

mod convert;
mod embed;
mod extract;
mod index;
mod metadata;
mod ocr;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::{book_of, TaskKind};
use athena_app::App;
use athena_domain::{BookFormat, ObjectKey};
use athena_store::jobs::{BookProcessing, Job};
use athena_store::Book;

use crate::{Task, TaskCtx, TaskError};

pub use convert::ConvertTask;
pub use embed::{EmbedAnnotationsTask, EmbedTask};
pub use extract::ExtractTask;
pub use index::IndexTask;
pub use metadata::MetadataTask;
pub use ocr::{OcrEngines, OcrTask};

/// Every task this worker runs.
pub fn all(app: &App) -> Vec<Arc<dyn Task>> {
    let w = &app.config.worker;
    vec![
        Arc::new(ConvertTask { limit: Duration::from_secs(w.timeout_conversion_secs) }),
        Arc::new(MetadataTask { limit: Duration::from_secs(w.timeout_covers_secs) }),
        Arc::new(ExtractTask { limit: Duration::from_secs(w.timeout_indexing_secs) }),
        Arc::new(IndexTask { limit: Duration::from_secs(w.timeout_indexing_secs) }),
        Arc::new(OcrTask::new(app)),
        Arc::new(EmbedTask { limit: Duration::from_secs(w.timeout_embedding_secs) }),
        Arc::new(EmbedAnnotationsTask { limit: Duration::from_secs(w.timeout_indexing_secs) }),
        Arc::new(NoopTask),
    ]
}

/// Does nothing: queue benchmarks and tests.
pub struct NoopTask;

#[async_trait]
impl Task for NoopTask {
    fn kind(&self) -> &'static str {
        TaskKind::Noop.as_str()
    }
    fn time_limit(&self) -> Duration {
        Duration::from_secs(10)
    }
    async fn run(&self, _ctx: &TaskCtx, _job: &Job) -> Result<(), TaskError> {
        Ok(())
    }
}

/// The job's book; None when it was deleted permanently meanwhile (nothing left to do).
pub(crate) async fn load_book(ctx: &TaskCtx, job: &Job) -> Result<Option<Book>, TaskError> {
    let id =
        job.book_id.clone().or_else(|| book_of(&job.payload)).ok_or_else(|| TaskError::permanent("bad_job", "the job names no book"))?;
    match ctx.app.store.book_for_job(&id).await {
        Ok(book) => Ok(Some(book)),
        Err(athena_store::StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Queues the next step of a book's processing; its dedup key makes a rerun of this task harmless.
pub(crate) async fn enqueue_next(ctx: &TaskCtx, kind: TaskKind, book: &Book) -> Result<(), TaskError> {
    let job = kind.for_book(&book.id, &book.user_id, ctx.app.config.worker.max_attempts, ctx.app.clock.now());
    ctx.app.store.enqueue_job(job).await?;
    Ok(())
}

/// Copies an object into the job's folder.
pub(crate) async fn fetch(ctx: &TaskCtx, key: &ObjectKey, name: &str) -> Result<PathBuf, TaskError> {
    let path = ctx.work_dir.join(name);
    // Derived files are bounded by the upload limit; a layered PDF or EPUB may be somewhat larger.
    let max = ctx.app.config.limits.max_upload_bytes.saturating_mul(4);
    ctx.app.blobs.download_to(key, &path, max).await?;
    Ok(path)
}

/// The file a reader opens: the layered PDF after OCR, the converted EPUB, else the original EPUB or PDF.
/// None while a book that needs conversion has not been converted.
pub(crate) fn readable(book: &Book) -> Option<(ObjectKey, BookFormat)> {
    if let Some(layered) = &book.ocr_result_key {
        return Some((layered.clone(), BookFormat::Pdf));
    }
    match (&book.converted_epub_key, book.original_format) {
        (Some(key), _) => Some((key.clone(), BookFormat::Epub)),
        (None, f) if f.is_readable_directly() => Some((book.minio_key.clone(), f)),
        (None, _) => None,
    }
}

/// Records a failure reason on the book where users (and the processing status) see it.
pub(crate) async fn record_error(
    ctx: &TaskCtx,
    job: &Job,
    field: &str,
    error: &TaskError,
    update: BookProcessing,
) -> Result<(), TaskError> {
    let Some(book) = job.book_id.clone().or_else(|| book_of(&job.payload)) else { return Ok(()) };
    let mut merge = serde_json::Map::new();
    merge.insert(
        field.to_string(),
        serde_json::json!({ "code": error.code(), "message": error.describe(), "at": ctx.app.clock.now().to_rfc3339() }),
    );
    let update = BookProcessing { meta_merge: Some(merge), ..update };
    match ctx.app.store.update_book_processing(&book, update, ctx.app.clock.now()).await {
        Ok(_) | Err(athena_store::StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs CPU-heavy or blocking work off the async threads; a panic becomes a permanent failure.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, TaskError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| TaskError::permanent("internal_error", "a processing step crashed"))
}
