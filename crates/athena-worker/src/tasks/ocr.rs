//! `book.ocr` (queue `gpu_high`): rasterise each page of an image PDF, recognise it with the
//! configured engine (PP-OCR through ONNX Runtime, or Tesseract), store each page's text as it is
//! done, and build a layered PDF (page images + invisible text) that readers get instead of the
//! original, which is kept. Pages already recognised by an earlier, interrupted run are reused, so a
//! killed worker's retry picks up where it stopped. The result is kept per content: the same bytes
//! uploaded again by anyone are served at once (`instant_completed`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::TaskKind;
use athena_app::App;
use athena_config::OcrEngineKind;
use athena_domain::{BookFormat, ObjectKey};
use athena_ocr::{OcrEngine, OcrLine, PageOcr};
use athena_store::jobs::{BookProcessing, Job, OcrPage, OcrResult};

use super::{blocking, enqueue_next, fetch, load_book, record_error};
use crate::{Task, TaskCtx, TaskError};

/// The engine, loaded on first use and shared by every OCR job of the process (models are large).
pub struct OcrEngines {
    config: Option<athena_ocr::OcrConfig>,
    engine: Mutex<Option<Arc<dyn OcrEngine>>>,
}

impl OcrEngines {
    pub fn from_app(app: &App) -> Self {
        let w = &app.config.worker;
        let engine = match w.ocr_engine {
            OcrEngineKind::Off => None,
            OcrEngineKind::PpOcr => Some(athena_ocr::EngineKind::PpOcr),
            OcrEngineKind::Tesseract => Some(athena_ocr::EngineKind::Tesseract),
        };
        let config = engine.map(|engine| athena_ocr::OcrConfig {
            engine,
            model_dir: w.model_dir.clone(),
            ort_dylib: Some(w.ort_dylib.clone()),
            intra_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8),
            ..Default::default()
        });
        Self { config, engine: Mutex::new(None) }
    }

    fn get(&self) -> Result<Arc<dyn OcrEngine>, TaskError> {
        let Some(config) = &self.config else {
            return Err(TaskError::permanent("ocr_disabled", "OCR is turned off on this server (ATHENA_OCR_ENGINE=off)"));
        };
        let mut slot = self.engine.lock().map_err(|_| TaskError::retry("OCR engine lock poisoned"))?;
        if let Some(engine) = slot.as_ref() {
            return Ok(engine.clone());
        }
        let engine = athena_ocr::engine_from_config(config).map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?;
        *slot = Some(engine.clone());
        Ok(engine)
    }
}

/// Page images in the layered PDF: readable, and a fraction of the PNG size.
const LAYERED_JPEG_QUALITY: u8 = 75;

pub struct OcrTask {
    limit: Duration,
    dpi: u32,
    engines: Arc<OcrEngines>,
}

impl OcrTask {
    pub fn new(app: &App) -> Self {
        let w = &app.config.worker;
        Self { limit: Duration::from_secs(w.timeout_ocr_secs), dpi: w.ocr_dpi, engines: Arc::new(OcrEngines::from_app(app)) }
    }
}

fn lines_json(page: &PageOcr) -> serde_json::Value {
    serde_json::Value::Array(page.lines.iter().map(|l| serde_json::json!({ "text": l.text, "score": l.score, "quad": l.quad })).collect())
}

fn page_from_store(stored: &OcrPage, width: u32, height: u32) -> Option<PageOcr> {
    let lines = stored.lines.as_array()?;
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        let quad: [[f32; 2]; 4] = serde_json::from_value(l.get("quad")?.clone()).ok()?;
        out.push(OcrLine { text: l.get("text")?.as_str()?.to_string(), score: l.get("score")?.as_f64()? as f32, quad });
    }
    Some(PageOcr::new(width, height, out))
}

#[async_trait]
impl Task for OcrTask {
    fn kind(&self) -> &'static str {
        TaskKind::Ocr.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let Some(book) = load_book(ctx, job).await? else { return Ok(()) };
        if book.original_format != BookFormat::Pdf {
            return Err(TaskError::permanent("not_a_pdf", "only PDF books are OCR'd"));
        }
        if book.ocr_status.as_deref() == Some("completed") && book.ocr_result_key.is_some() {
            return Ok(());
        }
        let store = &ctx.app.store;
        let sha = book.content_sha256.clone();
        let book_key = ObjectKey::for_layered(&book.user_id, &book.id);
        let now = ctx.app.clock.now();

        // Someone finished the same content meanwhile: reuse it.
        let reusable = match store.ocr_result(&sha).await? {
            Some(done) if ctx.app.blobs.stat(&done.layered_key).await?.is_some() => Some(done),
            _ => None,
        };
        let (engine_name, pages) = if let Some(done) = reusable {
            let local = fetch(ctx, &done.layered_key, "layered.pdf").await?;
            ctx.app.blobs.put_file(&book_key, &local).await?;
            (done.engine, done.page_count)
        } else {
            let engine = self.engines.get()?;
            store
                .update_book_processing(&book.id, BookProcessing { ocr_status: Some("processing".into()), ..Default::default() }, now)
                .await?;
            let pdf = fetch(ctx, &book.minio_key, "input.pdf").await?;
            let rasterizer = athena_ocr::Rasterizer { dpi: self.dpi, ..Default::default() };
            let pages = {
                let (pdf, r) = (pdf.clone(), rasterizer.clone());
                blocking(move || r.page_count(&pdf)).await?.map_err(|e| TaskError::permanent(e.reason_code(), e.to_string()))?
            };
            let out = ctx.work_dir.join("layered.pdf");
            let file = std::fs::File::create(&out).map_err(|e| TaskError::retry(format!("layered PDF: {e}")))?;
            let mut writer = athena_ocr::LayeredPdfWriter::new(std::io::BufWriter::new(file), LAYERED_JPEG_QUALITY)
                .map_err(|e| TaskError::retry(format!("layered PDF: {e}")))?;
            let progress_every = (pages / 20).max(1);
            for n in 1..=pages {
                if ctx.cancel.is_cancelled() {
                    return Err(TaskError::retry("interrupted"));
                }
                let (pdf, dir, r) = (pdf.clone(), ctx.work_dir.clone(), rasterizer.clone());
                let (image, dpi) = blocking(move || {
                    let page = r.render_page(&pdf, n, &dir)?;
                    let image = athena_ocr::load_image_file(&page.path, r.max_pixels);
                    let _ = std::fs::remove_file(&page.path);
                    Ok::<_, athena_ocr::OcrError>((image?, page.dpi))
                })
                .await?
                .map_err(|e| TaskError::permanent(e.reason_code(), format!("page {n}: {e}")))?;
                let (w, h) = (image.width(), image.height());
                let page = match store.ocr_page(&sha, i64::from(n)).await?.and_then(|p| page_from_store(&p, w, h)) {
                    Some(page) => page,
                    None => {
                        let (engine, image) = (engine.clone(), image.clone());
                        let page = blocking(move || engine.recognize(&image))
                            .await?
                            .map_err(|e| TaskError::permanent(e.reason_code(), format!("page {n}: {e}")))?;
                        store
                            .put_ocr_page(OcrPage {
                                content_sha256: sha.clone(),
                                page: i64::from(n),
                                text: page.text(),
                                lines: lines_json(&page),
                            })
                            .await?;
                        page
                    }
                };
                writer.add_page(&image, dpi as f32, &page).map_err(|e| TaskError::retry(format!("layered PDF page {n}: {e}")))?;
                if n % progress_every == 0 || n == pages {
                    let merge =
                        serde_json::Map::from_iter([("ocr_progress".to_string(), serde_json::json!({ "done": n, "total": pages }))]);
                    store
                        .update_book_processing(
                            &book.id,
                            BookProcessing { meta_merge: Some(merge), ..Default::default() },
                            ctx.app.clock.now(),
                        )
                        .await?;
                }
            }
            let file = writer.finish().map_err(|e| TaskError::retry(format!("layered PDF: {e}")))?;
            file.into_inner()
                .map_err(|e| TaskError::retry(format!("layered PDF: {e}")))?
                .sync_all()
                .map_err(|e| TaskError::retry(format!("layered PDF: {e}")))?;
            let content_key = ObjectKey::for_ocr_content(&sha);
            // Storing a file may move it (local storage), so each key gets its own copy.
            let copy = ctx.work_dir.join("layered-copy.pdf");
            tokio::fs::copy(&out, &copy).await.map_err(|e| TaskError::retry(format!("layered PDF: {e}")))?;
            ctx.app.blobs.put_file(&content_key, &out).await?;
            ctx.app.blobs.put_file(&book_key, &copy).await?;
            let result = OcrResult {
                content_sha256: sha.clone(),
                engine: engine.name().to_string(),
                page_count: i64::from(pages),
                layered_key: content_key,
                created_at: ctx.app.clock.now(),
            };
            store.put_ocr_result(result).await?;
            (engine.name().to_string(), i64::from(pages))
        };
        let merge = serde_json::Map::from_iter([
            ("ocr".to_string(), serde_json::json!({ "engine": engine_name, "pages": pages })),
            ("ocr_error".to_string(), serde_json::Value::Null),
        ]);
        let done = BookProcessing {
            ocr_status: Some("completed".into()),
            ocr_result_key: Some(book_key),
            is_digitalized: Some(true),
            meta_merge: Some(merge),
            ..Default::default()
        };
        store.update_book_processing(&book.id, done, ctx.app.clock.now()).await?;
        // The text layer exists now: extract it for search.
        enqueue_next(ctx, TaskKind::Extract, &book).await
    }

    async fn give_up(&self, ctx: &TaskCtx, job: &Job, error: &TaskError) -> Result<(), TaskError> {
        record_error(ctx, job, "ocr_error", error, BookProcessing { ocr_status: Some("failed".into()), ..Default::default() }).await
    }
}
