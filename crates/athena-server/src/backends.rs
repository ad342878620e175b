//! Chooses and opens the backends the configuration names.

use std::sync::Arc;

use anyhow::Context;
use athena_blob::{BlobStore, FsBlobStore, LocalSigner, S3BlobStore, S3Settings};
use athena_config::Config;
use athena_store::sync::SyncStore;
use athena_store::Store;

/// The hot and cold data dirs of seed §1.3 (and the backup dir), created if missing.
pub fn ensure_dirs(config: &Config) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dirs = [
        config.hot_dir.clone(),
        config.hot_dir.join("tmp").join("uploads"),
        config.hot_dir.join("index"),
        config.hot_dir.join("cache"),
        config.cold_dir.clone(),
        config.cold_dir.join("objects"),
        config.cold_dir.join("logs"),
        config.backup_dir.clone(),
    ];
    for d in &dirs {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(dirs.to_vec())
}

pub fn sqlite_path(config: &Config) -> std::path::PathBuf {
    config.hot_dir.join("athena.db")
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_stores(config).await?.0)
}

/// The database as the main store and as the sync role's store (one pool, two interfaces).
pub async fn open_stores(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn SyncStore>)> {
    match &config.database_url {
        Some(url) if url.expose().starts_with("postgres") => {
            let store = athena_store_postgres::PgStore::connect(url.expose()).await.context("connecting to PostgreSQL (DATABASE_URL)")?;
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
        Some(url) => {
            let path = url.expose().trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let store =
                athena_store_sqlite::SqliteStore::connect(std::path::Path::new(path)).await.context("opening SQLite (DATABASE_URL)")?;
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
        None => {
            std::fs::create_dir_all(&config.hot_dir)?;
            let store =
                athena_store_sqlite::SqliteStore::connect(&sqlite_path(config)).await.context("opening the embedded SQLite database")?;
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
    }
}

/// The sync rules: the configured file, or the ones built into the binary.
pub fn load_sync_rules(config: &Config) -> anyhow::Result<athena_sync_rules::SyncRules> {
    let (text, name) = match &config.sync_rules {
        Some(path) => {
            (std::fs::read_to_string(path).with_context(|| format!("reading sync rules {}", path.display()))?, path.display().to_string())
        }
        None => (BUILTIN_SYNC_RULES.to_string(), "built-in deploy/sync_rules.yaml".to_string()),
    };
    athena_sync_rules::SyncRules::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

const BUILTIN_SYNC_RULES: &str = include_str!("../../../deploy/sync_rules.yaml");

/// The object store, and the signer for upload URLs that point at Athena itself (local storage only).
pub async fn open_blobs(config: &Config, public_base: &str) -> anyhow::Result<(Arc<dyn BlobStore>, Option<Arc<LocalSigner>>)> {
    match &config.s3 {
        Some(s3) => {
            let mut settings = S3Settings::new(&s3.endpoint, &s3.bucket, &s3.access_key, s3.secret_key.expose());
            settings.public_endpoint = s3.public_endpoint.clone();
            settings.region = s3.region.clone();
            let store = S3BlobStore::new(settings).context("S3 settings (MINIO_*)")?;
            store.ensure_bucket().await.context("S3 bucket (MINIO_BUCKET)")?;
            Ok((Arc::new(store), None))
        }
        None => {
            let secret = config.jwt_secret.as_ref().context("signing secret")?;
            // Upload URLs are signed with a key derived from the signing secret, not the secret itself.
            let key = {
                use sha2::Digest;
                sha2::Sha256::digest([b"athena-upload-url:".as_slice(), secret.expose().as_bytes()].concat()).to_vec()
            };
            let signer = LocalSigner::new(key, public_base.trim_end_matches('/'));
            let store = FsBlobStore::new(config.cold_dir.join("objects"), signer.clone()).context("opening the local object store")?;
            Ok((Arc::new(store), Some(Arc::new(signer))))
        }
    }
}

/// The use cases over the configured backends, for CLI commands that need them without serving.
pub async fn open_app(config: Config) -> anyhow::Result<athena_app::App> {
    let config = Arc::new(config);
    let store = open_store(&config).await?;
    store.migrate().await.context("database migrations")?;
    let (blobs, _) = open_blobs(&config, "http://127.0.0.1").await?;
    let app = athena_app::App::new(store, blobs, config.clone(), Arc::new(athena_app::LogMailer), Arc::new(athena_app::SystemClock))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match crate::semantic::embedder(&config) {
        Some(embedder) => app.with_semantic(embedder),
        None => app,
    })
}
