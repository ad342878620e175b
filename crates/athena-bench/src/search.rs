//! Search benchmark: the bench library (`../shared/tools/bench_corpus.py`, half Chinese poetry, half English) plus
//! the EPUBs of `../shared/corpus`, extracted with the worker's code (`athena_formats::extract_epub_text`, written in
//! the worker's `text/{sha}.jsonl` format), indexed by Athena's embedded engine and by the baseline built in the same
//! run from the same text, SQLite FTS5 with the `trigram` tokenizer (`search_engines`).
//!
//! Reported per engine: indexing throughput (MB of extracted UTF-8 text per second) and the indexing process's peak
//! resident memory (VmHWM of a child process that does only that), index size on disk; recall of every bench-manifest
//! phrase and every `truth.json` phrase and simplified query in the right book; serial latency per query class; and
//! latency under open-loop load at fixed rates (arrival times fixed in advance, latency from the scheduled arrival,
//! so queueing counts), several threads issuing queries as one user who owns every book.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use sha2::Digest;

use crate::search_engines::{self as engines, Athena, BenchEngine, BenchQuery, Fts5, Scope};
use crate::server::mib;
use crate::stats::{ms, summarize, Summary};

pub struct Options {
    /// Books in the bench library (bench_corpus.py --books).
    pub books: usize,
    /// Where the 200-book library lives (shared with the processing benchmark); other sizes go to `{library}-{N}`.
    pub library: PathBuf,
    /// The shared corpus (truth.json, epub/, zh/).
    pub corpus: PathBuf,
    /// Offered loads, queries per second, each for `duration`.
    pub rates: Vec<u32>,
    pub duration: Duration,
    /// Threads issuing queries (a server's blocking pool).
    pub threads: usize,
    pub p99_target: Duration,
    /// PostgreSQL server for the `postgres` engine (a database is created and dropped); skipped when unreachable.
    pub pg_admin: String,
}

/// English and Chinese single words (and one two-word query) mixed with the manifest phrases under load.
const WORDS_EN: &[&str] = &[
    "whale",
    "Ahab",
    "harpoon",
    "Queequeg",
    "Starbuck",
    "ocean",
    "sea",
    "ship",
    "captain",
    "Pequod",
    "Ishmael",
    "leviathan",
    "spout",
    "sailor",
    "boat",
    "the",
    "white whale",
    "Nantucket",
    "lance",
    "cabin",
];
const WORDS_ZH: &[&str] = &[
    "明月",
    "春風",
    "故人",
    "長安",
    "江南",
    "白雲",
    "秋風",
    "落花",
    "歸來",
    "天涯",
    "千里",
    "青山",
    "夕陽",
    "黃河",
    "酒",
    "山",
    "月",
    "不知何處",
    "明月光",
    "長相思",
];

/// One recall check: a query and the book it must find.
struct Probe {
    class: &'static str,
    query: BenchQuery,
    expected: String,
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The library folder for `books`, built once by `scripts/bench-library.sh` (which caches the npm package).
fn ensure_library(opts: &Options) -> anyhow::Result<PathBuf> {
    let dir = if opts.books == 200 { opts.library.clone() } else { PathBuf::from(format!("{}-{}", opts.library.display(), opts.books)) };
    if !dir.join("manifest.json").exists() {
        eprintln!("search: building the {}-book library in {} (bench_corpus.py)", opts.books, dir.display());
        let status = std::process::Command::new("scripts/bench-library.sh")
            .arg(&dir)
            .arg(opts.books.to_string())
            .status()
            .context("scripts/bench-library.sh (run from the repository root)")?;
        ensure!(status.success(), "scripts/bench-library.sh failed: {status}");
    }
    Ok(dir)
}

/// Extracts one EPUB into `{out}/{sha}.jsonl`; returns the UTF-8 bytes of its text.
fn extract(path: &Path, key: &str, out: &Path) -> anyhow::Result<u64> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out.join(format!("{key}.jsonl")))?);
    let mut bytes = 0u64;
    let mut error = None;
    athena_formats::extract_epub_text(path, &athena_formats::Limits::default(), &mut |s| {
        bytes += s.text.len() as u64;
        let line = athena_search::TextLine {
            index: s.index,
            location: &s.location,
            title: s.title.as_deref(),
            href: Some(&s.href),
            page: None,
            text: &s.text,
        };
        if let Err(e) = serde_json::to_writer(&mut w, &line).map_err(std::io::Error::other).and_then(|_| w.write_all(b"\n")) {
            error.get_or_insert(e);
        }
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(e) = error {
        return Err(e.into());
    }
    w.flush()?;
    Ok(bytes)
}

/// Simplified form of a traditional phrase, character by character through Athena's own folding table (so this
/// checks the pipeline end to end, not the table's coverage); `None` when nothing changes.
fn simplified(phrase: &str) -> Option<String> {
    let s: String = phrase
        .chars()
        .map(|c| if athena_search::analysis::is_cjk(c) { athena_search::analysis::fold(&c.to_string()).as_string() } else { c.to_string() })
        .collect();
    (s != phrase).then_some(s)
}

/// The serial pass over every probe: found within the right book alone, and the right book among the top hits
/// when searching everything the user owns.
fn recall(engine: &dyn BenchEngine, probes: &[Probe], all: &Scope) -> anyhow::Result<serde_json::Value> {
    let mut by_class: BTreeMap<&str, (usize, usize, usize, Vec<Duration>)> = BTreeMap::new();
    let mut misses = Vec::new();
    for p in probes {
        let found = !engine.search(&p.query, &Scope::new(vec![p.expected.clone()]))?.is_empty();
        let t = Instant::now();
        let top = engine.search(&p.query, all)?;
        let took = t.elapsed();
        let e = by_class.entry(p.class).or_default();
        e.0 += 1;
        e.1 += usize::from(found);
        e.2 += usize::from(top.contains(&p.expected));
        e.3.push(took);
        if !found && misses.len() < 8 {
            misses.push(format!("{}: {}", p.class, p.query.athena));
        }
    }
    let classes: serde_json::Map<String, serde_json::Value> = by_class
        .into_iter()
        .map(|(class, (n, found, top, lat))| {
            let s = summarize(lat);
            (
                class.to_string(),
                serde_json::json!({ "probes": n, "found_in_book": found, "recall": found as f64 / n as f64,
                "in_top_hits": top, "serial_p50_ms": ms(s.p50), "serial_p99_ms": ms(s.p99) }),
            )
        })
        .collect();
    Ok(serde_json::json!({ "classes": classes, "first_misses": misses }))
}

/// Queries not started this long after a step's last arrival count as failed (timed out).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

struct LoadOut {
    latency: Summary,
    failed: usize,
    empty: usize,
    cpu_ms_per_query: f64,
}

/// Open loop: query `i` arrives at `start + i / rate`; `threads` workers take arrivals in order, wait for the
/// arrival time when they are early, and measure from it, so time spent queued behind busy workers counts.
fn open_loop(engine: &dyn BenchEngine, scope: &Scope, queries: &[BenchQuery], rate: u32, duration: Duration, threads: usize) -> LoadOut {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let next = AtomicUsize::new(0);
    let cpu0 = crate::load::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let start = Instant::now() + Duration::from_millis(50);
    let give_up = start + duration + DRAIN_LIMIT;
    let results: Vec<(Vec<Duration>, usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut lat, mut failed, mut empty) = (Vec::new(), 0, 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let scheduled = start + interval.mul_f64(i as f64);
                        let now = Instant::now();
                        if now > give_up {
                            // Saturated far beyond the step: count the rest as timed out rather than run for minutes.
                            failed += 1;
                            continue;
                        }
                        if scheduled > now {
                            std::thread::sleep(scheduled - now);
                        }
                        match engine.search(&queries[i % queries.len()], scope) {
                            Ok(hits) => {
                                empty += usize::from(hits.is_empty());
                                lat.push(scheduled.elapsed());
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    (lat, failed, empty)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let cpu = crate::load::cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu0;
    let (mut lat, mut failed, mut empty) = (Vec::new(), 0, 0);
    for (l, f, e) in results {
        lat.extend(l);
        failed += f;
        empty += e;
    }
    LoadOut { latency: summarize(lat), failed, empty, cpu_ms_per_query: cpu * 1000.0 / total.max(1) as f64 }
}

/// A fresh database for the PostgreSQL engine, migrated by `athena-store-postgres`.
async fn prepare_pg(admin: &str) -> anyhow::Result<crate::sync_common::PgDatabase> {
    let db = crate::sync_common::PgDatabase::create(admin, "search").await?;
    let migrated = async {
        use athena_store::Store;
        let store = athena_store_postgres::PgStore::connect(&db.url).await?;
        store.migrate().await?;
        store.close().await;
        anyhow::Ok(())
    }
    .await;
    match migrated {
        Ok(()) => Ok(db),
        Err(e) => {
            db.drop().await;
            Err(e)
        }
    }
}

/// Bytes of the PostgreSQL engine's tables with their indexes and TOAST.
async fn pg_size(url: &str) -> anyhow::Result<u64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (bytes,): (i64,) = sqlx::query_as(
        "SELECT (pg_total_relation_size('search_docs') + pg_total_relation_size('search_chunks') + pg_total_relation_size('search_state'))::bigint",
    )
    .fetch_one(&mut conn)
    .await?;
    let t = Instant::now();
    sqlx::query("ANALYZE search_docs, search_chunks").execute(&mut conn).await?;
    eprintln!("search: ANALYZE of the PostgreSQL tables took {:.1} s", t.elapsed().as_secs_f64());
    Ok(bytes as u64)
}

pub async fn run(scratch_root: &Path, opts: &Options) -> anyhow::Result<serde_json::Value> {
    let pg = match prepare_pg(&opts.pg_admin).await {
        Ok(db) => Some(db),
        Err(e) => {
            eprintln!("search: the PostgreSQL engine is skipped: {e:#}");
            None
        }
    };
    let result = run_engines(scratch_root, opts, pg.as_ref().map(|db| db.url.clone())).await;
    if let Some(db) = pg {
        db.drop().await;
    }
    result
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

async fn run_engines(scratch_root: &Path, opts: &Options, pg_url: Option<String>) -> anyhow::Result<serde_json::Value> {
    let load_start = loadavg();
    let library = ensure_library(opts)?;
    let manifest: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(library.join("manifest.json"))?)?;
    ensure!(manifest.len() == opts.books, "{}: {} books, expected {}", library.display(), manifest.len(), opts.books);
    let truth: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&std::fs::read(opts.corpus.join("truth.json"))?)?;
    let dir = crate::server::scratch(scratch_root, "search-")?;
    let text_dir = dir.path().join("text");
    std::fs::create_dir_all(&text_dir)?;

    // Extraction: the bench books, then every corpus EPUB (the ones in truth.json among them).
    let mut books: Vec<(String, PathBuf)> = manifest
        .iter()
        .map(|b| (b["file"].as_str().unwrap_or_default().to_string(), library.join(b["file"].as_str().unwrap_or_default())))
        .collect();
    for sub in ["epub", "zh"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(opts.corpus.join(sub))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "epub"))
            .collect();
        found.sort();
        books.extend(found.into_iter().map(|p| (format!("{sub}/{}", p.file_name().unwrap_or_default().to_string_lossy()), p)));
    }
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let (mut text_bytes, mut failed_extract) = (0u64, Vec::new());
    let t = Instant::now();
    for (name, path) in &books {
        let key = sha256_file(path)?;
        if keys.values().any(|k| k == &key) {
            continue;
        }
        match extract(path, &key, &text_dir) {
            Ok(b) => {
                text_bytes += b;
                keys.insert(name.clone(), key);
            }
            Err(e) => {
                let _ = std::fs::remove_file(text_dir.join(format!("{key}.jsonl")));
                failed_extract.push(format!("{name}: {e}"));
            }
        }
    }
    let extract_secs = t.elapsed().as_secs_f64();
    let jsonl_bytes = engines::disk_bytes(&text_dir);
    let text_mb = text_bytes as f64 / 1e6;
    eprintln!("search: extracted {} books, {text_mb:.1} MB of text in {extract_secs:.1} s (skipped: {failed_extract:?})", keys.len());

    // Probes for recall.
    let mut probes = Vec::new();
    for b in &manifest {
        let Some(key) = keys.get(b["file"].as_str().unwrap_or_default()) else { continue };
        let zh = b["language"].as_str() == Some("zh");
        for p in b["phrases"].as_array().into_iter().flatten().filter_map(|p| p.as_str()) {
            probes.push(Probe {
                class: if zh { "manifest_zh" } else { "manifest_en" },
                query: BenchQuery::phrase(p),
                expected: key.clone(),
            });
            if let Some(s) = simplified(p).filter(|_| zh) {
                probes.push(Probe { class: "manifest_zh_simplified", query: BenchQuery::phrase(&s), expected: key.clone() });
            }
        }
    }
    for (name, entry) in &truth {
        let Some(key) = keys.get(name) else { continue };
        for (field, class) in [("phrases", "truth_phrases"), ("simplified_queries", "truth_simplified")] {
            for p in entry[field].as_array().into_iter().flatten().filter_map(|p| p.as_str()) {
                probes.push(Probe { class, query: BenchQuery::phrase(p), expected: key.clone() });
            }
        }
    }

    // Indexing, one child process per engine (and the read-only floor), alternating nothing: each runs alone.
    let mut indexing = serde_json::Map::new();
    let athena_dir = dir.path().join("athena-index");
    let fts_path = dir.path().join("fts5.db");
    let mut targets = vec![
        ("read", dir.path().join("none").into_os_string()),
        ("athena", athena_dir.clone().into_os_string()),
        ("fts5", fts_path.clone().into_os_string()),
    ];
    if let Some(url) = &pg_url {
        targets.push(("postgres", url.into()));
    }
    for (engine, out) in targets {
        let text_dir = text_dir.clone();
        let out2 = out.clone();
        let mut r = tokio::task::spawn_blocking(move || engines::spawn_child(engine, &text_dir, &out2)).await??;
        let secs = r["seconds"].as_f64().unwrap_or(f64::NAN);
        let size = match &pg_url {
            Some(url) if engine == "postgres" => pg_size(url).await?,
            _ => engines::disk_bytes(Path::new(&out)),
        };
        r["text_mb_per_sec"] = (text_mb / secs).into();
        r["peak_rss_mib"] = mib(r["hwm_kib"].as_u64().unwrap_or(0)).into();
        r["index_mib"] = (size as f64 / 1048576.0).into();
        r["index_to_text_ratio"] = (size as f64 / text_bytes as f64).into();
        eprintln!("search: indexed {engine}: {r}");
        indexing.insert(engine.to_string(), r);
    }

    // Querying, in this process.
    let threads = opts.threads.max(1);
    let mut engines_list: Vec<Box<dyn BenchEngine>> = vec![
        Box::new(Athena { name: "athena", index: Box::new(athena_search::TantivyIndex::open(&athena_dir)?) }),
        Box::new(Fts5::open(&fts_path, threads as u32).await?),
    ];
    if let Some(url) = pg_url.clone() {
        let options = athena_search_postgres::PgSearchOptions { max_connections: threads as u32, schema: None };
        let index = tokio::task::spawn_blocking(move || athena_search_postgres::PgSearchIndex::connect(&url, options)).await??;
        engines_list.push(Box::new(Athena { name: "postgres", index: Box::new(index) }));
    }
    let all = Scope::new(keys.values().cloned().collect());
    let mut queries = Vec::new();
    let phrases: Vec<&Probe> = probes.iter().filter(|p| p.class.starts_with("manifest_") && !p.class.ends_with("simplified")).collect();
    let words: Vec<&str> = WORDS_EN.iter().zip(WORDS_ZH).flat_map(|(e, z)| [*e, *z]).collect();
    // Half phrases (alternating Chinese and English books), half single words (alternating languages).
    for i in 0..phrases.len().max(words.len()) * 2 {
        queries.push(if i % 2 == 0 {
            phrases[(i / 2 * 7) % phrases.len()].query.clone()
        } else {
            BenchQuery::words(words[(i / 2) % words.len()])
        });
    }
    let distinct_queries = queries.len();
    let opts_rates = opts.rates.clone();
    let (duration, target) = (opts.duration, opts.p99_target);
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let mut recall_out = serde_json::Map::new();
        let mut words_out = serde_json::Map::new();
        for e in &engines_list {
            eprintln!("search: recall ({} probes) on {}", probes.len(), e.name());
            let r = recall(e.as_ref(), &probes, &all)?;
            eprintln!("search: recall {}: {r}", e.name());
            recall_out.insert(e.name().into(), r);
            // Serial latency and hit counts of the single-word queries.
            let mut lat = Vec::new();
            let mut empty = Vec::new();
            for w in &words {
                let t = Instant::now();
                let hits = e.search(&BenchQuery::words(w), &all)?;
                lat.push(t.elapsed());
                if hits.is_empty() {
                    empty.push(w.to_string());
                }
            }
            let s = summarize(lat);
            words_out.insert(
                e.name().into(),
                serde_json::json!({ "queries": words.len(), "serial_p50_ms": ms(s.p50),
                "serial_max_ms": ms(s.max), "no_hits": empty }),
            );
        }
        let mut load_out = Vec::new();
        for rate in &opts_rates {
            for e in &engines_list {
                let r = open_loop(e.as_ref(), &all, &queries, *rate, duration, threads);
                let row = serde_json::json!({ "engine": e.name(), "rate": rate, "seconds": duration.as_secs_f64(), "threads": threads,
                    "queries": r.latency.count + r.failed, "failed": r.failed, "no_hits": r.empty,
                    "p50_ms": ms(r.latency.p50), "p90_ms": ms(r.latency.p90), "p99_ms": ms(r.latency.p99), "max_ms": ms(r.latency.max),
                    "cpu_ms_per_query": r.cpu_ms_per_query, "p99_under_target": r.failed == 0 && r.latency.p99 < target });
                eprintln!("search: load {row} (loadavg {})", loadavg());
                load_out.push(row);
            }
        }
        Ok(serde_json::json!({ "recall": recall_out, "words": words_out, "load": load_out }))
    })
    .await??;

    Ok(serde_json::json!({
        "bench": "search",
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "books": keys.len(),
        "bench_books": opts.books,
        "library": library.display().to_string(),
        "text_mb": text_mb,
        "jsonl_mib": jsonl_bytes as f64 / 1048576.0,
        "extract_seconds": extract_secs,
        "extract_text_mb_per_sec": text_mb / extract_secs,
        "skipped": failed_extract,
        "probes": probes_len(&report),
        "load_queries": { "distinct": distinct_queries, "mix": "half manifest phrases (quoted), half single words (20 English, 20 Chinese)" },
        "indexing": indexing,
        "recall": report["recall"],
        "words": report["words"],
        "load": report["load"],
        "postgres": if pg_url.is_some() { "run" } else { "skipped: PostgreSQL unreachable (see stderr)" },
    }))
}

fn probes_len(report: &serde_json::Value) -> u64 {
    report["recall"]["athena"]["classes"].as_object().map(|c| c.values().filter_map(|v| v["probes"].as_u64()).sum()).unwrap_or(0)
}
