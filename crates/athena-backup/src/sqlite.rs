//! SQLite: a consistent online snapshot with `VACUUM INTO` (a read transaction, so the server keeps
//! writing), row digests of the snapshot, and trial restores into a file next to the live one.

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::error::{BackupError, Result};
use crate::manifest::{gzip_to_file, FileEntry, TableDigest, TableDigests};

pub const DUMP_FILE: &str = "athena.db.gz";

async fn open(path: &Path, read_only: bool) -> Result<SqlitePool> {
    let options =
        SqliteConnectOptions::new().filename(path).create_if_missing(false).read_only(read_only).busy_timeout(Duration::from_secs(30));
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
}

/// Snapshots the live database into `dir/athena.db.gz`; returns its entry, digests and migration version.
/// `scratch` is a folder for the uncompressed snapshot (removed afterwards).
pub async fn snapshot(live: &Path, dir: &Path, scratch: &Path) -> Result<(FileEntry, TableDigests, i64)> {
    if !live.exists() {
        return Err(BackupError::Database(format!("no SQLite database at {}", live.display())));
    }
    let raw = scratch.join("athena.db");
    {
        let pool = open(live, false).await?;
        // VACUUM INTO reads one consistent snapshot of the database, WAL included, while writers continue.
        sqlx::query("VACUUM INTO ?")
            .bind(raw.to_string_lossy().to_string())
            .execute(&pool)
            .await
            .map_err(|e| BackupError::Database(format!("VACUUM INTO {}: {e}", raw.display())))?;
        pool.close().await;
    }
    let (tables, version) = digest_file(&raw).await?;
    let out = dir.join(DUMP_FILE);
    let raw2 = raw.clone();
    let entry = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&raw2).map_err(BackupError::io("reading", &raw2))?;
        gzip_to_file(std::io::BufReader::new(f), &out)
    })
    .await??;
    let _ = std::fs::remove_file(&raw);
    Ok((entry, tables, version))
}

/// Row digests and migration version of a database file (opened read-only).
pub async fn digest_file(path: &Path) -> Result<(TableDigests, i64)> {
    let pool = open(path, true).await?;
    let result = async {
        let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await?;
        if check != "ok" {
            return Err(BackupError::Database(format!("integrity check of {}: {check}", path.display())));
        }
        let tables = digest(&pool).await?;
        let version = migration_version(&pool).await?;
        Ok((tables, version))
    }
    .await;
    pool.close().await;
    result
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Per table: row count and a hash over every row rendered with `quote()` (exact for every type), sorted.
pub async fn digest(pool: &SqlitePool) -> Result<TableDigests> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .fetch_all(pool)
            .await?;
    let mut out = TableDigests::new();
    for table in tables {
        let cols: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid").bind(&table).fetch_all(pool).await?;
        if cols.is_empty() {
            continue;
        }
        let expr = cols.iter().map(|c| format!("quote({})", quote_ident(c))).collect::<Vec<_>>().join(" || '|' || ");
        let sql = format!("SELECT {expr} AS r FROM {} ORDER BY r", quote_ident(&table));
        let mut rows = sqlx::query(&sql).fetch(pool);
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        while let Some(row) = rows.try_next().await? {
            let text: String = row.try_get(0)?;
            hasher.update(text.as_bytes());
            hasher.update(b"\n");
            count += 1;
        }
        out.insert(table, TableDigest { rows: count, sha256: hex::encode(hasher.finalize()) });
    }
    Ok(out)
}

async fn migration_version(pool: &SqlitePool) -> Result<i64> {
    let exists: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'").fetch_one(pool).await?;
    if exists == 0 {
        return Ok(0);
    }
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success").fetch_one(pool).await?)
}

/// True when the database file exists and holds users or books (migrations alone seed a few rows).
pub async fn has_data(path: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let pool = open(path, true).await?;
    let tables = digest(&pool).await;
    pool.close().await;
    let tables = tables?;
    Ok(crate::USER_TABLES.iter().any(|t| tables.get(*t).is_some_and(|d| d.rows > 0)))
}

/// The same database check as `athena doctor`: the store opens, answers, and migrates.
pub async fn doctor_check(path: &Path) -> Result<()> {
    let store = athena_store_sqlite::SqliteStore::connect(path).await?;
    let result = async {
        athena_store::Store::ping(&store).await?;
        athena_store::Store::migrate(&store).await.map_err(|e| BackupError::Database(format!("migrations: {e}")))
    }
    .await;
    athena_store::Store::close(&store).await;
    result
}

/// The live database file: `DATABASE_URL=sqlite:…` or `HOT_DIR/athena.db`.
pub fn live_path(config: &athena_config::Config) -> std::path::PathBuf {
    match &config.database_url {
        Some(url) if !url.expose().starts_with("postgres") => {
            std::path::PathBuf::from(url.expose().trim_start_matches("sqlite://").trim_start_matches("sqlite:"))
        }
        _ => config.hot_dir.join("athena.db"),
    }
}
