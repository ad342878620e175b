//! The worker end to end: uploads through the API, the queue drained with `Worker::drain`, results
//! checked through the API and the stored files — covers, conversions (checked by their text, not
//! an exit code), text extraction, OCR with its tiers/quota/reuse, failures with reasons, and the
//! queue's own guarantees (retry with backoff, dead letter, time limit, crash, cancel, lease expiry).

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use athena_domain::{BookId, ObjectKey};
use athena_store::jobs::{Job, JobState, NewJob, Queue};
use athena_worker::{Outcome, Task, TaskCtx, TaskError, Worker};
use common::{corpus, Backend, TestApp, User};
use futures::StreamExt;
use serde_json::Value;

on_both_backends!(
    epub_and_pdf_get_webp_covers_and_text,
    ocr_requests_follow_the_contract,
    queue_retries_dead_letters_and_limits,
    search_finds_each_users_own_books
);

/// Width of a lossy WebP (`RIFF….WEBPVP8 ` + VP8 key frame header), None if it is not one.
fn lossy_webp_width(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 30 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WEBP" || !bytes.windows(4).any(|w| w == b"VP8 ") {
        return None;
    }
    match &bytes[12..16] {
        b"VP8 " => Some(u32::from(u16::from_le_bytes([bytes[26], bytes[27]]) & 0x3fff)),
        // Extended format (lossy with alpha): canvas width minus one, 24 bits.
        b"VP8X" => Some(1 + u32::from_le_bytes([bytes[24], bytes[25], bytes[26], 0])),
        _ => None,
    }
}

async fn book_json(t: &TestApp, user: &User, id: &str) -> Value {
    let r = t.get(user, &format!("/api/v1/books/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["data"].clone()
}

async fn status(t: &TestApp, user: &User, id: &str) -> Value {
    let r = t.get(user, &format!("/api/v1/books/{id}/processing/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["data"].clone()
}

async fn upload_id(t: &TestApp, user: &User, path: &std::path::Path) -> String {
    let (code, body) = t.upload(user, path).await;
    assert!(code == 200 || code == 201, "{}: {code} {body}", path.display());
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn drain(t: &TestApp) -> Vec<athena_worker::RunReport> {
    let reports = Worker::new(t.app.clone()).drain().await.unwrap();
    for r in &reports {
        assert!(matches!(r.outcome, Outcome::Succeeded | Outcome::Dead { .. }), "{r:?}");
    }
    reports
}

/// The stored text of a book's content, one JSON section per line.
async fn stored_text(t: &TestApp, id: &str) -> Vec<Value> {
    let book = t.app.store.book_for_job(&id.parse::<BookId>().unwrap()).await.unwrap();
    let read = t.app.blobs.get(&ObjectKey::for_text(&book.content_sha256), None).await.unwrap();
    let mut bytes = Vec::new();
    let mut body = read.body;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn cover_bytes(t: &TestApp, user: &User, id: &str) -> (String, Vec<u8>) {
    let r = t.get(user, &format!("/api/v1/books/{id}/cover")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.bytes().await.unwrap().to_vec())
}

async fn epub_and_pdf_get_webp_covers_and_text(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let lunyu = upload_id(&t, &ann, &corpus().join("zh/lunyu.epub")).await;
    let pdf = upload_id(&t, &ann, &corpus().join("pdf/text-layer-zh.pdf")).await;
    let scanned = upload_id(&t, &ann, &corpus().join("pdf/scanned-en.pdf")).await;
    let no_cover = upload_id(&t, &ann, &corpus().join("epub/georgia-cfi.epub")).await;
    let queued = status(&t, &ann, &lunyu).await;
    let kinds: Vec<&str> = queued["jobs"].as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"book.metadata") && kinds.contains(&"book.extract"), "{queued}");

    let etag = t.get(&ann, &format!("/api/v1/books/{lunyu}")).send().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    drain(&t).await;
    // Background processing does not invalidate the version a user's edit names in If-Match.
    let r = t
        .patch(&ann, &format!("/api/v1/books/{lunyu}/metadata"))
        .header("If-Match", etag)
        .json(&serde_json::json!({ "title": "论语" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drain(&t).await;
    for id in [&lunyu, &pdf, &scanned, &no_cover] {
        let (ct, bytes) = cover_bytes(&t, &ann, id).await;
        assert_eq!(ct, "image/webp", "{id}");
        let width = lossy_webp_width(&bytes).expect("a lossy WebP cover");
        assert!(width <= 400 && width > 100, "cover width {width}");
        let s = status(&t, &ann, id).await;
        assert!(s["jobs"].as_array().unwrap().iter().all(|j| j["state"] == "succeeded"), "{s}");
        assert_eq!(s["has_cover"], true);
    }
    assert_eq!(lossy_webp_width(&cover_bytes(&t, &ann, &lunyu).await.1), Some(400), "big covers are scaled to 400 px");
    let book = book_json(&t, &ann, &lunyu).await;
    assert!(book["cover_url"].as_str().unwrap().ends_with(".webp") || book["cover_url"].as_str().unwrap().contains("cover"), "{book}");

    // Text by chapter with CFIs, and by page.
    let sections = stored_text(&t, &lunyu).await;
    assert!(sections.len() >= 20, "{} sections", sections.len());
    let all: String = sections.iter().map(|s| s["text"].as_str().unwrap()).collect();
    for phrase in ["学而时习之", "吾日三省吾身", "巧言令色"] {
        assert!(all.contains(phrase), "{phrase}");
    }
    assert!(sections.iter().all(|s| s["location"].as_str().unwrap().starts_with("epubcfi(/6/")));
    assert_eq!(status(&t, &ann, &lunyu).await["text_status"], "extracted");
    let pages = stored_text(&t, &pdf).await;
    assert!(!pages.is_empty() && pages[0]["location"] == "page:1", "{:?}", pages.first());
    // An image PDF has no text until OCR.
    assert_eq!(status(&t, &ann, &scanned).await["text_status"], "needs_ocr");
    // Running everything again changes nothing (idempotent tasks; dedup while unfinished).
    let again = Worker::new(t.app.clone()).drain().await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    // Deleting the only book with that content frees its derived files too.
    let sha = t.app.store.book_for_job(&lunyu.parse::<BookId>().unwrap()).await.unwrap().content_sha256;
    let cover = ObjectKey::for_cover(&lunyu.parse::<BookId>().unwrap(), "webp");
    assert!(t.app.blobs.stat(&cover).await.unwrap().is_some());
    let r = t.delete(&ann, &format!("/api/v1/books/{lunyu}/permanent")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert!(t.app.blobs.stat(&ObjectKey::for_text(&sha)).await.unwrap().is_none(), "text freed");
    assert!(t.app.blobs.stat(&cover).await.unwrap().is_none(), "cover freed");
    t.stop().await;
}

async fn ocr_requests_follow_the_contract(backend: Backend) {
    let t = TestApp::spawn_with(backend, &[("ATHENA_OCR_FREE_UNITS", "2")]).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let text_pdf = upload_id(&t, &ann, &corpus().join("pdf/text-layer-zh.pdf")).await;
    let epub = upload_id(&t, &ann, &corpus().join("zh/lunyu.epub")).await;
    let scanned = upload_id(&t, &ann, &corpus().join("pdf/scanned-en.pdf")).await;
    drain(&t).await;

    let ocr = |user: &User, id: &str| t.post(user, &format!("/api/v1/books/{id}/ocr")).send();
    let r = ocr(&ann, &text_pdf).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "already_digitalized");
    assert_eq!(ocr(&ann, &epub).await.unwrap().status(), 422);
    assert_eq!(ocr(&bob, &scanned).await.unwrap().status(), 404, "another user's book");

    let r = ocr(&ann, &scanned).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["status"], "queued", "{body}");
    assert_eq!(body["data"]["queue_position"], 0);
    assert!(body["data"]["estimated_minutes"].as_u64().unwrap() >= 1);
    assert_eq!(book_json(&t, &ann, &scanned).await["ocr_status"], "pending");
    let r = ocr(&ann, &scanned).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "ocr_in_progress");

    drain(&t).await;
    let book = book_json(&t, &ann, &scanned).await;
    assert_eq!(book["ocr_status"], "completed", "{book}");
    let s: Value = t.get(&ann, &format!("/api/v1/books/{scanned}/ocr/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["data"]["pages_done"], 1, "{s}");
    let page: Value = t.get(&ann, &format!("/api/v1/books/{scanned}/ocr/page/1")).send().await.unwrap().json().await.unwrap();
    let text = page["data"]["text"].as_str().unwrap();
    assert!(text.contains("universally acknowledged"), "{text}");
    assert!(!page["data"]["lines"].as_array().unwrap().is_empty());
    let hits: Value = t.get(&ann, &format!("/api/v1/books/{scanned}/ocr/search?q=FORTUNE")).send().await.unwrap().json().await.unwrap();
    assert_eq!(hits["data"][0]["page"], 1, "{hits}");
    assert_eq!(t.get(&ann, &format!("/api/v1/books/{scanned}/ocr/page/2")).send().await.unwrap().status(), 422);
    // Readers now get the layered PDF; the original is still there.
    let layered = t.get(&ann, &format!("/api/v1/books/{scanned}/content")).send().await.unwrap().bytes().await.unwrap();
    let original = t.get(&ann, &format!("/api/v1/books/{scanned}/content?original=true")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(original.as_ref(), std::fs::read(corpus().join("pdf/scanned-en.pdf")).unwrap().as_slice());
    assert!(layered.starts_with(b"%PDF") && layered != original);
    // The text of the OCR'd book was extracted for search.
    let sections = stored_text(&t, &scanned).await;
    assert!(sections.iter().any(|s| s["text"].as_str().unwrap().contains("truth universally")), "{sections:?}");
    let r = ocr(&ann, &scanned).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "already_digitalized");

    // Bob uploads the same bytes: reused at once, and still charged.
    let bobs = upload_id(&t, &bob, &corpus().join("pdf/scanned-en.pdf")).await;
    drain(&t).await;
    let body: Value = ocr(&bob, &bobs).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["status"], "instant_completed", "{body}");
    assert_eq!(body["data"]["units_left"], 1);
    assert_eq!(book_json(&t, &bob, &bobs).await["ocr_status"], "completed");
    let page: Value = t.get(&bob, &format!("/api/v1/books/{bobs}/ocr/page/1")).send().await.unwrap().json().await.unwrap();
    assert!(page["data"]["text"].as_str().unwrap().contains("universally"));

    // Monthly quota: Ann has 2 units and spent 1; a second scanned PDF costs 1, a third is refused.
    let shijing = upload_id(&t, &ann, &corpus().join("pdf/scanned-shijing.pdf")).await;
    drain(&t).await;
    assert_eq!(ocr(&ann, &shijing).await.unwrap().status(), 200);
    let r = t
        .upload_bytes(&ann, "copy.pdf", {
            let mut b = std::fs::read(corpus().join("pdf/scanned-en.pdf")).unwrap();
            b.extend_from_slice(b"\n%copy\n");
            b
        })
        .await;
    let copy = r.1["data"]["id"].as_str().unwrap().to_string();
    let r = ocr(&ann, &copy).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "ocr_quota_exceeded", "{body}");
    t.stop().await;
}

/// A task whose behaviour the test scripts: fail n times, sleep, panic.
struct Scripted {
    kind: &'static str,
    fail_times: u32,
    permanent: bool,
    sleep: Duration,
    panic: bool,
    runs: AtomicU32,
}

impl Scripted {
    fn new(kind: &'static str) -> Self {
        Self { kind, fail_times: 0, permanent: false, sleep: Duration::ZERO, panic: false, runs: AtomicU32::new(0) }
    }
}

#[async_trait]
impl Task for Scripted {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn time_limit(&self) -> Duration {
        Duration::from_millis(700)
    }
    async fn run(&self, _ctx: &TaskCtx, _job: &Job) -> Result<(), TaskError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if self.panic {
            panic!("scripted panic");
        }
        tokio::time::sleep(self.sleep).await;
        if n <= self.fail_times {
            return Err(if self.permanent {
                TaskError::permanent("broken_input", "scripted")
            } else {
                TaskError::retry(format!("transient {n}"))
            });
        }
        Ok(())
    }
}

fn job(kind: &str, dedup: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> NewJob {
    NewJob {
        id: uuid::Uuid::now_v7(),
        queue: Queue::CpuDefault,
        kind: kind.to_string(),
        payload: serde_json::json!({}),
        dedup_key: dedup.map(str::to_string),
        max_attempts: 3,
        priority: 5,
        run_at: now,
        user_id: None,
        book_id: None,
        now,
    }
}

async fn queue_retries_dead_letters_and_limits(backend: Backend) {
    let t = TestApp::spawn_with(backend, &[("ATHENA_JOB_LEASE_SECS", "1")]).await;
    let store = t.app.store.clone();
    let now = || t.app.clock.now();
    let flaky = Arc::new(Scripted { fail_times: 2, ..Scripted::new("flaky") });
    let broken = Arc::new(Scripted { fail_times: 99, permanent: true, ..Scripted::new("broken") });
    let slow = Arc::new(Scripted { sleep: Duration::from_secs(5), ..Scripted::new("slow") });
    let crashing = Arc::new(Scripted { panic: true, ..Scripted::new("crashing") });
    let tasks: Vec<Arc<dyn Task>> = vec![flaky.clone(), broken.clone(), slow.clone(), crashing.clone()];
    let worker = Worker::with_tasks(t.app.clone(), tasks);

    // Retries with exponential backoff, then success.
    let (flaky_job, created) = store.enqueue_job(job("flaky", Some("flaky-1"), now())).await.unwrap();
    assert!(created);
    let (same, created) = store.enqueue_job(job("flaky", Some("flaky-1"), now())).await.unwrap();
    assert!(!created && same.id == flaky_job.id, "dedup while unfinished");
    let r = worker.run_one(Queue::CpuDefault).await.unwrap().unwrap();
    assert!(matches!(r.outcome, Outcome::WillRetry { .. }), "{r:?}");
    assert!(worker.run_one(Queue::CpuDefault).await.unwrap().is_none(), "not due before its backoff");
    let j = store.job(flaky_job.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Queued);
    let wait = (j.run_at - now()).num_seconds();
    assert!((8..=10).contains(&wait), "first backoff ≈ 10 s, got {wait}");
    t.clock.advance(chrono::Duration::seconds(11));
    assert!(matches!(worker.run_one(Queue::CpuDefault).await.unwrap().unwrap().outcome, Outcome::WillRetry { .. }));
    let j = store.job(flaky_job.id).await.unwrap().unwrap();
    assert!((j.run_at - now()).num_seconds() >= 18, "second backoff ≈ 20 s");
    t.clock.advance(chrono::Duration::seconds(21));
    assert_eq!(worker.run_one(Queue::CpuDefault).await.unwrap().unwrap().outcome, Outcome::Succeeded);
    let j = store.job(flaky_job.id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Succeeded, 3));

    // A permanent failure is dead-lettered at once with its reason; retry requeues it.
    let (b, _) = store.enqueue_job(job("broken", None, now())).await.unwrap();
    assert!(matches!(worker.run_one(Queue::CpuDefault).await.unwrap().unwrap().outcome, Outcome::Dead { .. }));
    let j = store.job(b.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    assert_eq!(j.last_error.as_deref(), Some("broken_input: scripted"));
    assert_eq!(broken.runs.load(Ordering::SeqCst), 1);
    store.retry_job(b.id, now()).await.unwrap();
    worker.run_one(Queue::CpuDefault).await.unwrap().unwrap();
    assert_eq!(broken.runs.load(Ordering::SeqCst), 2);

    // Time limit and crash: dead with a clear reason; the worker keeps going.
    let (s, _) = store.enqueue_job(job("slow", None, now())).await.unwrap();
    let started = std::time::Instant::now();
    worker.run_one(Queue::CpuDefault).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(store.job(s.id).await.unwrap().unwrap().last_error.unwrap().starts_with("timeout"));
    let (c, _) = store.enqueue_job(job("crashing", None, now())).await.unwrap();
    worker.run_one(Queue::CpuDefault).await.unwrap().unwrap();
    assert!(store.job(c.id).await.unwrap().unwrap().last_error.unwrap().starts_with("internal_error"));

    // An unknown kind is dead-lettered, not lost.
    let (u, _) = store.enqueue_job(job("no.such.kind", None, now())).await.unwrap();
    worker.run_one(Queue::CpuDefault).await.unwrap().unwrap();
    assert_eq!(store.job(u.id).await.unwrap().unwrap().state, JobState::Dead);

    // Cancelling a running job stops it at its next heartbeat, and its result is not recorded.
    let long = Arc::new(Scripted { sleep: Duration::from_millis(600), ..Scripted::new("long") });
    let worker2 = Worker::with_tasks(t.app.clone(), vec![long.clone() as Arc<dyn Task>]);
    let (l, _) = store.enqueue_job(job("long", None, now())).await.unwrap();
    let running = tokio::spawn({
        let w = worker2.clone();
        async move { w.run_one(Queue::CpuDefault).await.unwrap().unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.cancel_job(l.id, now()).await.unwrap();
    assert_eq!(running.await.unwrap().outcome, Outcome::Abandoned);
    assert_eq!(store.job(l.id).await.unwrap().unwrap().state, JobState::Cancelled);

    // A worker that died holding a job: its lease runs out and another worker takes the job.
    let (k, _) = store.enqueue_job(job("long", None, now())).await.unwrap();
    let claimed = store.claim_job(Queue::CpuDefault, "dead-worker", now(), now() + chrono::Duration::seconds(1)).await.unwrap().unwrap();
    assert_eq!(claimed.id, k.id);
    assert!(worker2.run_one(Queue::CpuDefault).await.unwrap().is_none(), "leased");
    t.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(worker2.run_one(Queue::CpuDefault).await.unwrap().unwrap().outcome, Outcome::Succeeded);
    let j = store.job(k.id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Succeeded, 2));
    assert!(!store.complete_job(k.id, "dead-worker", now()).await.unwrap(), "the old owner cannot overwrite it");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_convertible_format_becomes_a_readable_epub() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let ann = t.login("ann@example.com").await;
    let files = [
        "lunyu.azw3",
        "lunyu.docx",
        "lunyu.fb2",
        "lunyu.mobi",
        "lunyu.rtf",
        "lunyu.txt",
        "childrens-literature.fb2",
        "childrens-literature.mobi",
    ];
    let mut ids = Vec::new();
    for f in files {
        let id = upload_id(&t, &ann, &corpus().join("convert").join(f)).await;
        assert_eq!(book_json(&t, &ann, &id).await["conversion_status"], "pending");
        ids.push((f, id));
    }
    drain(&t).await;
    for (f, id) in &ids {
        let book = book_json(&t, &ann, id).await;
        assert_eq!(book["conversion_status"], "completed", "{f}: {}", status(&t, &ann, id).await);
        let epub = t.get(&ann, &format!("/api/v1/books/{id}/content")).send().await.unwrap();
        assert_eq!(epub.headers()["content-type"], "application/epub+zip", "{f}");
        let bytes = epub.bytes().await.unwrap();
        assert!(bytes.starts_with(b"PK") && bytes.windows(20).any(|w| w == b"application/epub+zip"), "{f}");
        let original = t.get(&ann, &format!("/api/v1/books/{id}/content?original=true")).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(original.as_ref(), std::fs::read(corpus().join("convert").join(f)).unwrap().as_slice(), "{f}: original kept");
        let text: String = stored_text(&t, id).await.iter().map(|s| s["text"].as_str().unwrap().to_string()).collect();
        if f.starts_with("lunyu") {
            for phrase in ["学而时习之", "吾日三省吾身", "巧言令色"] {
                assert!(text.contains(phrase), "{f}: {phrase}");
            }
            // The corpus RTF's own title is "??" (lost in its making): junk titles are not taken.
            // A TXT file has no metadata at all: it keeps the name it was uploaded under.
            let expected = if f.ends_with(".rtf") || f.ends_with(".txt") { "lunyu" } else { "论语" };
            assert_eq!(book["title"], expected, "{f}: metadata from the converted book");
        } else {
            assert!(text.to_lowercase().contains("children"), "{f}");
        }
        let (ct, cover) = cover_bytes(&t, &ann, id).await;
        assert_eq!(ct, "image/webp");
        assert!(lossy_webp_width(&cover).is_some(), "{f}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_leave_a_reason_and_the_worker_going() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let ann = t.login("ann@example.com").await;
    // A TXT file named .epub converts as text; the 30000×30000 cover is replaced by a generated one.
    let txt = upload_id(&t, &ann, &corpus().join("bad/looks-like-epub.txt.epub")).await;
    let bomb = upload_id(&t, &ann, &corpus().join("bad/image-bomb-cover.epub")).await;
    // An old Word file needs LibreOffice, which this machine does not have.
    let mut doc = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    doc.resize(4096, 0);
    let (code, body) = t.upload_bytes(&ann, "old.doc", doc).await;
    let doc_id = (code == 201).then(|| body["data"]["id"].as_str().unwrap().to_string());
    let started = std::time::Instant::now();
    drain(&t).await;
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(book_json(&t, &ann, &txt).await["conversion_status"], "completed");
    let (_, cover) = cover_bytes(&t, &ann, &bomb).await;
    assert!(lossy_webp_width(&cover).is_some());
    if let Some(id) = doc_id {
        let book = book_json(&t, &ann, &id).await;
        assert_eq!(book["conversion_status"], "failed");
        let s = status(&t, &ann, &id).await;
        let reason = s["errors"]["conversion_error"]["code"].as_str().unwrap();
        assert!(reason == "libreoffice_missing" || reason.starts_with("libreoffice"), "{s}");
    }
    // Job folders are cleaned up.
    let jobs_dir = t.dir.path().join("data/hot/tmp/jobs");
    assert_eq!(std::fs::read_dir(&jobs_dir).map(|d| d.count()).unwrap_or(0), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_folder_imports_and_sorts_files() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let ann = t.login("ann@example.com").await;
    let inbox = t.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(corpus().join("zh/lunyu.epub"), inbox.join("lunyu.epub")).unwrap();
    std::fs::copy(corpus().join("bad/random-bytes.epub"), inbox.join("noise.epub")).unwrap();
    std::fs::write(inbox.join("still-copying.epub.part"), b"...").unwrap();
    let mut watch = athena_worker::watch::WatchFolder::new(t.app.clone(), inbox.clone(), "ann@example.com".into());
    let first = watch.scan().await.unwrap();
    assert!(first.imported.is_empty() && first.waiting == 2, "{first:?}");
    let second = watch.scan().await.unwrap();
    assert_eq!(second.imported, vec!["lunyu.epub".to_string()], "{second:?}");
    assert_eq!(second.failed.len(), 1);
    assert!(inbox.join("done/lunyu.epub").exists());
    assert!(inbox.join("failed/noise.epub").exists());
    let reason = std::fs::read_to_string(inbox.join("failed/noise.epub.reason.txt")).unwrap();
    assert!(reason.contains("unsupported_format"), "{reason}");
    assert!(inbox.join("still-copying.epub.part").exists());
    let list: Value = t.get(&ann, "/api/v1/books").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"]["items"][0]["title"], "论语");
    t.stop().await;
}

async fn search(t: &TestApp, user: &User, query: &str) -> Value {
    let r = t.get(user, "/api/v1/search").query(&[("q", query)]).send().await.unwrap();
    assert_eq!(r.status(), 200, "{query}");
    // ATHENA_SEARCH_ENGINE=auto: the database's own engine on PostgreSQL.
    let engine = match t.backend {
        Backend::Embedded => "tantivy",
        Backend::PostgresS3 => "postgres",
    };
    assert_eq!(r.headers()["x-search-engine"], engine);
    r.json::<Value>().await.unwrap()["data"].clone()
}

async fn search_finds_each_users_own_books(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let lunyu = upload_id(&t, &ann, &corpus().join("zh/lunyu.epub")).await;
    let guwen = upload_id(&t, &ann, &corpus().join("zh/guwenguanzhi.epub")).await;
    let reports = drain(&t).await;
    assert!(reports.iter().any(|r| r.kind == "book.index"), "extraction queues indexing");

    let hits = search(&t, &ann, "学而时习之").await;
    let first = &hits["items"][0];
    assert_eq!(first["book_id"], lunyu.as_str(), "{hits}");
    assert_eq!(first["kind"], "content");
    assert!(first["snippet"].as_str().unwrap().contains("<mark>"), "{first}");
    assert!(first["location"].as_str().unwrap().starts_with("epubcfi(/6/"), "{first}");
    // Simplified query, traditional text.
    let hits = search(&t, &ann, "郑伯克段于鄢").await;
    assert_eq!(hits["items"][0]["book_id"], guwen.as_str(), "{hits}");
    // Titles.
    let r: Value = t.get(&ann, "/api/v1/search").query(&[("q", "论语"), ("kind", "book")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["items"][0]["book_id"], lunyu.as_str(), "{r}");
    assert_eq!(r["data"]["items"][0]["kind"], "book");
    // One book only.
    let r: Value =
        t.get(&ann, "/api/v1/search").query(&[("q", "之"), ("book_id", guwen.as_str())]).send().await.unwrap().json().await.unwrap();
    let items = r["data"]["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|h| h["book_id"] == guwen.as_str()), "{r}");
    let r = t.get(&ann, "/api/v1/search").query(&[("q", "x"), ("kind", "poem")]).send().await.unwrap();
    assert_eq!(r.status(), 422);

    // Notes and highlights, as clients upload them through sync, are searchable by their owner only.
    let note = uuid::Uuid::new_v4().to_string();
    let highlight = uuid::Uuid::new_v4().to_string();
    let at = "2026-11-29T08:00:00Z";
    let ops = serde_json::json!({ "operations": [
        { "table": "notes", "op": "PUT", "id": note, "data": { "book_id": guwen, "device_id": "phone", "content": "读书笔记：庄公之谋", "page_number": 3, "created_at": at, "updated_at": at } },
        { "table": "highlights", "op": "PUT", "id": highlight, "data": { "book_id": guwen, "device_id": "phone", "text": "Harpooneers of the world", "position_start_cfi": "epubcfi(/6/4!/4/2)", "created_at": at, "updated_at": at } },
    ]});
    let r = t.post(&ann, "/api/v1/sync/upload").json(&ops).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let hits = search(&t, &ann, "读书笔记").await;
    assert_eq!(hits["items"][0]["kind"], "note", "{hits}");
    assert_eq!(hits["items"][0]["book_id"], guwen.as_str());
    assert_eq!(hits["items"][0]["location"], "page:3");
    let r: Value =
        t.get(&ann, "/api/v1/search").query(&[("q", "harpooneer"), ("kind", "highlight")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["items"][0]["kind"], "highlight", "{r}");
    assert_eq!(r["data"]["items"][0]["location"], "epubcfi(/6/4!/4/2)");
    assert!(search(&t, &bob, "读书笔记").await["items"].as_array().unwrap().is_empty(), "another user's note");
    let del = serde_json::json!({ "operations": [ { "table": "notes", "op": "DELETE", "id": note } ] });
    assert_eq!(t.post(&ann, "/api/v1/sync/upload").json(&del).send().await.unwrap().status(), 200);
    assert!(search(&t, &ann, "读书笔记").await["items"].as_array().unwrap().is_empty(), "a deleted note leaves the index");
    let r = t.get(&ann, "/api/v1/search").query(&[("q", "")]).send().await.unwrap();
    assert_eq!(r.status(), 422);

    // Bob sees nothing of Ann's, until he owns the same book himself.
    assert!(search(&t, &bob, "学而时习之").await["items"].as_array().unwrap().is_empty());
    let bobs = upload_id(&t, &bob, &corpus().join("zh/lunyu.epub")).await;
    drain(&t).await;
    assert_eq!(search(&t, &bob, "学而时习之").await["items"][0]["book_id"], bobs.as_str());
    // Ann deletes hers for good: gone from her results, still in Bob's.
    let r = t.delete(&ann, &format!("/api/v1/books/{lunyu}/permanent")).send().await.unwrap();
    assert!(r.status().is_success());
    let hits = search(&t, &ann, "学而时习之").await;
    assert!(hits["items"].as_array().unwrap().iter().all(|h| h["book_id"] != lunyu.as_str()), "{hits}");
    assert_eq!(search(&t, &bob, "学而时习之").await["items"][0]["book_id"], bobs.as_str());
    let health: Value = t.client.get(t.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["components"]["search"]["status"], "ok", "{health}");
    t.stop().await;
}
