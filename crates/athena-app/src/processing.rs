//! What happens to a book after upload, as users see it: its processing status (conversion, cover,
//! text, OCR, with the jobs behind them) and OCR requests with their tiers and monthly quota.

use athena_domain::{BookFormat, BookId, ObjectKey};
use athena_store::jobs::{BookProcessing, Job, JobFilter, OcrCharge, OcrPage};
use athena_store::Book;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

use crate::pipeline::{ocr_units, TaskKind};
use crate::{App, AppError, AppResult, Principal};

/// Seconds one page takes on a small CPU; only for the estimate shown with a queued OCR request.
const OCR_SECONDS_PER_PAGE: f64 = 1.5;

#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub id: uuid::Uuid,
    pub kind: String,
    pub queue: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind.clone(),
            queue: j.queue.as_str().to_string(),
            state: j.state.as_str().to_string(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            last_error: j.last_error.clone(),
            run_at: j.run_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessingStatus {
    pub book_id: BookId,
    pub conversion_status: Option<String>,
    pub ocr_status: Option<String>,
    pub has_cover: bool,
    /// `extracted`, `needs_ocr`, or null while pending.
    pub text_status: Option<String>,
    /// Reasons of failed steps, by step (`conversion_error`, `metadata_error`, `text_error`, `ocr_error`).
    pub errors: serde_json::Map<String, serde_json::Value>,
    pub jobs: Vec<JobView>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OcrRequest {
    Queued { queue_position: i64, estimated_minutes: u64, units: u32, units_left: u32 },
    InstantCompleted { units: u32, units_left: u32 },
}

#[derive(Clone, Debug, Serialize)]
pub struct OcrStatus {
    pub book_id: BookId,
    pub ocr_status: Option<String>,
    pub is_digitalized: Option<bool>,
    pub page_count: Option<i64>,
    pub pages_done: Option<i64>,
    pub queue_position: Option<i64>,
    pub engine: Option<String>,
    pub error: Option<serde_json::Value>,
    pub job: Option<JobView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OcrPageView {
    pub page: i64,
    pub text: String,
    pub lines: serde_json::Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct OcrHit {
    pub page: i64,
    pub snippet: String,
}

fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now)
}

fn ocr_job_of(jobs: &[Job]) -> Option<&Job> {
    jobs.iter().find(|j| j.kind == TaskKind::Ocr.as_str())
}

impl App {
    async fn jobs_of(&self, book: &BookId) -> AppResult<Vec<Job>> {
        Ok(self.store.list_jobs(&JobFilter { book_id: Some(book.clone()), limit: 50, ..Default::default() }).await?)
    }

    pub async fn processing_status(&self, who: &Principal, id: &BookId) -> AppResult<ProcessingStatus> {
        let book = self.store.book(&who.user_id, id, true).await?;
        let jobs = self.jobs_of(id).await?;
        let errors = ["conversion_error", "metadata_error", "text_error", "ocr_error"]
            .into_iter()
            .filter_map(|k| book.meta.get(k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone())))
            .collect();
        let text_status = book.meta.get("text").and_then(|t| t.get("status")).and_then(|s| s.as_str()).map(str::to_string);
        Ok(ProcessingStatus {
            book_id: book.id.clone(),
            conversion_status: book.conversion_status.clone(),
            ocr_status: book.ocr_status.clone(),
            has_cover: book.cover_image_key.is_some(),
            text_status,
            errors,
            jobs: jobs.iter().map(JobView::from).collect(),
        })
    }

    /// `POST /books/{id}/ocr`: checks, charges units, and queues the OCR — or reuses the OCR of the
    /// same content done before (by anyone), which still costs its units.
    pub async fn request_ocr(&self, who: &Principal, id: &BookId) -> AppResult<OcrRequest> {
        let book = self.store.book(&who.user_id, id, false).await?;
        if book.original_format != BookFormat::Pdf {
            return Err(AppError::validation("book", "only PDF books are OCR'd; other formats carry their text"));
        }
        if matches!(book.ocr_status.as_deref(), Some("pending") | Some("processing")) {
            return Err(AppError::OcrInProgress);
        }
        if book.is_digitalized == Some(true) || book.ocr_status.as_deref() == Some("completed") {
            return Err(AppError::AlreadyDigitalized);
        }
        let worker = &self.config.worker;
        if worker.ocr_engine == athena_config::OcrEngineKind::Off {
            return Err(AppError::Forbidden("OCR is turned off on this server".into()));
        }
        let pages = book.page_count.unwrap_or(0).max(0) as u32;
        if pages == 0 {
            return Err(AppError::validation("book", "the PDF's page count is unknown"));
        }
        let max = worker.ocr_tiers.last().copied().unwrap_or(0);
        let units = ocr_units(pages, &worker.ocr_tiers).ok_or(AppError::OcrMaxPagesExceeded { pages, max })?;
        let now = self.clock.now();
        let used = self.store.ocr_units_used(&who.user_id, month_start(now)).await?.max(0) as u32;
        let left = worker.ocr_free_units.saturating_sub(used);
        if units > left {
            return Err(AppError::OcrQuotaExceeded { needed: units, left });
        }
        let charge = OcrCharge { user_id: who.user_id.clone(), book_id: book.id.clone(), units: units as i64, at: now };

        if let Some(done) = self.store.ocr_result(&book.content_sha256).await? {
            if self.blobs.stat(&done.layered_key).await?.is_some() {
                let key = ObjectKey::for_layered(&book.user_id, &book.id);
                self.copy_object(&done.layered_key, &key).await?;
                let update = BookProcessing {
                    ocr_status: Some("completed".into()),
                    ocr_result_key: Some(key),
                    is_digitalized: Some(true),
                    meta_merge: Some(serde_json::Map::from_iter([(
                        "ocr".to_string(),
                        serde_json::json!({ "engine": done.engine, "pages": done.page_count, "reused": true }),
                    )])),
                    ..Default::default()
                };
                self.store.update_book_processing(&book.id, update, now).await?;
                self.store.record_ocr_charge(charge).await?;
                return Ok(OcrRequest::InstantCompleted { units, units_left: left - units });
            }
        }

        let job = TaskKind::Ocr.for_book(&book.id, &book.user_id, worker.max_attempts, now);
        let (job, created) = self.store.enqueue_job(job).await?;
        if !created {
            return Err(AppError::OcrInProgress);
        }
        self.store.record_ocr_charge(charge).await?;
        let pending = BookProcessing {
            ocr_status: Some("pending".into()),
            meta_merge: Some(serde_json::Map::from_iter([
                ("ocr_error".to_string(), serde_json::Value::Null),
                ("ocr_progress".to_string(), serde_json::json!({ "done": 0, "total": pages })),
            ])),
            ..Default::default()
        };
        self.store.update_book_processing(&book.id, pending, now).await?;
        let position = self.store.queue_position(job.id).await?.unwrap_or(0);
        // Jobs ahead are assumed to be of the same size as this one: a rough, honest estimate.
        let seconds = (position as f64 + 1.0) * pages as f64 * OCR_SECONDS_PER_PAGE;
        Ok(OcrRequest::Queued {
            queue_position: position,
            estimated_minutes: (seconds / 60.0).ceil().max(1.0) as u64,
            units,
            units_left: left - units,
        })
    }

    pub async fn ocr_status(&self, who: &Principal, id: &BookId) -> AppResult<OcrStatus> {
        let book = self.store.book(&who.user_id, id, false).await?;
        let jobs = self.jobs_of(id).await?;
        let job = ocr_job_of(&jobs);
        let queue_position = match job {
            Some(j) => self.store.queue_position(j.id).await?,
            None => None,
        };
        let progress = book.meta.get("ocr_progress");
        Ok(OcrStatus {
            book_id: book.id.clone(),
            ocr_status: book.ocr_status.clone(),
            is_digitalized: book.is_digitalized,
            page_count: book.page_count,
            pages_done: progress.and_then(|p| p.get("done")).and_then(|d| d.as_i64()),
            queue_position,
            engine: book.meta.get("ocr").and_then(|o| o.get("engine")).and_then(|e| e.as_str()).map(str::to_string),
            error: book.meta.get("ocr_error").filter(|e| !e.is_null()).cloned(),
            job: job.map(JobView::from),
        })
    }

    async fn ocr_book(&self, who: &Principal, id: &BookId) -> AppResult<Book> {
        let book = self.store.book(&who.user_id, id, false).await?;
        if book.ocr_status.is_none() {
            return Err(AppError::NotFound);
        }
        Ok(book)
    }

    /// One page's OCR text and line boxes (1-based), once that page is done.
    pub async fn ocr_page(&self, who: &Principal, id: &BookId, page: i64) -> AppResult<OcrPageView> {
        let book = self.ocr_book(who, id).await?;
        if page < 1 || book.page_count.is_some_and(|n| page > n) {
            return Err(AppError::validation("page", "is outside the book"));
        }
        let OcrPage { page, text, lines, .. } = self.store.ocr_page(&book.content_sha256, page).await?.ok_or(AppError::NotFound)?;
        Ok(OcrPageView { page, text, lines })
    }

    /// Pages whose OCR text contains `query`, with a snippet around the first match.
    pub async fn ocr_search(&self, who: &Principal, id: &BookId, query: &str) -> AppResult<Vec<OcrHit>> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > 200 {
            return Err(AppError::validation("q", "must be 1 to 200 characters"));
        }
        let book = self.ocr_book(who, id).await?;
        let pages = self.store.search_ocr_pages(&book.content_sha256, query, 100).await?;
        Ok(pages.into_iter().map(|p| OcrHit { page: p.page, snippet: snippet(&p.text, query, 40) }).collect())
    }

    /// Streams one object into another key (server-side copy is not in every store's API).
    async fn copy_object(&self, from: &ObjectKey, to: &ObjectKey) -> AppResult<()> {
        let read = self.blobs.get(from, None).await?;
        self.blobs.put_stream(to, read.body, u64::MAX).await?;
        Ok(())
    }
}

/// Up to `context` characters either side of the first case-insensitive match.
fn snippet(text: &str, query: &str, context: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let needle: Vec<char> = query.chars().flat_map(char::to_lowercase).collect();
    // Lowercasing can change lengths (rare); fall back to the start of the page then.
    let at = if lower.len() == chars.len() { lower.windows(needle.len()).position(|w| w == needle.as_slice()).unwrap_or(0) } else { 0 };
    let start = at.saturating_sub(context);
    let end = (at + needle.len() + context).min(chars.len());
    let mut s: String = chars[start..end].iter().collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_centre_on_the_match() {
        let text = "关关雎鸠，在河之洲。窈窕淑女，君子好逑。";
        assert_eq!(snippet(text, "淑女", 2), "…窈窕淑女，君…");
        assert_eq!(snippet("Hello World", "world", 3), "…lo World");
    }

    #[test]
    fn months_start_on_the_first() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 5, 0, 0).unwrap();
        assert_eq!(month_start(t), Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    }
}
