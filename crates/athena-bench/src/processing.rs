//! Book processing benchmark: the bench library (`../shared/tools/bench_corpus.py`, 200 large Chinese and English
//! EPUBs by default) is uploaded through an API-only server, then a worker-only `athena serve --role worker`
//! processes it — metadata, WebP cover (generated: these books have none) and text extraction for every book —
//! while the benchmark polls the queue in the same SQLite database. Reported: books per second and the worker
//! process's peak memory (VmHWM), against a baseline taken in the same run: reading and inflating every entry of
//! every book once, in this process (the least any processing of these files must do).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use athena_store::jobs::{JobFilter, JobState, JobStore};
use athena_store::Store;

use crate::server::{self, mib};

pub struct Options {
    /// Folder made by bench_corpus.py (with manifest.json and the .epub files).
    pub library: PathBuf,
    /// Worker concurrency on `cpu_default`.
    pub concurrency: usize,
}

const LIMIT: Duration = Duration::from_secs(1200);

/// The baseline: every entry of every book read and inflated once.
fn inflate_all(books: &[PathBuf]) -> anyhow::Result<(Duration, u64)> {
    let t = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    for path in books {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(path)?)?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i)?;
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
    }
    Ok((t.elapsed(), total))
}

pub async fn run(athena: &Path, scratch_root: &Path, opts: &Options) -> anyhow::Result<serde_json::Value> {
    let mut books: Vec<PathBuf> = std::fs::read_dir(&opts.library)
        .with_context(|| format!("{}: build it with scripts/bench.sh (bench_corpus.py)", opts.library.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "epub"))
        .collect();
    books.sort();
    ensure!(!books.is_empty(), "no .epub files in {}", opts.library.display());
    let bytes: u64 = books.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();

    let dir = server::scratch(scratch_root, "processing-")?;
    let data = dir.path().join("data");
    let quota = [("ATHENA_QUOTA_BOOKS", "1000000".to_string()), ("ATHENA_QUOTA_BYTES", "1000000000000".to_string())];
    let api = server::athena_with(athena, &data, &["--role", "api"], &quota, &["api"])?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let (token, _) = server::login(&client, &api.base(), "bench@example.com").await?;
    let t = Instant::now();
    for path in &books {
        let body = tokio::fs::read(path).await?;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(body).file_name(name));
        client.post(format!("{}/api/v1/books", api.base())).bearer_auth(&token).multipart(form).send().await?.error_for_status()?;
    }
    let upload_secs = t.elapsed().as_secs_f64();
    drop(api);

    let (baseline, inflated) = inflate_all(&books)?;
    eprintln!("processing: {} books uploaded in {upload_secs:.1} s; baseline inflate {:.2} s", books.len(), baseline.as_secs_f64());

    let store = athena_store_sqlite::SqliteStore::connect(&data.join("hot").join("athena.db")).await?;
    let env = [("ATHENA_WORKER_CPU_CONCURRENCY", opts.concurrency.to_string())];
    let t = Instant::now();
    let worker = server::athena_with(athena, &data, &["--role", "worker"], &env, &[])?;
    let deadline = Instant::now() + LIMIT;
    let mut peak_kib = 0;
    loop {
        peak_kib = peak_kib.max(worker.memory()?.hwm_kib);
        let stats = store.queue_stats(chrono::Utc::now()).await?;
        let pending: i64 = stats.iter().map(|s| s.ready + s.scheduled + s.running).sum();
        if pending == 0 {
            break;
        }
        ensure!(Instant::now() < deadline, "processing did not finish within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = t.elapsed();
    peak_kib = peak_kib.max(worker.memory()?.hwm_kib);
    drop(worker);

    let jobs = store.list_jobs(&JobFilter { limit: 1000, ..Default::default() }).await?;
    let failed: Vec<_> = jobs.iter().filter(|j| j.state != JobState::Succeeded).map(|j| (j.kind.clone(), j.last_error.clone())).collect();
    ensure!(failed.is_empty(), "jobs did not succeed: {failed:?}");
    let per_kind = |kind: &str| {
        let d: Vec<f64> = jobs
            .iter()
            .filter(|j| j.kind == kind)
            .filter_map(|j| Some((j.finished_at? - j.started_at?).num_microseconds()? as f64 / 1000.0))
            .collect();
        serde_json::json!({ "jobs": d.len(), "mean_ms": d.iter().sum::<f64>() / d.len().max(1) as f64,
            "max_ms": d.iter().cloned().fold(0.0, f64::max) })
    };
    let books_per_sec = books.len() as f64 / elapsed.as_secs_f64();
    let baseline_books_per_sec = books.len() as f64 / baseline.as_secs_f64();
    store.close().await;
    Ok(serde_json::json!({
        "bench": "processing",
        "books": books.len(),
        "library_mib": bytes as f64 / 1048576.0,
        "inflated_mib": inflated as f64 / 1048576.0,
        "worker_concurrency": opts.concurrency,
        "seconds": elapsed.as_secs_f64(),
        "books_per_sec": books_per_sec,
        "baseline_inflate_books_per_sec": baseline_books_per_sec,
        "ratio_vs_inflate": baseline_books_per_sec / books_per_sec,
        "worker_peak_rss_mib": mib(peak_kib),
        "metadata": per_kind("book.metadata"),
        "extract": per_kind("book.extract"),
        "upload_seconds": upload_secs,
    }))
}
