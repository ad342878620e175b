//! `TestApp`: the real application on port 0 with its own data dirs, on either backend set —
//! embedded (SQLite + local folder) or PostgreSQL (a fresh database per test) + SeaweedFS S3 —
//! with typed helpers for the requests the scenarios make.

#![allow(dead_code, unused_macros)]

/// Runs each named scenario `async fn name(backend: Backend)` twice: on the embedded backends
/// (SQLite + local folder) and on PostgreSQL + SeaweedFS S3.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Embedded).await } )*
        }
        mod postgres_s3 {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::PostgresS3).await } )*
        }
    };
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use athena_config::Config;
use athena_server::Application;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Embedded,
    PostgresS3,
}

pub struct TestApp {
    pub base: String,
    /// The sync port's base URL.
    pub sync_base: String,
    pub metrics_base: String,
    pub sync: Option<athena_sync::SyncService>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub app: athena_app::App,
    pub clock: Arc<TestClock>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg_database: Option<String>,
    env: BTreeMap<String, String>,
}

struct Running {
    base: String,
    sync_base: String,
    metrics_base: String,
    sync: Option<athena_sync::SyncService>,
    app: athena_app::App,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Builds and starts the application from an environment (its data dir and database included).
async fn launch(env: &BTreeMap<String, String>, clock: Arc<TestClock>) -> Running {
    let config = Config::from_sources(None, "test", |k| env.get(k).cloned()).expect("test config");
    if std::env::var("ATHENA_TEST_LOG").is_ok() {
        athena_server::init_tracing(&config);
    }
    // The worker role runs only where a test asks for it (`ATHENA_TEST_WORKER=1`): elsewhere its
    // jobs would change books under the test's feet; tests drive the queue with `Worker::drain`.
    let roles: &[athena_server::Role] = if env.get("ATHENA_TEST_WORKER").map(String::as_str) == Some("1") {
        &[]
    } else {
        &[athena_server::Role::Api, athena_server::Role::Sync]
    };
    let application = Application::build_with_clock(config, roles, clock).await.expect("application builds");
    let addr = application.api_addr().unwrap();
    let sync_base = application.sync_addrs().map(|(s, _)| format!("http://{s}")).unwrap_or_default();
    let metrics_base = application.sync_addrs().map(|(_, m)| format!("http://{m}")).unwrap_or_default();
    let sync = application.sync_service();
    let app = application.app().clone();
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(application.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running { base: format!("http://{addr}"), sync_base, metrics_base, sync, app, shutdown, task }
}

/// The OCR models fetched by `scripts/fetch-models.sh` (the test command does it).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var("ATHENA_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    assert!(dir.join("ppocr/det.onnx").exists(), "OCR models missing in {}: run scripts/fetch-models.sh", dir.display());
    dir
}

pub fn corpus() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let from_env = std::env::var_os("ATHENA_CORPUS").map(PathBuf::from);
    for candidate in from_env.into_iter().chain([here.join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")]) {
        if candidate.join("truth.json").exists() {
            return candidate;
        }
    }
    panic!("the shared corpus was not found next to the repository");
}

pub fn pg_admin_url() -> String {
    std::env::var("ATHENA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// SeaweedFS for the S3 scenarios: the one CI started (ATHENA_TEST_S3_*), or one started here once
/// per test process with `scripts/seaweedfs.sh`.
pub fn s3_env() -> BTreeMap<String, String> {
    static ENV: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = BTreeMap::new();
        if let Ok(endpoint) = std::env::var("ATHENA_TEST_S3_ENDPOINT") {
            env.insert("MINIO_ENDPOINT".into(), endpoint);
            env.insert("MINIO_ACCESS_KEY".into(), std::env::var("ATHENA_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "athena-test".into()));
            env.insert(
                "MINIO_SECRET_KEY".into(),
                std::env::var("ATHENA_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "athena-test-secret".into()),
            );
            env.insert("MINIO_BUCKET".into(), std::env::var("ATHENA_TEST_S3_BUCKET").unwrap_or_else(|_| "athena-test".into()));
            return env;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/seaweedfs.sh");
        let dir = std::env::temp_dir().join(format!("athena-server-tests-weed-{}", std::process::id()));
        let port = 20000 + (std::process::id() % 20000) as u16;
        let out = std::process::Command::new("bash")
            .env("SEAWEEDFS_OWNER_PID", std::process::id().to_string())
            .arg(&script)
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .expect("running scripts/seaweedfs.sh");
        assert!(out.status.success(), "seaweedfs did not start: {}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once('=') {
                let k = k.trim();
                let mapped = match k {
                    "S3_ENDPOINT" => "MINIO_ENDPOINT",
                    "S3_ACCESS_KEY" => "MINIO_ACCESS_KEY",
                    "S3_SECRET_KEY" => "MINIO_SECRET_KEY",
                    "S3_BUCKET" => "MINIO_BUCKET",
                    _ => continue,
                };
                env.insert(mapped.into(), v.trim().into());
            }
        }
        assert!(env.contains_key("MINIO_ENDPOINT"), "seaweedfs.sh printed no S3_ENDPOINT");
        env.entry("MINIO_BUCKET".into()).or_insert_with(|| "athena".into());
        env
    })
    .clone()
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("ATHENA_DATA_DIR".into(), dir.path().join("data").display().to_string());
        env.insert("ATHENA_BACKUP_DIR".into(), dir.path().join("backups").display().to_string());
        env.insert("ATHENA_API_PORT".into(), "0".into());
        env.insert("ATHENA_SYNC_PORT".into(), "0".into());
        env.insert("ATHENA_METRICS_PORT".into(), "0".into());
        env.insert("ATHENA_LOG".into(), "warn".into());
        env.insert("ATHENA_MODEL_DIR".into(), model_dir().display().to_string());
        // Embedding whole corpus books takes minutes on two cores: only the semantic tests turn it on.
        env.insert("ATHENA_SEMANTIC".into(), "off".into());
        let mut pg_database = None;
        let shares_database = extra.iter().any(|(k, _)| *k == "DATABASE_URL");
        if let (Backend::PostgresS3, false) = (backend, shares_database) {
            let name = format!("athena_t_{}", uuid_like());
            let admin = pg_admin_url();
            let pool = sqlx_admin(&admin).await;
            sqlx_exec(&pool, &format!("CREATE DATABASE {name}")).await;
            let url = replace_db(&admin, &name);
            env.insert("DATABASE_URL".into(), url);
            pg_database = Some(name);
        }
        if let Backend::PostgresS3 = backend {
            env.extend(s3_env());
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        if let Ok(level) = std::env::var("ATHENA_TEST_LOG") {
            env.insert("ATHENA_LOG".into(), level);
            env.insert("ATHENA_LOG_FORMAT".into(), "pretty".into());
        }
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let clock = Arc::new(TestClock::default());
        let running = launch(&env, clock.clone()).await;
        Self {
            base: running.base,
            sync_base: running.sync_base,
            metrics_base: running.metrics_base,
            sync: running.sync,
            client,
            dir,
            backend,
            app: running.app,
            clock,
            shutdown: Some(running.shutdown),
            task: Some(running.task),
            pg_database,
            env,
        }
    }

    /// Stops the server gracefully and starts it again on the same data, with `overrides` applied
    /// to its environment (new ports are picked).
    pub async fn restart(&mut self, overrides: &[(&str, &str)]) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        for (k, v) in overrides {
            self.env.insert(k.to_string(), v.to_string());
        }
        let running = launch(&self.env, self.clock.clone()).await;
        self.base = running.base;
        self.sync_base = running.sync_base;
        self.metrics_base = running.metrics_base;
        self.sync = running.sync;
        self.app = running.app;
        self.shutdown = Some(running.shutdown);
        self.task = Some(running.task);
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Some(db) = self.pg_database.take() {
            let pool = sqlx_admin(&pg_admin_url()).await;
            sqlx_exec(&pool, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
        }
    }

    /// The `DATABASE_URL` of this app's own PostgreSQL database (to start a second process on it).
    pub fn database_url(&self) -> Option<String> {
        self.pg_database.as_ref().map(|db| replace_db(&pg_admin_url(), db))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Logs in through the email-code flow (dev mode returns the code) and returns a user session.
    pub async fn login(&self, email: &str) -> User {
        let r = self.client.post(self.url("/api/v1/auth/email/send-code")).json(&json!({ "email": email })).send().await.unwrap();
        assert_eq!(r.status(), 200, "send-code");
        let body: Value = r.json().await.unwrap();
        let code = body["data"]["dev_code"].as_str().expect("dev_code in development mode").to_string();
        let r = self
            .client
            .post(self.url("/api/v1/auth/email/verify-code"))
            .json(&json!({ "email": email, "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "verify-code");
        let body: Value = r.json().await.unwrap();
        User {
            token: body["data"]["tokens"]["access_token"].as_str().unwrap().to_string(),
            refresh: body["data"]["tokens"]["refresh_token"].as_str().unwrap().to_string(),
            id: body["data"]["user"]["id"].as_str().unwrap().to_string(),
            session: body["data"]["session"]["id"].as_str().unwrap().to_string(),
        }
    }

    pub fn get(&self, user: &User, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&user.token)
    }
    pub fn post(&self, user: &User, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&user.token)
    }
    pub fn patch(&self, user: &User, path: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).bearer_auth(&user.token)
    }
    pub fn delete(&self, user: &User, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(&user.token)
    }

    /// One-step multipart upload of a file; returns (status, body).
    pub async fn upload(&self, user: &User, path: &Path) -> (u16, Value) {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        self.upload_bytes(user, &name, bytes).await
    }

    pub async fn upload_bytes(&self, user: &User, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = self.post(user, "/api/v1/books").multipart(form).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

pub struct User {
    pub token: String,
    pub refresh: String,
    pub id: String,
    pub session: String,
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000, n)
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{db}")
}

async fn sqlx_admin(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await.expect("PostgreSQL for tests (ATHENA_TEST_DATABASE_URL)")
}

async fn sqlx_exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Real time plus an offset the test can advance (rate-limit windows, expiry).
#[derive(Default)]
pub struct TestClock {
    offset: Mutex<chrono::Duration>,
}

impl TestClock {
    pub fn advance(&self, by: chrono::Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl athena_app::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + *self.offset.lock().unwrap()
    }
}
