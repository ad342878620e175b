//! The `athena` binary: parses the command line, loads configuration, and hands over to
//! `athena-server` (serving, doctor, backends) or `athena-app` (admin). `anyhow` lives only here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use athena_config::Config;
use athena_server::{Application, Role};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "athena", version, about = "Athena: self-hosted ebook library and reading platform")]
struct Cli {
    /// Configuration file (default: ./athena.toml if present, or ATHENA_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API + web on 48000; with no --role it also hosts the worker (and sync) roles.
    Serve {
        /// Run only these roles (repeatable): api, sync, worker.
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<Role>,
    },
    /// Create the hot/cold data dirs and the backup dir (seed: init-data-dirs.sh).
    Init,
    /// Apply database migrations.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Object storage.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Background jobs: list, inspect, retry, cancel (the seed's Celery/flower habits).
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Rebuild the search index: queue `book.index` for the selected books (all by default) and
    /// wait for them. A running server's worker runs them; with no server running, this does.
    Reindex {
        /// Only this user's books.
        #[arg(long)]
        user: Option<String>,
        /// Only this book.
        #[arg(long)]
        book: Option<String>,
    },
    /// Backups: create, list, verify, restore, prune (docs/BACKUP.md).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Check every component and print a report; exits non-zero if unhealthy.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account, or make an existing user admin (seed: create_admin).
    Create {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Queue figures and the newest jobs (filter by --queue, --state, --kind, --book).
    List {
        #[arg(long)]
        queue: Option<String>,
        /// queued, running, succeeded, dead, cancelled
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        book: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One job in full, its last error included.
    Show { id: String },
    /// Queue a dead or cancelled job again, with fresh attempts.
    Retry { id: String },
    /// Cancel a queued or running job (a running one stops at its next heartbeat).
    Cancel { id: String },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Back up the database and copy new objects (a set in ATHENA_BACKUP_DIR, then offsite).
    Create,
    /// The backup sets, oldest first.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a set's checksums and trial-restore it into a temporary place.
    Verify { name: String },
    /// Restore a set into the configured database and object store (stop the server first).
    Restore {
        name: String,
        /// Replace a database or object store that already holds data.
        #[arg(long)]
        force: bool,
    },
    /// Remove sets past ATHENA_BACKUP_KEEP_DAYS (offsite: ATHENA_BACKUP_OFFSITE_KEEP_DAYS) and unreferenced objects.
    Prune,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Show,
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Write, read and delete a probe object (seed: test_s3).
    Check,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("athena: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("athena: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("athena: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { roles } => {
            athena_server::init_tracing(&config);
            let app = Application::build(config, &roles).await?;
            app.run_until_stopped(athena_server::shutdown_signal()).await?;
        }
        Command::Init => {
            for dir in athena_server::backends::ensure_dirs(&config)? {
                println!("{}", dir.display());
            }
        }
        Command::Migrate => {
            let store = athena_server::backends::open_store(&config).await?;
            store.migrate().await.context("migrations")?;
            println!("migrations applied ({})", store.backend());
            store.close().await;
        }
        Command::Admin { command: AdminCommand::Create { email } } => {
            let email: athena_domain::Email = email.parse().map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            config.ensure_dev_secret()?;
            athena_server::backends::ensure_dirs(&config)?;
            let app = athena_server::backends::open_app(config).await?;
            let user = app.ensure_admin(&email).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("admin: {} ({})", user.email, user.id);
            app.store.close().await;
        }
        Command::Config { command: ConfigCommand::Show } => {
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        Command::Storage { command: StorageCommand::Check } => {
            config.ensure_dev_secret()?;
            let (blobs, _) = athena_server::backends::open_blobs(&config, "http://127.0.0.1").await?;
            let detail = blobs.probe().await.map_err(|e| anyhow::anyhow!("storage check failed ({}): {e}", blobs.backend()))?;
            println!("storage ok ({}): {detail}", blobs.backend());
        }
        Command::Jobs { command } => return jobs(command, config).await,
        Command::Backup { command } => return backup(command, config).await,
        Command::Reindex { user, book } => return reindex(user, book, config).await,
        Command::Doctor { json } => {
            let report = athena_server::doctor(config).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for c in &report.checks {
                    println!("{:<5} {:<15} {:>5} ms  {}", c.status.to_uppercase(), c.name, c.ms, c.detail);
                }
                println!("{}", if report.healthy { "healthy" } else { "UNHEALTHY" });
            }
            if !report.healthy {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn backup(command: BackupCommand, mut config: Config) -> anyhow::Result<ExitCode> {
    use athena_backup::SetKind;
    // The local object store's signer needs the secret; it signs nothing here.
    config.ensure_dev_secret()?;
    let live = || async { athena_server::backends::open_blobs(&config, "http://127.0.0.1").await.map(|(b, _)| b) };
    match command {
        BackupCommand::Create => {
            let blobs = live().await?;
            let r = athena_backup::create(&config, &*blobs, SetKind::Full, chrono::Utc::now()).await?;
            println!(
                "backup {} written: {} bytes, {} objects ({} copied, {} already backed up) in {:.1} s",
                r.name, r.bytes, r.objects, r.objects_copied, r.objects_skipped, r.seconds
            );
            if let Some(e) = r.offsite_error {
                eprintln!("athena: the offsite copy failed: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
        BackupCommand::List { json } => {
            let sets = athena_backup::list(&config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sets)?);
            } else {
                println!("{:<28} {:<20} {:>12} {:<9} {:<9} VERIFIED", "NAME", "TIME (UTC)", "BYTES", "BACKEND", "KIND");
                for s in &sets {
                    let time = s.created_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "incomplete".into());
                    let kind = s.kind.map(|k| format!("{k:?}").to_lowercase()).unwrap_or_else(|| "-".into());
                    let verified = match s.verified {
                        Some(true) => "yes",
                        Some(false) => "FAILED",
                        None => "-",
                    };
                    println!(
                        "{:<28} {:<20} {:>12} {:<9} {:<9} {verified}",
                        s.name,
                        time,
                        s.bytes,
                        s.backend.as_deref().unwrap_or("-"),
                        kind
                    );
                }
            }
        }
        BackupCommand::Verify { name } => {
            let r = athena_backup::verify(&config, &name).await?;
            println!(
                "backup {} verified: {} files, {} tables, {} rows, {} objects in {:.1} s",
                r.name, r.files, r.tables, r.rows, r.objects, r.seconds
            );
        }
        BackupCommand::Restore { name, force } => {
            athena_server::backends::ensure_dirs(&config)?;
            let blobs = live().await?;
            let r = athena_backup::restore(&config, &*blobs, &name, force).await?;
            println!("backup {} restored: {} tables, {} rows, {} objects in {:.1} s", r.name, r.tables, r.rows, r.objects, r.seconds);
        }
        BackupCommand::Prune => {
            let r = athena_backup::prune(&config, chrono::Utc::now()).await?;
            println!(
                "removed {} sets, {} offsite sets, {} unreferenced objects",
                r.removed_sets.len(),
                r.removed_offsite.len(),
                r.removed_objects
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn jobs(command: JobsCommand, config: Config) -> anyhow::Result<ExitCode> {
    use athena_store::jobs::{Job, JobFilter};
    let store = athena_server::backends::open_store(&config).await?;
    store.migrate().await.context("migrations")?;
    let parse_id = |id: &str| uuid::Uuid::parse_str(id.trim()).map_err(|_| anyhow::anyhow!("{id:?} is not a job id"));
    let now = chrono::Utc::now();
    let show = |job: &Job| serde_json::to_string_pretty(&job_json(job)).unwrap_or_default();
    let code = match command {
        JobsCommand::List { queue, state, kind, book, limit, json } => {
            let filter = JobFilter {
                queue: queue.map(|q| q.parse()).transpose().map_err(|e: String| anyhow::anyhow!("--queue: {e}"))?,
                state: state.map(|s| s.parse()).transpose().map_err(|e: String| anyhow::anyhow!("--state: {e}"))?,
                kind,
                book_id: book.map(|b| b.parse()).transpose().map_err(|e| anyhow::anyhow!("--book: {e}"))?,
                limit: limit.clamp(1, 1000),
            };
            let stats = store.queue_stats(now).await?;
            let jobs = store.list_jobs(&filter).await?;
            if json {
                let stats: Vec<_> = stats
                    .iter()
                    .map(|s| {
                        serde_json::json!({ "queue": s.queue.map(|q| q.as_str()), "ready": s.ready, "scheduled": s.scheduled,
                            "running": s.running, "dead": s.dead, "succeeded": s.succeeded, "cancelled": s.cancelled })
                    })
                    .collect();
                let jobs: Vec<_> = jobs.iter().map(job_json).collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "queues": stats, "jobs": jobs }))?);
            } else {
                println!("{:<12} {:>6} {:>9} {:>7} {:>5} {:>9}", "QUEUE", "READY", "SCHEDULED", "RUNNING", "DEAD", "SUCCEEDED");
                for s in &stats {
                    let q = s.queue.map(|q| q.as_str()).unwrap_or("-");
                    println!("{q:<12} {:>6} {:>9} {:>7} {:>5} {:>9}", s.ready, s.scheduled, s.running, s.dead, s.succeeded);
                }
                println!();
                println!("{:<36} {:<12} {:<14} {:<9} {:>7}  {:<20}  ERROR", "ID", "QUEUE", "KIND", "STATE", "TRIES", "UPDATED");
                for j in &jobs {
                    let error: String = j.last_error.as_deref().unwrap_or("").chars().take(60).collect();
                    println!(
                        "{:<36} {:<12} {:<14} {:<9} {:>3}/{:<3}  {:<20}  {error}",
                        j.id,
                        j.queue.as_str(),
                        j.kind,
                        j.state.as_str(),
                        j.attempts,
                        j.max_attempts,
                        j.updated_at.format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        JobsCommand::Show { id } => match store.job(parse_id(&id)?).await? {
            Some(job) => {
                println!("{}", show(&job));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("athena: no job {id}");
                ExitCode::FAILURE
            }
        },
        JobsCommand::Retry { id } => match store.retry_job(parse_id(&id)?, now).await? {
            Some(job) => {
                println!("{}", show(&job));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("athena: no job {id}");
                ExitCode::FAILURE
            }
        },
        JobsCommand::Cancel { id } => match store.cancel_job(parse_id(&id)?, now).await? {
            Some(job) => {
                println!("{}", show(&job));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("athena: no job {id}");
                ExitCode::FAILURE
            }
        },
    };
    store.close().await;
    Ok(code)
}

/// How often `reindex` looks at its jobs, and waits for a retry that is not due yet.
const REINDEX_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// Books per page when queueing.
const REINDEX_PAGE: u32 = 500;

async fn reindex(user: Option<String>, book: Option<String>, mut config: Config) -> anyhow::Result<ExitCode> {
    use athena_app::pipeline::TaskKind;
    use athena_search::{IndexHealth, SearchIndex, TantivyIndex};
    use athena_store::jobs::{JobState, Queue};

    let book: Option<athena_domain::BookId> = book.map(|b| b.parse()).transpose().map_err(|e| anyhow::anyhow!("--book: {e}"))?;
    let email: Option<athena_domain::Email> = user.map(|u| u.parse()).transpose().map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    config.ensure_dev_secret()?;
    athena_server::backends::ensure_dirs(&config)?;
    let dir = config.hot_dir.join("index").join("tantivy");
    let postgres = athena_server::postgres_search_url(&config)?;
    let search_config = config.clone();
    let app = athena_server::backends::open_app(config).await?;
    let user = match &email {
        Some(email) => match app.store.user_by_email(email).await? {
            Some(u) => Some(u.id),
            None => anyhow::bail!("--user: no user {email}"),
        },
        None => None,
    };
    // The index is opened here only when no server holds it (tantivy's writer lock); otherwise the
    // running server's worker role runs the jobs and this process only waits for them.
    // PostgreSQL's index is shared: this process opens it too and runs jobs beside any server.
    let (local, tantivy): (Option<std::sync::Arc<dyn SearchIndex>>, Option<std::sync::Arc<TantivyIndex>>) = match postgres {
        Some(url) => {
            let index = tokio::task::spawn_blocking(move || athena_server::open_postgres_search(&search_config, &url))
                .await?
                .map_err(|e| anyhow::anyhow!("opening the PostgreSQL search engine: {e}"))?;
            (Some(std::sync::Arc::new(index)), None)
        }
        None => match TantivyIndex::open(&dir) {
            Ok(index) => {
                let index = std::sync::Arc::new(index);
                (Some(index.clone()), Some(index))
            }
            Err(athena_search::SearchError::Unavailable(reason)) => {
                eprintln!("athena: the search index is held by a running server ({reason}); its worker runs the jobs");
                (None, None)
            }
            Err(e) => return Err(anyhow::anyhow!("opening the search index in {}: {e}", dir.display())),
        },
    };
    // A new or reset index is filled with every book, whatever was asked for.
    let mut everything = user.is_none() && book.is_none();
    if let Some(index) = &local {
        match index.health() {
            IndexHealth::Corrupt { reason } => match &tantivy {
                Some(tantivy) => {
                    eprintln!("athena: the search index is corrupt ({reason}); resetting it and indexing every book");
                    tantivy.reset().map_err(|e| anyhow::anyhow!("resetting the search index: {e}"))?;
                    everything = true;
                }
                None => anyhow::bail!("the PostgreSQL search index is unavailable: {reason}"),
            },
            IndexHealth::Rebuilding { docs: 0, .. } if !everything => {
                eprintln!("athena: the search index is empty; indexing every book");
                everything = true;
            }
            _ => {}
        }
    }
    let (user, book) = if everything { (None, None) } else { (user, book) };

    let max_attempts = app.config.worker.max_attempts;
    let mut jobs = Vec::new();
    let mut after = None;
    loop {
        let page = app.store.books_to_index(user.as_ref(), book.as_ref(), after.as_ref(), REINDEX_PAGE).await?;
        let Some((last, _)) = page.last().cloned() else { break };
        for (b, u) in &page {
            // The dedup key reuses a book's unfinished index job: rerunning is harmless.
            let (job, _) = app.store.enqueue_job(TaskKind::Index.for_book(b, u, max_attempts, app.clock.now())).await?;
            jobs.push(job.id);
        }
        after = Some(last);
    }
    if let (Some(b), true) = (&book, jobs.is_empty()) {
        anyhow::bail!("--book: no live book {b}");
    }

    let worker = local.as_ref().map(|index| athena_worker::Worker::new(app.clone().with_search(index.clone())));
    let total = jobs.len();
    let mut pending: std::collections::VecDeque<_> = jobs.into();
    let mut dead = Vec::new();
    let mut shown = None;
    loop {
        // Jobs finish roughly in the order they were queued: the oldest unfinished one is the mark.
        while let Some(&id) = pending.front() {
            match app.store.job(id).await? {
                Some(job) if !job.state.is_finished() => break,
                Some(job) => {
                    if job.state == JobState::Dead {
                        dead.push(job);
                    }
                    pending.pop_front();
                }
                None => {
                    pending.pop_front();
                }
            }
        }
        let done = total - pending.len();
        if shown != Some(done) {
            eprint!("\rindexed {done}/{total}");
            shown = Some(done);
        }
        if pending.is_empty() {
            break;
        }
        // Without a server this process is the worker: it runs whatever is due on the queue the
        // index jobs share (a job of another kind it has a task for too, as the server would).
        let ran = match &worker {
            Some(worker) => worker.run_one(Queue::CpuDefault).await?.is_some(),
            None => false,
        };
        if !ran {
            tokio::time::sleep(REINDEX_POLL).await;
        }
    }
    eprintln!();
    for job in &dead {
        let book = job.book_id.as_ref().map(|b| b.to_string()).unwrap_or_default();
        eprintln!("athena: book {book}: job {} died: {}", job.id, job.last_error.as_deref().unwrap_or("no error recorded"));
    }
    if let Some(index) = &local {
        if everything && dead.is_empty() {
            index.mark_ready().map_err(|e| anyhow::anyhow!("marking the search index ready: {e}"))?;
        } else if !index.health().is_ready() {
            eprintln!("athena: the search index is still incomplete; run `athena reindex` for every book");
        }
    }
    drop(worker);
    app.store.close().await;
    if dead.is_empty() {
        println!("indexed {total} books");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("athena: {} of {total} books could not be indexed", dead.len());
        Ok(ExitCode::FAILURE)
    }
}

fn job_json(j: &athena_store::jobs::Job) -> serde_json::Value {
    serde_json::json!({
        "id": j.id, "queue": j.queue.as_str(), "kind": j.kind, "state": j.state.as_str(), "payload": j.payload,
        "attempts": j.attempts, "max_attempts": j.max_attempts, "priority": j.priority, "run_at": j.run_at,
        "lease_owner": j.lease_owner, "lease_expires_at": j.lease_expires_at, "last_error": j.last_error,
        "user_id": j.user_id, "book_id": j.book_id, "created_at": j.created_at, "started_at": j.started_at,
        "finished_at": j.finished_at, "updated_at": j.updated_at,
    })
}
