//! PostgreSQL: `pg_dump` (plain SQL, gzipped) inside an exported snapshot, so the row digests in the
//! manifest describe exactly the dumped data; restores with `psql` into a temporary database, which
//! is checked and then renamed into place.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor, Row};

use crate::error::{BackupError, Result};
use crate::manifest::{gzip_to_file, FileEntry, TableDigest, TableDigests};

/// A database URL split into what the tools need: the URL without its password (it would show in
/// `ps`), the password for `PGPASSWORD`, and the database name.
#[derive(Clone)]
pub struct PgTarget {
    url: url::Url,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget").field("database", &self.database()).finish_non_exhaustive()
    }
}

impl PgTarget {
    pub fn parse(url: &str) -> Result<Self> {
        let url = url::Url::parse(url).map_err(|e| BackupError::Database(format!("DATABASE_URL is not a URL: {e}")))?;
        let t = Self { url };
        if t.database().is_empty() {
            return Err(BackupError::Database("DATABASE_URL names no database".into()));
        }
        Ok(t)
    }

    pub fn database(&self) -> String {
        self.url.path().trim_start_matches('/').to_string()
    }

    /// The same server, another database.
    pub fn with_database(&self, db: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{db}"));
        Self { url }
    }

    pub fn url(&self) -> String {
        self.url.to_string()
    }

    fn tool_url(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        url.to_string()
    }

    fn password(&self) -> Option<String> {
        self.url.password().map(|p| url::form_urlencoded::parse(format!("p={p}").as_bytes()).map(|(_, v)| v.to_string()).collect())
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        if let Some(p) = self.password() {
            c.env("PGPASSWORD", p);
        }
        c
    }

    /// A maintenance connection to the same server (the target database may not exist).
    async fn admin(&self) -> Result<PgConnection> {
        let mut last = None;
        for db in ["postgres", "template1"] {
            match PgConnection::connect(&self.with_database(db).url()).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(BackupError::Database(format!(
            "connecting to the server's maintenance database: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The seed's file name: `athena_YYYYMMDD_HHMM.sql.gz`.
pub fn dump_file_name(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("athena_{}.sql.gz", at.format("%Y%m%d_%H%M"))
}

/// Dumps the database into `dir/file_name`, with digests and migration version from the same snapshot.
pub async fn dump(target: &PgTarget, dir: &Path, file_name: &str) -> Result<(FileEntry, TableDigests, i64)> {
    let mut conn = PgConnection::connect(&target.url()).await?;
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut conn).await?;
    let out = dir.join(file_name);
    let mut cmd = target.command("pg_dump");
    cmd.args(["--format=plain", "--no-owner", "--no-privileges", "--quote-all-identifiers"])
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("--dbname={}", target.tool_url()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let dumping = tokio::task::spawn_blocking(move || -> Result<FileEntry> {
        let mut child = cmd.spawn().map_err(|e| BackupError::Tool(format!("pg_dump could not start (is it installed?): {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let written = gzip_to_file(std::io::BufReader::new(stdout), &out);
        let output = child.wait_with_output().map_err(|e| BackupError::Tool(format!("pg_dump: {e}")))?;
        if !output.status.success() {
            return Err(BackupError::Tool(format!("pg_dump failed: {}", String::from_utf8_lossy(&output.stderr).trim())));
        }
        written
    });
    // The digests read the same exported snapshot while pg_dump runs.
    let digests = async {
        let tables = digest(&mut conn).await?;
        let version = migration_version(&mut conn).await?;
        Ok::<_, BackupError>((tables, version))
    }
    .await;
    let entry = dumping.await?;
    let _ = conn.execute("COMMIT").await;
    let _ = conn.close().await;
    let (tables, version) = digests?;
    Ok((entry?, tables, version))
}

/// Per table of the current schema: row count and a hash over its rows as text, sorted bytewise.
pub async fn digest(conn: &mut PgConnection) -> Result<TableDigests> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = TableDigests::new();
    for table in tables {
        let sql = format!("SELECT t::text AS r FROM {} t ORDER BY t::text COLLATE \"C\"", quote_ident(&table));
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        {
            let mut rows = sqlx::query(&sql).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                let text: String = row.try_get(0)?;
                hasher.update(text.as_bytes());
                hasher.update(b"\n");
                count += 1;
            }
        }
        out.insert(table, TableDigest { rows: count, sha256: hex::encode(hasher.finalize()) });
    }
    Ok(out)
}

async fn migration_version(conn: &mut PgConnection) -> Result<i64> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !exists {
        return Ok(0);
    }
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::bigint FROM _sqlx_migrations WHERE success").fetch_one(&mut *conn).await?)
}

/// Digests and migration version of a database (used after a trial restore).
pub async fn digest_database(target: &PgTarget) -> Result<(TableDigests, i64)> {
    let mut conn = PgConnection::connect(&target.url()).await?;
    let tables = digest(&mut conn).await?;
    let version = migration_version(&mut conn).await?;
    let _ = conn.close().await;
    Ok((tables, version))
}

/// True when the database exists and holds users or books (migrations alone seed a few rows).
pub async fn has_data(target: &PgTarget) -> Result<bool> {
    let mut admin = target.admin().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(target.database())
        .fetch_one(&mut admin)
        .await?;
    let _ = admin.close().await;
    if !exists {
        return Ok(false);
    }
    let (tables, _) = digest_database(target).await?;
    Ok(crate::USER_TABLES.iter().any(|t| tables.get(*t).is_some_and(|d| d.rows > 0)))
}

/// Creates an empty database `name` and loads the gzipped dump into it with `psql` in one transaction.
pub async fn restore_into(target: &PgTarget, name: &str, dump: &Path) -> Result<PgTarget> {
    let mut admin = target.admin().await?;
    admin.execute(format!("CREATE DATABASE {}", quote_ident(name)).as_str()).await?;
    let _ = admin.close().await;
    let temp = target.with_database(name);
    let mut cmd = temp.command("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .arg(format!("--dbname={}", temp.tool_url()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let dump = dump.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut child = cmd.spawn().map_err(|e| BackupError::Tool(format!("psql could not start (is it installed?): {e}")))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let fed = (|| -> std::io::Result<()> {
            let file = std::fs::File::open(&dump)?;
            let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
            std::io::copy(&mut gz, &mut stdin)?;
            stdin.flush()
        })();
        drop(stdin);
        let output = child.wait_with_output().map_err(|e| BackupError::Tool(format!("psql: {e}")))?;
        if !output.status.success() {
            return Err(BackupError::Tool(format!("psql failed loading the dump: {}", String::from_utf8_lossy(&output.stderr).trim())));
        }
        fed.map_err(|e| BackupError::Tool(format!("feeding the dump to psql: {e}")))
    })
    .await?;
    if let Err(e) = loaded {
        let _ = drop_database(target, name).await;
        return Err(e);
    }
    Ok(temp)
}

pub async fn drop_database(target: &PgTarget, name: &str) -> Result<()> {
    let mut admin = target.admin().await?;
    admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)).as_str()).await?;
    let _ = admin.close().await;
    Ok(())
}

/// Puts the restored database `temp` in place of the target: the old one (if any) is renamed
/// aside first and dropped only after the new one holds the name.
pub async fn swap_in(target: &PgTarget, temp: &str) -> Result<()> {
    let db = target.database();
    let aside =
        format!("{}_old_{}", db.chars().take(40).collect::<String>(), uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("x"));
    let mut admin = target.admin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)").bind(&db).fetch_one(&mut admin).await?;
    if exists {
        // A rename needs the database idle; the server should be stopped, leftovers are disconnected.
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&db)
            .execute(&mut admin)
            .await?;
        admin.execute(format!("ALTER DATABASE {} RENAME TO {}", quote_ident(&db), quote_ident(&aside)).as_str()).await?;
    }
    if let Err(e) = admin.execute(format!("ALTER DATABASE {} RENAME TO {}", quote_ident(temp), quote_ident(&db)).as_str()).await {
        if exists {
            let _ = admin.execute(format!("ALTER DATABASE {} RENAME TO {}", quote_ident(&aside), quote_ident(&db)).as_str()).await;
        }
        return Err(e.into());
    }
    if exists {
        admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&aside)).as_str()).await?;
    }
    let _ = admin.close().await;
    Ok(())
}

/// The same database check as `athena doctor`: the store connects, answers, and migrates.
pub async fn doctor_check(target: &PgTarget) -> Result<()> {
    let store = athena_store_postgres::PgStore::connect(&target.url()).await?;
    let result = async {
        athena_store::Store::ping(&store).await?;
        athena_store::Store::migrate(&store).await.map_err(|e| BackupError::Database(format!("migrations: {e}")))
    }
    .await;
    athena_store::Store::close(&store).await;
    result
}
