//! The engines the search benchmark compares, behind one small query interface, and the indexing child process.
//!
//! - **athena**: `athena_search::TantivyIndex`, fed by `athena_search::index_book_text` from the worker's text
//!   format (`text/{sha}.jsonl`), queried through `SearchIndex::search` with the user's `allowed_content`.
//! - **fts5**: the baseline, SQLite FTS5 with its `trigram` tokenizer (through sqlx's bundled SQLite), one row per
//!   section (`content_key UNINDEXED, location UNINDEXED, text`), queried with `MATCH`, the same content-key filter
//!   (`content_key IN (SELECT value FROM json_each(?))`), `ORDER BY rank` and a `snippet()` per hit.
//!
//! - **postgres** (when PostgreSQL is reachable): `athena_search_postgres::PgSearchIndex` in a fresh database
//!   migrated by `athena-store-postgres`, fed and queried exactly like **athena**.
//!
//! Indexing runs in a child process (this binary re-executed with `ATHENA_BENCH_SEARCH_CHILD`), so its peak
//! resident memory (VmHWM) is that of indexing alone, not of the benchmark around it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::Context;
use athena_search::{Query, SearchIndex, TantivyIndex};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};

use crate::server::Memory;

/// Hits fetched per query, by every engine.
pub const LIMIT: usize = 10;
/// The environment variable that turns this binary into an indexing child: `athena`, `postgres`, `fts5` or `read`.
pub const CHILD_ENV: &str = "ATHENA_BENCH_SEARCH_CHILD";
const TEXT_ENV: &str = "ATHENA_BENCH_SEARCH_TEXT";
const OUT_ENV: &str = "ATHENA_BENCH_SEARCH_OUT";

/// One query as each engine is asked it: Athena's syntax (`"…"` for phrases) and an FTS5 MATCH expression.
#[derive(Clone, Debug)]
pub struct BenchQuery {
    pub athena: String,
    pub fts5: String,
}

impl BenchQuery {
    /// An exact phrase.
    pub fn phrase(p: &str) -> Self {
        let p = p.replace('"', " ");
        Self { athena: format!("\"{p}\""), fts5: format!("\"{p}\"") }
    }

    /// Words that must all appear: unquoted for Athena, each word a quoted FTS5 string, implicitly ANDed.
    pub fn words(w: &str) -> Self {
        let w = w.replace('"', " ");
        Self { athena: w.clone(), fts5: w.split_whitespace().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" ") }
    }
}

/// What the benchmark needs from an engine: the content keys of the top `LIMIT` hits within a scope.
pub trait BenchEngine: Send + Sync {
    fn name(&self) -> &'static str;
    fn search(&self, q: &BenchQuery, scope: &Scope) -> anyhow::Result<Vec<String>>;
}

/// The content keys a user may see, in the form each engine takes them.
pub struct Scope {
    pub keys: Vec<String>,
    json: String,
}

impl Scope {
    pub fn new(keys: Vec<String>) -> Self {
        let json = serde_json::to_string(&keys).unwrap_or_default();
        Self { keys, json }
    }
}

/// An Athena engine through the `SearchIndex` trait: `athena` (tantivy) or `postgres` (`PgSearchIndex`).
pub struct Athena {
    pub name: &'static str,
    pub index: Box<dyn SearchIndex>,
}

impl BenchEngine for Athena {
    fn name(&self) -> &'static str {
        self.name
    }

    fn search(&self, q: &BenchQuery, scope: &Scope) -> anyhow::Result<Vec<String>> {
        let query = Query {
            text: q.athena.clone(),
            allowed_content: scope.keys.clone(),
            user_id: "bench-user".into(),
            limit: LIMIT,
            ..Default::default()
        };
        let page = self.index.search(&query)?;
        Ok(page.items.into_iter().filter_map(|h| h.content_key).collect())
    }
}

pub struct Fts5 {
    pool: sqlx::SqlitePool,
    rt: tokio::runtime::Handle,
}

const FTS_QUERY: &str = "SELECT content_key, snippet(fts, 2, '<mark>', '</mark>', '…', 32) FROM fts \
     WHERE fts MATCH ?1 AND content_key IN (SELECT value FROM json_each(?2)) ORDER BY rank LIMIT ?3";

impl Fts5 {
    /// Opens the database read-only with a pool of `connections` (one per querying thread).
    pub async fn open(path: &Path, connections: u32) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new().min_connections(connections).max_connections(connections).connect_with(opts).await?;
        Ok(Self { pool, rt: tokio::runtime::Handle::current() })
    }
}

impl BenchEngine for Fts5 {
    fn name(&self) -> &'static str {
        "fts5"
    }

    /// Called from plain threads: blocks on the benchmark's runtime, where sqlx hands the statement to the
    /// connection's own worker thread.
    fn search(&self, q: &BenchQuery, scope: &Scope) -> anyhow::Result<Vec<String>> {
        self.rt.block_on(async {
            let rows = sqlx::query(FTS_QUERY).bind(&q.fts5).bind(&scope.json).bind(LIMIT as i64).fetch_all(&self.pool).await?;
            rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
        })
    }
}

/// One line of the worker's stored text (`book.extract`); only what indexing needs.
#[derive(serde::Deserialize)]
struct Line {
    location: Option<String>,
    text: String,
}

/// The extracted books: (content key, path of its `.jsonl`), sorted.
pub fn text_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    out.sort();
    Ok(out)
}

/// Starts this binary as an indexing child for `engine`, waits for it and returns its JSON report. `out` is the
/// index folder or database file, or for `postgres` the database URL.
pub fn spawn_child(engine: &str, text: &Path, out: &std::ffi::OsStr) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new(exe)
        .env(CHILD_ENV, engine)
        .env(TEXT_ENV, text)
        .env(OUT_ENV, out)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("indexing child")?;
    anyhow::ensure!(output.status.success(), "indexing child {engine} failed: {}", output.status);
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The child's entry point: index every text file into `OUT` and print one JSON object on stdout.
pub fn child_main(engine: &str) -> anyhow::Result<()> {
    let text = PathBuf::from(std::env::var(TEXT_ENV)?);
    let out = PathBuf::from(std::env::var(OUT_ENV)?);
    let files = text_files(&text)?;
    let pid = std::process::id();
    let before = Memory::of(pid)?;
    let t = Instant::now();
    let sections = match engine {
        "athena" => index_athena(&files, &TantivyIndex::open(&out)?)?,
        "postgres" => {
            let url = out.to_str().context("database url")?;
            index_athena(&files, &athena_search_postgres::PgSearchIndex::connect(url, Default::default())?)?
        }
        "fts5" => tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(index_fts5(&files, &out))?,
        "read" => read_only(&files)?,
        other => anyhow::bail!("unknown engine {other}"),
    };
    let seconds = t.elapsed().as_secs_f64();
    let after = Memory::of(pid)?;
    let report = serde_json::json!({ "engine": engine, "books": files.len(), "sections": sections, "seconds": seconds,
        "hwm_before_kib": before.hwm_kib, "hwm_kib": after.hwm_kib, "rss_after_kib": after.rss_kib });
    println!("{report}");
    Ok(())
}

/// The floor: read and parse every line, index nothing.
fn read_only(files: &[(String, PathBuf)]) -> anyhow::Result<u64> {
    let mut sections = 0u64;
    for (_, path) in files {
        for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
            let line: Line = serde_json::from_str(&line?)?;
            sections += u64::from(!line.text.is_empty() && line.location.is_some());
        }
    }
    Ok(sections)
}

/// Athena: what the worker's index step does per book (`index_book_text`), one commit at the end.
fn index_athena(files: &[(String, PathBuf)], index: &dyn SearchIndex) -> anyhow::Result<u64> {
    let mut sections = 0;
    for (key, path) in files {
        let stats = athena_search::index_book_text(index, key, None, std::io::BufReader::new(std::fs::File::open(path)?))?;
        sections += stats.sections;
    }
    index.commit()?;
    index.mark_ready()?;
    Ok(sections)
}

/// The baseline: one FTS5 trigram table, every section inserted in one transaction.
async fn index_fts5(files: &[(String, PathBuf)], out: &Path) -> anyhow::Result<u64> {
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(out)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await?;
    sqlx::query("CREATE VIRTUAL TABLE fts USING fts5(content_key UNINDEXED, location UNINDEXED, text, tokenize='trigram')")
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin().await?;
    let mut sections = 0;
    for (key, path) in files {
        for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&line)?;
            if line.text.trim().is_empty() {
                continue;
            }
            sqlx::query("INSERT INTO fts (content_key, location, text) VALUES (?1, ?2, ?3)")
                .bind(key)
                .bind(&line.location)
                .bind(&line.text)
                .execute(&mut *tx)
                .await?;
            sections += 1;
        }
    }
    tx.commit().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await?;
    conn.close().await?;
    Ok(sections)
}

/// Bytes on disk under `path` (a file or a folder, not following links).
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_dir() {
        std::fs::read_dir(path).map(|rd| rd.flatten().map(|e| disk_bytes(&e.path())).sum()).unwrap_or(0)
    } else {
        meta.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_for_each_engine() {
        let p = BenchQuery::phrase("Call me \"Ishmael\"");
        assert_eq!(p.athena, "\"Call me  Ishmael \"");
        assert_eq!(p.fts5, p.athena);
        let w = BenchQuery::words("white whale");
        assert_eq!(w.athena, "white whale");
        assert_eq!(w.fts5, "\"white\" \"whale\"");
    }
}
