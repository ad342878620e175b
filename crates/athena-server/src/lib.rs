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
mod metered;
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

pub struct Application {
    app: App,
    roles: Vec<Role>,
    api: Option<(TcpListener, axum::Router)>,
}

impl Application {
    /// Opens the backends, migrates, and binds the listeners of the given roles (all when empty).
    pub async fn build(config: Config, roles: &[Role]) -> anyhow::Result<Self> {
        Self::build_with_clock(config, roles, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with a clock tests can move (code expiry, rate-limit windows).
    pub async fn build_with_clock(mut config: Config, roles: &[Role], clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let roles: Vec<Role> = if roles.is_empty() { vec![Role::Api, Role::Sync, Role::Worker] } else { roles.to_vec() };
        if roles == [Role::Sync] {
            anyhow::bail!("the sync role is not part of this build yet; run `athena serve` or `--role api|worker`");
        }
        config.ensure_dev_secret().context("signing secret")?;
        backends::ensure_dirs(&config)?;
        let config = Arc::new(config);
        let store = backends::open_store(&config).await?;
        store.migrate().await.context("database migrations")?;
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
        let app = App::new(store.clone(), blobs.clone(), config.clone(), mailer, clock).map_err(|e| anyhow::anyhow!("{e}"))?;
        let removed = app.clear_spool().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if removed > 0 {
            tracing::info!(removed, "removed partial uploads left by a previous process");
        }

        let api = if let Some(listener) = listener {
            let health: Vec<Arc<dyn HealthCheck>> = vec![
                Arc::new(athena_http::health::DatabaseHealth(store.clone())),
                Arc::new(athena_http::health::StorageHealth(blobs.clone())),
            ];
            let state = ApiState { app: app.clone(), signer, metrics: athena_http::metrics_handle(), health: Arc::new(health) };
            Some((listener, athena_http::router(state)))
        } else {
            None
        };
        Ok(Self { app, roles, api })
    }

    /// The bound API address (with the real port when 0 was asked for).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Runs until `shutdown` resolves; in-flight requests finish, then the database pool closes.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some((listener, router)) = self.api {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, role = "api", "listening");
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await
                    .context("API server")
            });
        }
        if self.roles.contains(&Role::Worker) {
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
        }
        if self.roles.contains(&Role::Sync) {
            tracing::warn!("the sync role is not part of this build yet");
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
