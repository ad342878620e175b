//! `athena-bench`: measures the server foundation against baselines taken in the same run — start-up time and
//! idle memory (vs `python3 -m http.server`), a 500 MB streamed upload (vs a local copy + fsync), and list latency
//! at 10,000 books on SQLite and PostgreSQL under open-loop load (vs `GET /health` and the bare store query);
//! and the sync service: change-capture throughput, change → client latency, and many idle streams (`sync_*`);
//! the job queue's enqueue and drain throughput, in-process (`queue-*`, which need no server binary), and book
//! processing (metadata, cover, text) of the 200-book bench library by a worker process (`processing`); and full-text
//! search over that library, Athena's embedded engine against SQLite FTS5 trigram, in-process (`search`).
//! It spawns the release `athena serve` as a child process and talks to it over loopback only; every phase is
//! bounded in time. Results print as JSON lines on stdout, progress on stderr. Run it through `scripts/bench.sh`;
//! it is not part of the test suite. Figures and how to read them: `docs/PERFORMANCE.md`.

mod list;
mod load;
mod processing;
mod queue;
mod search;
mod search_engines;
mod semantic;
mod server;
mod startup;
mod stats;
mod sync_capture;
mod sync_common;
mod sync_idle;
mod sync_latency;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "athena-bench", about = "Benchmarks for the Athena server foundation (release builds; loopback only)")]
struct Cli {
    /// Which benchmarks to run.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "startup,upload,list-sqlite,list-postgres")]
    only: Vec<Bench>,
    /// The server binary under test.
    #[arg(long, default_value_os_t = server::default_bin())]
    athena: PathBuf,
    /// Where scratch data dirs and the upload file go (same disk as the copy baseline).
    #[arg(long, default_value = "target/bench-scratch")]
    scratch: PathBuf,
    /// Start-up runs (each a fresh data dir), and idle seconds before reading memory.
    #[arg(long, default_value_t = 5)]
    startup_runs: usize,
    #[arg(long, default_value_t = 3.0)]
    idle_secs: f64,
    /// Upload size in bytes (500 MB = 500,000,000) and runs.
    #[arg(long, default_value_t = 500_000_000)]
    upload_bytes: u64,
    #[arg(long, default_value_t = 3)]
    upload_runs: usize,
    /// Books inserted for the list benchmark.
    #[arg(long, default_value_t = 10_000)]
    books: usize,
    /// Requests per second of the main list run and of the `/health` baseline, and their length in seconds.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Rates tried after the main run, in order, until p99 reaches the target; each step's length in seconds.
    #[arg(long, value_delimiter = ',', default_value = "1500,2000,3000,4000,6000")]
    ramp: Vec<u32>,
    /// Rates tried, highest first, when the main rate already misses the target.
    #[arg(long, value_delimiter = ',', default_value = "750,500,300,200,100")]
    ramp_down: Vec<u32>,
    #[arg(long, default_value_t = 5.0)]
    ramp_secs: f64,
    #[arg(long, default_value_t = 20.0)]
    p99_target_ms: f64,
    /// Sync capture: rows inserted in the one transaction.
    #[arg(long, default_value_t = 100_000)]
    sync_rows: usize,
    /// Sync latency: connected clients, single-row changes, milliseconds between changes, p99 target.
    #[arg(long, default_value_t = 10)]
    sync_clients: usize,
    #[arg(long, default_value_t = 200)]
    sync_changes: usize,
    #[arg(long, default_value_t = 20.0)]
    sync_interval_ms: f64,
    #[arg(long, default_value_t = 30.0)]
    sync_p99_target_ms: f64,
    /// Sync idle streams: how many, the counts at which memory is read, and how many are opened at once.
    #[arg(long, default_value_t = 10_000)]
    sync_streams: usize,
    #[arg(long, value_delimiter = ',', default_value = "1000,2500,5000")]
    sync_stream_steps: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    sync_open_concurrency: usize,
    /// Sync idle streams: ask as the official clients do (BSON, gzip) or for plain NDJSON.
    #[arg(long, value_enum, default_value_t = sync_idle::Framing::BsonGzip)]
    sync_framing: sync_idle::Framing,
    /// Queue: jobs enqueued, then drained by this many concurrent claimers (claim + complete).
    #[arg(long, default_value_t = 10_000)]
    queue_jobs: usize,
    #[arg(long, default_value_t = 4)]
    queue_claimers: usize,
    /// Processing: the bench library folder (bench_corpus.py output) and the worker's cpu_default concurrency.
    #[arg(long, default_value = "target/bench-library")]
    library: PathBuf,
    #[arg(long, default_value_t = 2)]
    processing_concurrency: usize,
    /// Search: books in the bench library (200 uses `--library`, other sizes `{library}-{N}`, built on first use).
    #[arg(long, default_value_t = 200)]
    search_books: usize,
    /// Search: the shared corpus (truth.json, epub/, zh/), indexed with the bench library.
    #[arg(long, default_value = "../shared/corpus")]
    search_corpus: PathBuf,
    /// Search: open-loop offered loads (queries/s), seconds per step, querying threads, p99 target.
    #[arg(long, value_delimiter = ',', default_value = "200,400")]
    search_rates: Vec<u32>,
    #[arg(long, default_value_t = 10.0)]
    search_secs: f64,
    #[arg(long, default_value_t = 4)]
    search_threads: usize,
    #[arg(long, default_value_t = 20.0)]
    search_p99_target_ms: f64,
    /// Semantic: the embedding model file (scripts/fetch-models.sh puts it there).
    #[arg(long, default_value = "models/e5-small/e5-small-q4.bin")]
    embed_model: PathBuf,
    /// A PostgreSQL database to connect to for CREATE/DROP DATABASE (trust auth on loopback).
    #[arg(long, env = "ATHENA_BENCH_PG_ADMIN_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Bench {
    Startup,
    Upload,
    ListSqlite,
    ListPostgres,
    SyncCaptureSqlite,
    SyncCapturePostgres,
    SyncLatencySqlite,
    SyncLatencyPostgres,
    SyncIdleStreams,
    QueueSqlite,
    QueuePostgres,
    Processing,
    Search,
    Semantic,
}

impl Bench {
    /// Whether the benchmark runs the server binary (the queue benchmarks use the stores in-process).
    fn needs_server(self) -> bool {
        !matches!(self, Self::QueueSqlite | Self::QueuePostgres | Self::Search | Self::Semantic)
    }
}

fn main() -> anyhow::Result<()> {
    // The search benchmark re-executes this binary to index in a child process of its own (peak memory).
    if let Ok(engine) = std::env::var(search_engines::CHILD_ENV) {
        return search_engines::child_main(&engine);
    }
    let cli = Cli::parse();
    if cli.only.iter().any(|b| b.needs_server()) {
        anyhow::ensure!(cli.athena.exists(), "{} not found: build it with `cargo build --release -p athena`", cli.athena.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Only resolved when a benchmark runs the server, so the queue benchmarks work without the binary.
    let athena = if cli.only.iter().any(|b| b.needs_server()) { std::fs::canonicalize(&cli.athena)? } else { cli.athena.clone() };
    std::fs::create_dir_all(&cli.scratch)?;
    let scratch = std::fs::canonicalize(&cli.scratch)?;
    let list_opts = list::Options {
        books: cli.books,
        base_rate: cli.rate,
        duration: Duration::from_secs_f64(cli.duration_secs),
        ramp: cli.ramp.clone(),
        ramp_down: cli.ramp_down.clone(),
        ramp_duration: Duration::from_secs_f64(cli.ramp_secs),
        p99_target: Duration::from_secs_f64(cli.p99_target_ms / 1000.0),
    };
    let latency_opts = sync_latency::Options {
        clients: cli.sync_clients,
        changes: cli.sync_changes,
        interval: Duration::from_secs_f64(cli.sync_interval_ms / 1000.0),
        p99_target: Duration::from_secs_f64(cli.sync_p99_target_ms / 1000.0),
    };
    let idle_opts = sync_idle::Options {
        streams: cli.sync_streams,
        steps: cli.sync_stream_steps.clone(),
        concurrency: cli.sync_open_concurrency.max(1),
        settle: Duration::from_secs(2),
        framing: cli.sync_framing,
    };
    let queue_opts = queue::Options { jobs: cli.queue_jobs, claimers: cli.queue_claimers.max(1) };
    use sync_common::Backend as SyncBackend;
    for bench in &cli.only {
        let report = match bench {
            Bench::Startup => startup::run(&athena, &scratch, cli.startup_runs, Duration::from_secs_f64(cli.idle_secs)).await?,
            Bench::Upload => upload::run(&athena, &scratch, cli.upload_bytes, cli.upload_runs).await?,
            Bench::ListSqlite => list::run(&athena, &scratch, list::Backend::Sqlite, &cli.pg_admin_url, &list_opts).await?,
            Bench::ListPostgres => list::run(&athena, &scratch, list::Backend::Postgres, &cli.pg_admin_url, &list_opts).await?,
            Bench::SyncCaptureSqlite => sync_capture::run(&athena, &scratch, SyncBackend::Sqlite, &cli.pg_admin_url, cli.sync_rows).await?,
            Bench::SyncCapturePostgres => {
                sync_capture::run(&athena, &scratch, SyncBackend::Postgres, &cli.pg_admin_url, cli.sync_rows).await?
            }
            Bench::SyncLatencySqlite => sync_latency::run(&athena, &scratch, SyncBackend::Sqlite, &cli.pg_admin_url, &latency_opts).await?,
            Bench::SyncLatencyPostgres => {
                sync_latency::run(&athena, &scratch, SyncBackend::Postgres, &cli.pg_admin_url, &latency_opts).await?
            }
            Bench::SyncIdleStreams => sync_idle::run(&athena, &scratch, &idle_opts).await?,
            Bench::QueueSqlite => queue::run(&scratch, SyncBackend::Sqlite, &cli.pg_admin_url, &queue_opts).await?,
            Bench::QueuePostgres => queue::run(&scratch, SyncBackend::Postgres, &cli.pg_admin_url, &queue_opts).await?,
            Bench::Processing => {
                let opts = processing::Options { library: cli.library.clone(), concurrency: cli.processing_concurrency.max(1) };
                processing::run(&athena, &scratch, &opts).await?
            }
            Bench::Semantic => {
                let opts = semantic::Options {
                    corpus: cli.search_corpus.clone(),
                    model: cli.embed_model.clone(),
                    queries: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/semantic_queries.json"),
                };
                let scratch = scratch.clone();
                tokio::task::spawn_blocking(move || semantic::run(&scratch, &opts)).await??
            }
            Bench::Search => {
                let opts = search::Options {
                    books: cli.search_books,
                    library: cli.library.clone(),
                    corpus: cli.search_corpus.clone(),
                    rates: cli.search_rates.clone(),
                    duration: Duration::from_secs_f64(cli.search_secs),
                    threads: cli.search_threads.max(1),
                    p99_target: Duration::from_secs_f64(cli.search_p99_target_ms / 1000.0),
                    pg_admin: cli.pg_admin_url.clone(),
                };
                search::run(&scratch, &opts).await?
            }
        };
        println!("{report}");
    }
    Ok(())
}
