//! The table of settings: each has a key in `athena.toml` and one or more environment names
//! (the first is the documented one; later ones are the seed's aliases). Keeping every name in one
//! table is what lets `.env.example`, `config show` and the loader agree.

/// (toml key, environment names, is secret, help).
pub struct SettingSpec {
    pub key: &'static str,
    pub env: &'static [&'static str],
    pub secret: bool,
    pub help: &'static str,
}

macro_rules! s {
    ($key:literal, [$($env:literal),*], $secret:literal, $help:literal) => {
        SettingSpec { key: $key, env: &[$($env),*], secret: $secret, help: $help }
    };
}

pub const SETTINGS: &[SettingSpec] = &[
    s!("mode", ["ATHENA_MODE"], false, "development (default, zero-config) or production"),
    s!("bind", ["ATHENA_BIND"], false, "listen address (default 127.0.0.1)"),
    s!("api_port", ["ATHENA_API_PORT"], false, "REST API + web app port (48000; 0 = any free port)"),
    s!("sync_port", ["POWERSYNC_PORT", "ATHENA_SYNC_PORT"], false, "sync service port (48090)"),
    s!("metrics_port", ["ATHENA_METRICS_PORT"], false, "sync metrics port (49091)"),
    s!("public_url", ["ATHENA_PUBLIC_URL"], false, "base URL clients use to reach the API (for signed upload URLs)"),
    s!("data_dir", ["ATHENA_DATA_DIR"], false, "root of the data dirs (./data)"),
    s!("hot_dir", ["ATHENA_HOT_DIR"], false, "fast disk: database, index, caches (DATA_DIR/hot)"),
    s!("cold_dir", ["ATHENA_COLD_DIR"], false, "large disk: book files, covers, logs (DATA_DIR/cold)"),
    s!("backup_dir", ["ATHENA_BACKUP_DIR"], false, "backups, outside the data dir (./backups)"),
    s!("database_url", ["DATABASE_URL"], true, "postgres://… to use PostgreSQL; unset = embedded SQLite"),
    s!("postgres_host", ["POSTGRES_HOST"], false, "used to build DATABASE_URL when it is unset"),
    s!("postgres_port", ["POSTGRES_PORT"], false, "used to build DATABASE_URL when it is unset"),
    s!("postgres_user", ["POSTGRES_USER"], false, "used to build DATABASE_URL when it is unset"),
    s!("postgres_password", ["POSTGRES_PASSWORD"], true, "used to build DATABASE_URL when it is unset"),
    s!("postgres_db", ["POSTGRES_DB"], false, "used to build DATABASE_URL when it is unset"),
    s!("db_max_connections", ["ATHENA_DB_MAX_CONNECTIONS"], false, "database pool size (10)"),
    s!("minio_endpoint", ["MINIO_ENDPOINT"], false, "S3 endpoint URL; unset = local folder in the cold dir"),
    s!("minio_public_endpoint", ["MINIO_PUBLIC_ENDPOINT"], false, "S3 endpoint as clients reach it (signed URLs)"),
    s!("minio_bucket", ["MINIO_BUCKET"], false, "bucket name (athena)"),
    s!("minio_region", ["MINIO_REGION"], false, "S3 region (us-east-1)"),
    s!("minio_access_key", ["MINIO_ACCESS_KEY", "MINIO_ROOT_USER"], false, "S3 access key"),
    s!("minio_secret_key", ["MINIO_SECRET_KEY", "MINIO_ROOT_PASSWORD"], true, "S3 secret key"),
    s!("jwt_secret", ["POWERSYNC_JWT_SECRET", "ATHENA_JWT_SECRET"], true, "HS256 signing secret (≥ 32 bytes); generated in development"),
    s!(
        "sync_rules",
        ["ATHENA_SYNC_RULES", "POWERSYNC_SYNC_RULES"],
        false,
        "sync_rules.yaml path (default: the built-in deploy/sync_rules.yaml)"
    ),
    s!("powersync_upload_enabled", ["POWERSYNC_UPLOAD_ENABLED"], false, "accept client uploads through sync (true)"),
    s!("smtp_host", ["SMTP_HOST"], false, "SMTP server for login codes; required in production"),
    s!("smtp_port", ["SMTP_PORT"], false, "SMTP port (587)"),
    s!("smtp_user", ["SMTP_USER"], false, "SMTP user"),
    s!("smtp_password", ["SMTP_PASSWORD"], true, "SMTP password"),
    s!("smtp_from", ["SMTP_FROM"], false, "From address of login mails"),
    s!("smtp_tls", ["SMTP_TLS"], false, "starttls (default), tls or none"),
    s!("sentry_dsn", ["SENTRY_DSN"], true, "Sentry DSN for error reports (optional)"),
    s!("cors_origins", ["ATHENA_CORS_ORIGINS"], false, "comma-separated origins allowed cross-origin"),
    s!("web_dir", ["ATHENA_WEB_DIR"], false, "built web app served at / (web/dist; a placeholder page when missing)"),
    s!("global_dedup", ["ATHENA_GLOBAL_DEDUP"], false, "share stored content across users (true)"),
    s!("search_engine", ["ATHENA_SEARCH_ENGINE"], false, "auto (default: postgres on PostgreSQL, else tantivy), tantivy, or postgres"),
    s!("max_upload_bytes", ["ATHENA_MAX_UPLOAD_BYTES"], false, "largest accepted book file (500 MiB)"),
    s!("quota_books", ["ATHENA_QUOTA_BOOKS"], false, "books per user before read-only (50)"),
    s!("quota_bytes", ["ATHENA_QUOTA_BYTES"], false, "bytes per user before read-only (1 GiB)"),
    s!("upload_url_ttl_secs", ["ATHENA_UPLOAD_URL_TTL_SECS"], false, "life of a signed upload URL (3600)"),
    s!("pending_upload_ttl_hours", ["ATHENA_PENDING_UPLOAD_TTL_HOURS"], false, "uploads never completed are deleted after (24)"),
    s!("trash_retention_days", ["ATHENA_TRASH_RETENTION_DAYS"], false, "soft-deleted books are purged after (30)"),
    s!("access_token_ttl_secs", ["ATHENA_ACCESS_TOKEN_TTL_SECS"], false, "access token life (3600)"),
    s!("refresh_token_ttl_days", ["ATHENA_REFRESH_TOKEN_TTL_DAYS"], false, "refresh token life (30)"),
    s!("login_code_max_attempts", ["ATHENA_LOGIN_CODE_MAX_ATTEMPTS"], false, "wrong guesses that burn a code (5)"),
    s!("login_failures_per_hour", ["ATHENA_LOGIN_FAILURES_PER_HOUR"], false, "wrong codes per address per hour before 429 (20)"),
    s!("worker_cpu_concurrency", ["ATHENA_WORKER_CPU_CONCURRENCY"], false, "cpu_default jobs one worker runs at once (2)"),
    s!(
        "worker_ocr_concurrency",
        ["ATHENA_WORKER_OCR_CONCURRENCY"],
        false,
        "gpu_high (OCR) jobs one worker runs at once (1: one book at a time)"
    ),
    s!("worker_embed_concurrency", ["ATHENA_WORKER_EMBED_CONCURRENCY"], false, "gpu_low (embedding) jobs one worker runs at once (1)"),
    s!("worker_metrics_port", ["ATHENA_WORKER_METRICS_PORT"], false, "Prometheus port of a worker-only process (49092)"),
    s!("job_max_attempts", ["ATHENA_JOB_MAX_ATTEMPTS"], false, "tries before a job is dead-lettered (3)"),
    s!("job_lease_secs", ["ATHENA_JOB_LEASE_SECS"], false, "a running job's lease; a killed worker's job is retried after it (60)"),
    s!("job_timeout_conversion_secs", ["ATHENA_JOB_TIMEOUT_CONVERSION_SECS"], false, "time limit of a conversion (300)"),
    s!("job_timeout_ocr_secs", ["ATHENA_JOB_TIMEOUT_OCR_SECS"], false, "time limit of an OCR job (1800)"),
    s!("job_timeout_indexing_secs", ["ATHENA_JOB_TIMEOUT_INDEXING_SECS"], false, "time limit of text extraction and indexing (600)"),
    s!(
        "job_timeout_embedding_secs",
        ["ATHENA_JOB_TIMEOUT_EMBEDDING_SECS"],
        false,
        "time limit of embedding one book's text for semantic search (3600)"
    ),
    s!("job_timeout_covers_secs", ["ATHENA_JOB_TIMEOUT_COVERS_SECS"], false, "time limit of metadata and cover jobs (120)"),
    s!("convert_memory_mb", ["ATHENA_CONVERT_MEMORY_MB"], false, "address-space limit of a conversion subprocess, MiB (4096)"),
    s!("ocr_engine", ["ATHENA_OCR_ENGINE"], false, "ppocr (default), tesseract, or off"),
    s!("model_dir", ["ATHENA_MODEL_DIR"], false, "folder of model files fetched by scripts/fetch-models.sh (./models)"),
    s!("ort_dylib", ["ATHENA_ORT_DYLIB", "ORT_DYLIB_PATH"], false, "libonnxruntime.so (default MODEL_DIR/onnxruntime/libonnxruntime.so)"),
    s!("semantic", ["ATHENA_SEMANTIC"], false, "semantic search: auto (on when the embedding model file exists), on, or off"),
    s!("embed_model", ["ATHENA_EMBED_MODEL"], false, "embedding model file or folder (default MODEL_DIR/e5-small/e5-small-q4.bin)"),
    s!("ocr_dpi", ["ATHENA_OCR_DPI"], false, "resolution pages are rasterised at for OCR (300)"),
    s!("ocr_tiers", ["ATHENA_OCR_TIERS"], false, "page limits of the OCR unit tiers (600,1000,2000)"),
    s!("ocr_free_units", ["ATHENA_OCR_FREE_UNITS"], false, "free OCR units per user per month (3)"),
    s!("cover_font", ["ATHENA_COVER_FONT"], false, "font file for generated covers (default: a system CJK font)"),
    s!("watch_dir", ["ATHENA_WATCH_DIR"], false, "inbox folder whose files are imported (unset = off)"),
    s!("watch_user", ["ATHENA_WATCH_USER"], false, "email of the user watch-folder imports belong to"),
    s!(
        "backup_objects",
        ["ATHENA_BACKUP_OBJECTS"],
        false,
        "where backups copy objects: a folder, or s3://bucket/prefix (BACKUP_DIR/objects)"
    ),
    s!("backup_s3_endpoint", ["ATHENA_BACKUP_S3_ENDPOINT"], false, "S3 endpoint of an s3:// backup target (default: MINIO_ENDPOINT)"),
    s!("backup_s3_access_key", ["ATHENA_BACKUP_S3_ACCESS_KEY"], false, "S3 access key of the backup target (default: MINIO_ACCESS_KEY)"),
    s!("backup_s3_secret_key", ["ATHENA_BACKUP_S3_SECRET_KEY"], true, "S3 secret key of the backup target (default: MINIO_SECRET_KEY)"),
    s!("backup_offsite_dir", ["ATHENA_BACKUP_OFFSITE_DIR"], false, "folder backup sets are copied to after each backup (unset = none)"),
    s!("backup_keep_days", ["ATHENA_BACKUP_KEEP_DAYS"], false, "days backup sets are kept in the backup dir (7)"),
    s!("backup_offsite_keep_days", ["ATHENA_BACKUP_OFFSITE_KEEP_DAYS"], false, "days backup sets are kept offsite (30)"),
    s!("backup_at", ["ATHENA_BACKUP_AT"], false, "UTC time of the daily backup by the worker role, HH:MM (02:00; off = none)"),
    s!(
        "backup_sqlite_interval_minutes",
        ["ATHENA_BACKUP_SQLITE_INTERVAL_MINUTES"],
        false,
        "minutes between the worker's SQLite snapshots, the RPO on SQLite (10; 0 = off)"
    ),
    s!("log_format", ["ATHENA_LOG_FORMAT"], false, "json (default) or pretty"),
    s!("log_level", ["ATHENA_LOG", "RUST_LOG"], false, "tracing filter (info)"),
];

pub fn spec(key: &str) -> Option<&'static SettingSpec> {
    SETTINGS.iter().find(|s| s.key == key)
}
