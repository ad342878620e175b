//! Wiring: builds Athena from a [`Config`] — opens the database and object storage chosen by the
//! configuration, builds the use cases and the router — binds its listeners (port 0 picks a free
//! port) and runs the roles until a shutdown signal, finishing in-flight requests first.
//!
//! Entry points: [`Application::build`] then [`Application::run_until_stopped`]; [`doctor`] for the
//! health report of `athena doctor`; [`backends`] for the CLI commands that need only storage.
//! Roles: `api` (REST, docs, web), `worker` (background work; today the housekeeping sweep), and
//! `sync` (the PowerSync service, not part of this build yet). This crate decides *which*
//! implementation runs; it implements no behaviour of its own.

pub mod backends;
mod doctor;
mod error_report;
mod metered;
mod semantic;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use athena_app::{App, Clock, LogMailer, Mailer, SmtpMailer, SystemClock};
use athena_config::Config;
use athena_http::{ApiState, HealthCheck};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use doctor::{doctor, DoctorReport};
pub use telemetry::init_tracing;

/// The roles one process can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Api,
    Sync,
    Worker,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api" => Ok(Self::Api),
            "sync" => Ok(Self::Sync),
            "worker" => Ok(Self::Worker),
            other => Err(format!("unknown role `{other}` (api, sync or worker)")),
        }
    }
}

/// How often the worker role sweeps expired uploads, the trash and old rate-limit events.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// How often the worker role asks the backup scheduler whether a backup is due.
const BACKUP_TICK: Duration = Duration::from_secs(60);
/// `/health` reads the backup dir at most this often.
const BACKUP_HEALTH_TTL: Duration = Duration::from_secs(30);

/// `/health`'s `backup` component: `warn` (which leaves the overall status alone, never `down`)
/// when the newest good backup set is missing or older than 24 h.
struct BackupHealth {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    /// Listing the sets reads every manifest; a short cache keeps `/health` cheap under polling.
    cached: std::sync::Mutex<Option<(std::time::Instant, athena_http::health::ComponentHealth)>>,
}

#[async_trait::async_trait]
impl HealthCheck for BackupHealth {
    fn name(&self) -> &'static str {
        "backup"
    }
    async fn check(&self) -> athena_http::health::ComponentHealth {
        if let Some((at, h)) = self.cached.lock().ok().and_then(|c| c.clone()) {
            if at.elapsed() < BACKUP_HEALTH_TTL {
                return h;
            }
        }
        let start = std::time::Instant::now();
        let (config, now) = (self.config.clone(), self.clock.now());
        let fresh = tokio::task::spawn_blocking(move || athena_backup::freshness(&config, now))
            .await
            .unwrap_or_else(|e| Err(format!("backup check stopped: {e}")));
        let latency_ms = (start.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        let h = match fresh {
            Ok(detail) => athena_http::health::ComponentHealth { status: "ok", detail: Some(detail), latency_ms },
            Err(detail) => athena_http::health::ComponentHealth { status: "warn", detail: Some(detail), latency_ms },
        };
        if let Ok(mut c) = self.cached.lock() {
            *c = Some((std::time::Instant::now(), h.clone()));
        }
        h
    }
}

pub struct Application {
    app: App,
    roles: Vec<Role>,
    api: Option<(TcpListener, axum::Router)>,
    sync: Option<SyncRole>,
    /// A worker-only process's own Prometheus listener (others expose the worker's metrics on theirs).
    worker_metrics: Option<TcpListener>,
    stop: (watch::Sender<bool>, watch::Receiver<bool>),
}

struct SyncRole {
    service: athena_sync::SyncService,
    listener: TcpListener,
    metrics_listener: TcpListener,
}

impl Application {
    /// Opens the backends, migrates, and binds the listeners of the given roles (all when empty).
    pub async fn build(config: Config, roles: &[Role]) -> anyhow::Result<Self> {
        Self::build_with_clock(config, roles, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with a clock tests can move (code expiry, rate-limit windows).
    pub async fn build_with_clock(mut config: Config, roles: &[Role], clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let roles: Vec<Role> = if roles.is_empty() { vec![Role::Api, Role::Sync, Role::Worker] } else { roles.to_vec() };
        // Before anything can fail or panic: with SENTRY_DSN set, panics and 5xx responses are reported.
        error_report::install(&config, &roles);
        config.ensure_dev_secret().context("signing secret")?;
        backends::ensure_dirs(&config)?;
        let config = Arc::new(config);
        let (store, sync_store) = backends::open_stores(&config).await?;
        store.migrate().await.context("database migrations")?;
        // Rules are checked before anything listens: a bad rule is a start-up error naming its line.
        let sync_rules = if roles.contains(&Role::Sync) { Some(backends::load_sync_rules(&config)?) } else { None };
        // Bind first: signed upload URLs must name the real port when 0 was asked for.
        let listener = if roles.contains(&Role::Api) {
            Some(TcpListener::bind(config.api_addr()).await.with_context(|| format!("binding the API port {}", config.api_addr()))?)
        } else {
            None
        };
        let public_base = match (&config.public_url, &listener) {
            (Some(url), _) => url.clone(),
            (None, Some(l)) => format!("http://{}", l.local_addr()?),
            (None, None) => format!("http://{}", config.api_addr()),
        };
        let (blobs, signer) = backends::open_blobs(&config, &public_base).await?;
        let blobs: Arc<dyn athena_blob::BlobStore> = Arc::new(metered::MeteredBlobStore(blobs));
        let mailer: Arc<dyn Mailer> = match &config.smtp {
            Some(smtp) => Arc::new(SmtpMailer::new(smtp).context("SMTP settings")?),
            None => Arc::new(LogMailer),
        };
        let mut app = App::new(store.clone(), blobs.clone(), config.clone(), mailer, clock).map_err(|e| anyhow::anyhow!("{e}"))?;
        // The keyword search engine: tantivy in the hot dir (one writing process) or PostgreSQL (shared).
        let opened = if roles.contains(&Role::Api) || roles.contains(&Role::Worker) { open_search(&config, &*store).await? } else { None };
        let (search, rebuild) = match opened {
            Some((index, needs_rebuild)) => {
                let shared: Arc<dyn athena_search::SearchIndex> = index.clone();
                (Some(shared), needs_rebuild.then_some(index))
            }
            None => (None, None),
        };
        if let Some(index) = &search {
            app = app.with_search(index.clone());
        }
        if let Some(embedder) = semantic::embedder(&config) {
            app = app.with_semantic(embedder);
        }
        let removed = app.clear_spool().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if removed > 0 {
            tracing::info!(removed, "removed partial uploads left by a previous process");
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(index) = rebuild {
            // Holds the index weakly: a stopped server releases it (and tantivy's writer lock) at once.
            tokio::spawn(rebuild_search(
                store.clone(),
                app.clock.clone(),
                config.worker.max_attempts,
                Arc::downgrade(&index),
                stop_rx.clone(),
            ));
        }
        let sync = match sync_rules {
            Some(rules) => {
                athena_sync::install_descriptions();
                let sync_config = athena_sync::SyncConfig { upload_enabled: config.powersync_upload_enabled, ..Default::default() };
                let service = athena_sync::SyncService::start(app.clone(), sync_store, rules, sync_config)
                    .await
                    .context("starting the sync service")?;
                let sync_addr = std::net::SocketAddr::from((config.bind, config.sync_port));
                let sync_listener = TcpListener::bind(sync_addr).await.with_context(|| format!("binding the sync port {sync_addr}"))?;
                let metrics_addr = std::net::SocketAddr::from((config.bind, config.metrics_port));
                let metrics_listener =
                    TcpListener::bind(metrics_addr).await.with_context(|| format!("binding the metrics port {metrics_addr}"))?;
                Some(SyncRole { service, listener: sync_listener, metrics_listener })
            }
            None => None,
        };

        let api = if let Some(listener) = listener {
            let health: Vec<Arc<dyn HealthCheck>> = vec![
                Arc::new(athena_http::health::DatabaseHealth(store.clone())),
                Arc::new(athena_http::health::StorageHealth(blobs.clone())),
                Arc::new(BackupHealth { config: config.clone(), clock: app.clock.clone(), cached: std::sync::Mutex::new(None) }),
            ];
            let mut health = health;
            if let Some(index) = &search {
                health.push(Arc::new(athena_http::health::SearchHealth(index.clone())));
            }
            let state = ApiState { app: app.clone(), signer, metrics: athena_http::metrics_handle(), health: Arc::new(health) };
            let mut router = athena_http::router(state);
            if let Some(sync) = &sync {
                // Same origin for the web app: the sync service also answers under /powersync.
                router = router.nest("/powersync", athena_sync::router(sync.service.clone(), stop_rx.clone()));
                // A write through the API wakes the sequencer at once instead of at its next poll.
                let service = sync.service.clone();
                router = router.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let service = service.clone();
                    async move {
                        let writes =
                            !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
                        let response = next.run(req).await;
                        if writes && response.status().is_success() {
                            service.nudge();
                        }
                        response
                    }
                }));
            }
            Some((listener, router))
        } else {
            None
        };
        let worker_metrics = if roles.contains(&Role::Worker) && api.is_none() && sync.is_none() {
            let addr = std::net::SocketAddr::from((config.bind, config.worker.metrics_port));
            Some(TcpListener::bind(addr).await.with_context(|| format!("binding the worker metrics port {addr}"))?)
        } else {
            None
        };
        Ok(Self { app, roles, api, sync, worker_metrics, stop: (stop_tx, stop_rx) })
    }

    /// The bound API address (with the real port when 0 was asked for).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// The bound sync and metrics addresses, when this process runs the sync role.
    pub fn sync_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        let s = self.sync.as_ref()?;
        Some((s.listener.local_addr().ok()?, s.metrics_listener.local_addr().ok()?))
    }

    /// The sync service, when this process runs the sync role.
    pub fn sync_service(&self) -> Option<athena_sync::SyncService> {
        self.sync.as_ref().map(|s| s.service.clone())
    }

    /// Runs until `shutdown` resolves; in-flight requests finish, then the database pool closes.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = self.stop;
        let mut tasks = tokio::task::JoinSet::new();
        // Every listener serves `into_make_service()`: a bare Router rebuilds its route table for each
        // new connection (~3.6 KiB that stays for the connection's life: 36 MiB over 10,000 sync streams).
        if let Some(sync) = self.sync {
            let addr = sync.listener.local_addr()?;
            let metrics_addr = sync.metrics_listener.local_addr()?;
            tracing::info!(%addr, role = "sync", "listening");
            tracing::info!(addr = %metrics_addr, role = "metrics", "listening");
            let router = athena_sync::router(sync.service.clone(), stop_rx.clone());
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                axum::serve(sync.listener, router.into_make_service())
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await
                    .context("sync server")
            });
            let handle = athena_http::metrics_handle();
            let metrics_router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let handle = handle.clone();
                    async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()) }
                }),
            );
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                axum::serve(sync.metrics_listener, metrics_router.into_make_service())
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await
                    .context("metrics server")
            });
            let rx = stop_rx.clone();
            tasks.spawn(async move {
                sync.service.run(rx).await;
                Ok(())
            });
        }
        if let Some((listener, router)) = self.api {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, role = "api", "listening");
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                axum::serve(listener, router.into_make_service())
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await
                    .context("API server")
            });
        }
        if let Some(listener) = self.worker_metrics {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, role = "metrics", "listening");
            let handle = athena_http::metrics_handle();
            let store = self.app.store.clone();
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let (handle, store) = (handle.clone(), store.clone());
                    async move {
                        athena_http::refresh_queue_gauges(&*store).await;
                        ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
                    }
                }),
            );
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                axum::serve(listener, router.into_make_service())
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await
                    .context("worker metrics server")
            });
        }
        if self.roles.contains(&Role::Worker) {
            athena_worker::install_descriptions();
            let worker = athena_worker::Worker::new(self.app.clone());
            let rx = stop_rx.clone();
            tasks.spawn(async move {
                worker.run(rx).await;
                Ok(())
            });
            let app = self.app.clone();
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                loop {
                    match app.sweep().await {
                        Ok(report) => tracing::info!(?report, "housekeeping sweep"),
                        Err(e) => tracing::warn!(error = %e, "housekeeping sweep failed"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(SWEEP_EVERY) => {}
                        _ = rx.wait_for(|stop| *stop) => return Ok(()),
                    }
                }
            });
            let backup = &self.app.config.backup;
            if backup.at.is_some() || backup.sqlite_interval_minutes > 0 {
                let app = self.app.clone();
                let mut scheduler = athena_backup::schedule::Scheduler::new(app.config.clone(), app.blobs.clone());
                let mut rx = stop_rx.clone();
                tasks.spawn(async move {
                    loop {
                        // The first tick waits too: a process that starts does not back up at once.
                        tokio::select! {
                            _ = tokio::time::sleep(BACKUP_TICK) => {}
                            _ = rx.wait_for(|stop| *stop) => return Ok(()),
                        }
                        match scheduler.tick(app.clock.now()).await {
                            Ok(athena_backup::schedule::Ran::Created(r)) => {
                                tracing::info!(set = %r.name, bytes = r.bytes, copied = r.objects_copied, skipped = r.objects_skipped, "backup")
                            }
                            Ok(_) => {}
                            Err(e) => {
                                metrics::gauge!("athena_backup_last_status").set(0.0);
                                tracing::error!(error = %e, "scheduled backup failed");
                            }
                        }
                        let (config, now) = (app.config.clone(), app.clock.now());
                        let _ = tokio::task::spawn_blocking(move || athena_backup::freshness(&config, now)).await;
                    }
                });
            }
        }
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(anyhow::anyhow!("a role crashed: {e}")),
            }
        }
        self.app.store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Opens the search engine the configuration picks (`ATHENA_SEARCH_ENGINE`): on `auto`, the
/// PostgreSQL engine when the database is PostgreSQL (every replica shares its index), else the
/// embedded index in `hot/index/tantivy`, which one process writes: one that another process
/// holds is left to it (None). A corrupt tantivy index is reset. The bool says whether the index
/// must be rebuilt: it is new or reset (or a previous process left its rebuild unfinished) while
/// the database has live books. With no live books a new index is marked ready at once.
/// The PostgreSQL database the search engine uses, when the configured engine is PostgreSQL's
/// (`ATHENA_SEARCH_ENGINE`, `auto` on a PostgreSQL database); None for the embedded tantivy index.
pub fn postgres_search_url(config: &Config) -> anyhow::Result<Option<String>> {
    use athena_config::SearchEngineKind;
    let postgres_url = config.database_url.as_ref().map(|u| u.expose().to_string()).filter(|u| u.starts_with("postgres"));
    match (config.search_engine, postgres_url) {
        (SearchEngineKind::Tantivy, _) | (SearchEngineKind::Auto, None) => Ok(None),
        (SearchEngineKind::Auto | SearchEngineKind::Postgres, Some(url)) => Ok(Some(url)),
        (SearchEngineKind::Postgres, None) => {
            anyhow::bail!("ATHENA_SEARCH_ENGINE=postgres needs a PostgreSQL database (DATABASE_URL=postgres://…)")
        }
    }
}

/// Connects the PostgreSQL search engine (blocking: call from a blocking thread).
pub fn open_postgres_search(config: &Config, url: &str) -> Result<athena_search_postgres::PgSearchIndex, athena_search::SearchError> {
    let options = athena_search_postgres::PgSearchOptions { max_connections: config.db_max_connections.clamp(2, 8), ..Default::default() };
    athena_search_postgres::PgSearchIndex::connect(url, options)
}

async fn open_search(
    config: &Config,
    store: &dyn athena_store::Store,
) -> anyhow::Result<Option<(Arc<dyn athena_search::SearchIndex>, bool)>> {
    let postgres_url = postgres_search_url(config)?;
    let (index, health): (Arc<dyn athena_search::SearchIndex>, _) = match postgres_url {
        Some(url) => {
            let cfg = config.clone();
            let opened = tokio::task::spawn_blocking(move || {
                let index = open_postgres_search(&cfg, &url)?;
                let health = athena_search::SearchIndex::health(&index);
                Ok::<_, athena_search::SearchError>((index, health))
            })
            .await
            .context("opening the PostgreSQL search engine")?;
            match opened {
                Ok((index, health)) => (Arc::new(index), health),
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL search engine not opened; this process serves no search");
                    return Ok(None);
                }
            }
        }
        None => {
            let dir = config.hot_dir.join("index").join("tantivy");
            let index = match athena_search::TantivyIndex::open(&dir) {
                Ok(index) => index,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "search index not opened; this process serves no search");
                    return Ok(None);
                }
            };
            let mut health = athena_search::SearchIndex::health(&index);
            if let athena_search::IndexHealth::Corrupt { reason } = &health {
                tracing::error!(%reason, "search index corrupt; resetting it");
                match index.reset() {
                    Ok(()) => health = athena_search::SearchIndex::health(&index),
                    // Writes fail until a later start resets it: nothing to rebuild into.
                    Err(e) => tracing::error!(error = %e, "search index reset failed"),
                }
            }
            (Arc::new(index), health)
        }
    };
    let incomplete = match health {
        athena_search::IndexHealth::Corrupt { reason } => {
            // PostgreSQL unreachable or not migrated, or a tantivy reset that failed.
            tracing::error!(engine = index.engine(), %reason, "search index unavailable");
            false
        }
        athena_search::IndexHealth::Rebuilding { .. } => true,
        athena_search::IndexHealth::Ready { .. } => false,
    };
    let needs_rebuild = incomplete
        && match store.books_to_index(None, None, None, 1).await {
            Ok(books) if books.is_empty() => {
                let ready = index.clone();
                match tokio::task::spawn_blocking(move || ready.mark_ready()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "marking the empty search index ready failed"),
                    Err(e) => tracing::warn!(error = %e, "marking the empty search index ready stopped"),
                }
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "listing books for the search index failed; rebuilding it");
                true
            }
        };
    Ok(Some((index, needs_rebuild)))
}

/// Books per page when queueing a search rebuild.
const REBUILD_PAGE: u32 = 500;
/// How often a search rebuild looks at its jobs (and retries a failed database call).
const REBUILD_POLL: Duration = Duration::from_millis(500);

/// Rebuilds the search index after `open_search` found it new, reset or unfinished: queues
/// `book.index` for every live book (a job already queued for a book is reused through its dedup
/// key), waits until all of them have finished — run by this process's worker role or another's —
/// then marks the index ready. Until then `/health` reports search `degraded`. Stops when the
/// server stops, leaving the index marked rebuilding, so the next start rebuilds again.
async fn rebuild_search(
    store: Arc<dyn athena_store::Store>,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    index: std::sync::Weak<dyn athena_search::SearchIndex>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending = std::collections::VecDeque::new();
    let mut after: Option<athena_domain::BookId> = None;
    loop {
        let page = match store.books_to_index(None, None, after.as_ref(), REBUILD_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "search rebuild: listing books failed");
                if pause(&mut stop).await {
                    return;
                }
                continue;
            }
        };
        let Some((last, _)) = page.last().cloned() else { break };
        for (book, user) in &page {
            loop {
                let job = athena_app::pipeline::TaskKind::Index.for_book(book, user, max_attempts, clock.now());
                match store.enqueue_job(job).await {
                    Ok((job, _)) => {
                        pending.push_back(job.id);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %book, "search rebuild: queueing an index job failed");
                        if pause(&mut stop).await {
                            return;
                        }
                    }
                }
            }
        }
        after = Some(last);
    }
    let books = pending.len();
    tracing::info!(books, "search index rebuild: index jobs queued");
    let mut dead = 0usize;
    // Jobs run roughly in the order they were queued: waiting on the oldest unfinished one is cheap.
    while let Some(&id) = pending.front() {
        match store.job(id).await {
            Ok(Some(job)) if !job.state.is_finished() => {
                if pause(&mut stop).await {
                    return;
                }
            }
            Ok(job) => {
                // None: purged, so it finished long ago.
                if let Some(job) = job.filter(|j| j.state == athena_store::jobs::JobState::Dead) {
                    dead += 1;
                    tracing::warn!(job = %job.id, book = ?job.book_id, error = ?job.last_error, "search rebuild: a book could not be indexed");
                }
                pending.pop_front();
            }
            Err(e) => {
                tracing::warn!(error = %e, "search rebuild: reading a job failed");
                if pause(&mut stop).await {
                    return;
                }
            }
        }
    }
    let Some(index) = index.upgrade() else { return };
    let marked = tokio::task::spawn_blocking(move || index.mark_ready())
        .await
        .unwrap_or_else(|e| Err(athena_search::SearchError::Engine(format!("marking the index ready stopped: {e}"))));
    match marked {
        Ok(()) => tracing::info!(books, dead, "search index rebuilt"),
        Err(e) => tracing::error!(error = %e, "search index rebuilt but could not be marked ready"),
    }
}

/// Waits one rebuild poll; true when the server is stopping (or gone).
async fn pause(stop: &mut watch::Receiver<bool>) -> bool {
    // Ok either way: the stop flag was raised, or the sender is gone with the server.
    tokio::time::timeout(REBUILD_POLL, stop.wait_for(|stop| *stop)).await.is_ok()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
