//! Benchmark 3: `GET /api/v1/books?limit=50` for a user with 10,000 books, on SQLite and on PostgreSQL, under
//! open-loop load; baselines are `GET /health` through the same server and the store query alone, in-process.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use athena_domain::{BookFormat, BookId, ContentHash, ObjectKey, UserId};
use athena_store::{BookInsert, BookQuery, NewBook, Store};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::load::{cpu_seconds, open_loop, LoadResult};
use crate::server::{self, Server};
use crate::stats::{ms, summarize};

pub struct Options {
    pub books: usize,
    pub base_rate: u32,
    pub duration: Duration,
    pub ramp: Vec<u32>,
    pub ramp_down: Vec<u32>,
    pub ramp_duration: Duration,
    pub p99_target: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub async fn run(bin: &Path, scratch_root: &Path, backend: Backend, pg_admin: &str, opts: &Options) -> anyhow::Result<serde_json::Value> {
    match backend {
        Backend::Sqlite => run_with(bin, scratch_root, backend, None, opts).await,
        Backend::Postgres => {
            let name = format!("athena_bench_{}_{}", std::process::id(), chrono::Utc::now().timestamp());
            let mut admin = sqlx::PgConnection::connect(pg_admin).await.context("connecting to PostgreSQL (--pg-admin-url)")?;
            sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await?;
            let url = match pg_admin.rsplit_once('/') {
                Some((prefix, _)) => format!("{prefix}/{name}"),
                None => anyhow::bail!("--pg-admin-url must end with /DATABASE"),
            };
            let result = run_with(bin, scratch_root, backend, Some(url), opts).await;
            // Always dropped, whatever happened; FORCE ends the server's leftover connections.
            let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await;
            if let Err(e) = dropped {
                eprintln!("warning: could not drop database {name}: {e}");
            }
            result
        }
    }
}

async fn run_with(
    bin: &Path,
    scratch_root: &Path,
    backend: Backend,
    database_url: Option<String>,
    opts: &Options,
) -> anyhow::Result<serde_json::Value> {
    let label = format!("{backend:?}").to_lowercase();
    let dir = server::scratch(scratch_root, "list-")?;
    let mut env = vec![];
    if let Some(url) = &database_url {
        env.push(("DATABASE_URL", url.clone()));
    }
    let s = server::athena(bin, dir.path(), &env)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).pool_max_idle_per_host(1024).build()?;
    server::wait_ok(&client, &format!("{}/health", s.base()), s.spawned_at, Duration::from_secs(10)).await?;
    let (token, user) = server::login(&client, &s.base(), "bench-list@example.com").await?;

    let store = open_store(dir.path(), database_url.as_deref()).await?;
    let user: UserId = user.parse()?;
    let t = Instant::now();
    insert_books(&store, &user, opts.books).await?;
    let insert_s = t.elapsed().as_secs_f64();
    eprintln!("list/{label}: inserted {} books in {insert_s:.1} s", opts.books);

    // Baseline A: the store query alone, in-process, one at a time (no HTTP, no auth, no JSON).
    let direct_fresh = direct_list(&store, &user).await?;
    eprintln!(
        "list/{label}: store.list_books right after the insert p50 {:.2} ms p99 {:.2} ms",
        ms(direct_fresh.p50),
        ms(direct_fresh.p99)
    );
    if let Some(url) = &database_url {
        // Planner statistics are stale right after a bulk insert until autovacuum's ANALYZE runs (about a minute
        // later by default); the load is measured in the steady state, after it.
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("ANALYZE books").execute(&mut conn).await?;
        explain_pg(url, &user).await?;
    }
    let direct = direct_list(&store, &user).await?;
    store.close().await;
    eprintln!("list/{label}: store.list_books p50 {:.2} ms p99 {:.2} ms", ms(direct.p50), ms(direct.p99));

    let list_url = format!("{}/api/v1/books?limit=50", s.base());
    let health_url = format!("{}/health", s.base());
    let page: serde_json::Value = client.get(&list_url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
    let items = page["data"]["items"].as_array().map(Vec::len).or_else(|| page["data"].as_array().map(Vec::len));
    ensure!(items == Some(50), "expected 50 books in the page, got {items:?}: {}", truncate(&page.to_string()));

    // Warm-up: opens the connections the load will reuse and warms the caches.
    let _ = open_loop(&client, &list_url, Some(&token), 500, Duration::from_secs(2)).await;

    let mut steps = Vec::new();
    let health = measured(&s, &label, "health", open_loop(&client, &health_url, None, opts.base_rate, opts.duration)).await;
    let list = measured(&s, &label, "list", open_loop(&client, &list_url, Some(&token), opts.base_rate, opts.duration)).await;
    let passes = |r: &LoadResult| r.failed == 0 && r.latency.p99 < opts.p99_target;
    let mut best = passes(&list.0).then_some(opts.base_rate);
    if best.is_some() {
        // Up from the base rate until the target breaks.
        for &rate in opts.ramp.iter().filter(|&&r| r > opts.base_rate) {
            let step = measured(&s, &label, "list", open_loop(&client, &list_url, Some(&token), rate, opts.ramp_duration)).await;
            let ok = passes(&step.0);
            steps.push(step);
            if !ok {
                break;
            }
            best = Some(rate);
        }
    } else {
        // The base rate already misses: down until it holds, so the report still names a sustainable rate.
        let mut down: Vec<u32> = opts.ramp_down.iter().copied().filter(|&r| r < opts.base_rate).collect();
        down.sort_unstable_by(|a, b| b.cmp(a));
        for rate in down {
            // A saturated server needs a moment to drain its queue before the next step means anything.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let step = measured(&s, &label, "list", open_loop(&client, &list_url, Some(&token), rate, opts.ramp_duration)).await;
            let ok = passes(&step.0);
            steps.push(step);
            if ok {
                best = Some(rate);
                break;
            }
        }
    }
    drop(s);
    Ok(serde_json::json!({
        "benchmark": "list",
        "backend": label,
        "books": opts.books,
        "insert_s": insert_s,
        "store_list_books_ms_before_analyze": { "p50": ms(direct_fresh.p50), "p99": ms(direct_fresh.p99) },
        "store_list_books_ms": { "p50": ms(direct.p50), "p90": ms(direct.p90), "p99": ms(direct.p99), "max": ms(direct.max) },
        "health": view(&health),
        "list": view(&list),
        "p99_ratio_list_over_health": ms(list.0.latency.p99) / ms(health.0.latency.p99),
        "p50_ratio_list_over_health": ms(list.0.latency.p50) / ms(health.0.latency.p50),
        "ramp": steps.iter().map(view).collect::<Vec<_>>(),
        "highest_rate_p99_under_target": best,
        "pass_p99_at_base_rate": passes(&list.0),
    }))
}

/// One load step with the server's CPU use over it (a saturated server explains a p99 better than any guess).
async fn measured(s: &Server, label: &str, what: &str, load: impl std::future::Future<Output = LoadResult>) -> (LoadResult, f64) {
    let cpu0 = cpu_seconds(s.pid()).unwrap_or(0.0);
    let t = Instant::now();
    let r = load.await;
    let cpu = (cpu_seconds(s.pid()).unwrap_or(0.0) - cpu0) / t.elapsed().as_secs_f64();
    eprintln!(
        "list/{label}: {what} @ {}/s: n={} failed={} p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms; server cpu {:.0}%; send lag max {:.1} ms",
        r.rate,
        r.latency.count,
        r.failed,
        ms(r.latency.p50),
        ms(r.latency.p90),
        ms(r.latency.p99),
        ms(r.latency.max),
        cpu * 100.0,
        ms(r.max_send_lag)
    );
    (r, cpu)
}

fn view((r, cpu): &(LoadResult, f64)) -> serde_json::Value {
    serde_json::json!({
        "rate": r.rate, "sent": r.sent, "ok": r.latency.count, "failed": r.failed,
        "mean_ms": ms(r.latency.mean), "p50_ms": ms(r.latency.p50), "p90_ms": ms(r.latency.p90), "p99_ms": ms(r.latency.p99), "max_ms": ms(r.latency.max),
        "server_cpu_pct": cpu * 100.0, "max_send_lag_ms": ms(r.max_send_lag),
    })
}

async fn direct_list(store: &Arc<dyn Store>, user: &UserId) -> anyhow::Result<crate::stats::Summary> {
    let query = BookQuery { deleted: false, after: None, limit: 51 };
    let mut samples = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let page = store.list_books(user, &query).await?;
        samples.push(t.elapsed());
        ensure!(page.len() == 51, "store returned {} books", page.len());
    }
    Ok(summarize(samples))
}

/// The plan PostgreSQL picks for the list query (same text as the store's), so a slow query can be explained.
async fn explain_pg(url: &str, user: &UserId) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let sql = "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM books WHERE user_id = $1 AND deleted_at IS NULL
           AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3))
         ORDER BY created_at DESC, id DESC LIMIT $4";
    let rows: Vec<(String,)> = sqlx::query_as(sql)
        .bind(user.as_str())
        .bind(None::<chrono::DateTime<chrono::Utc>>)
        .bind(None::<String>)
        .bind(51i64)
        .fetch_all(&mut conn)
        .await?;
    for (line,) in rows {
        eprintln!("list/postgres plan: {line}");
    }
    Ok(())
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The same store the server uses, opened from the same settings.
async fn open_store(data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
    let data_dir = data_dir.display().to_string();
    let database_url = database_url.map(str::to_string);
    let config = athena_config::Config::from_sources(None, "athena-bench", |name| match name {
        "ATHENA_DATA_DIR" => Some(data_dir.clone()),
        "DATABASE_URL" => database_url.clone(),
        _ => None,
    })?;
    athena_server::backends::open_store(&config).await
}

async fn insert_books(store: &Arc<dyn Store>, user: &UserId, n: usize) -> anyhow::Result<()> {
    // A few inserts in flight: each is its own transaction, and PostgreSQL overlaps their commits.
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let user = user.clone();
            async move {
                let digest: [u8; 32] = Sha256::digest(format!("athena-bench {user} {i}")).into();
                let key: ObjectKey = format!("users/{user}/bench/{i}.txt").parse()?;
                let new = NewBook {
                    id: BookId::new(),
                    user_id: user.clone(),
                    title: format!("Benchmark book {i}"),
                    author: Some(format!("Author {}", i % 97)),
                    language: Some("en".into()),
                    format: BookFormat::Txt,
                    size: 1000 + i as i64,
                    sha256: ContentHash::from_digest(digest),
                    storage_key: key,
                    cover_key: None,
                    page_count: None,
                    is_digitalized: None,
                    digitalization_confidence: None,
                    meta: serde_json::json!({}),
                    conversion_status: None,
                    jobs: Vec::new(),
                    now: chrono::Utc::now(),
                };
                match store.insert_book(new).await? {
                    BookInsert::Created { .. } => Ok(()),
                    BookInsert::Existing(_) => anyhow::bail!("book {i} already existed"),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}
