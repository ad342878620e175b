//! The PostgreSQL search engine: [`PgSearchIndex`] implements `athena_search::SearchIndex` on
//! the tables of migration `0006_search.sql` (owned by `athena-store-postgres`), so every API
//! replica and worker on one database shares one index.
//!
//! Analysis stays in Rust (`athena_search::analysis`): documents are stored as `tsvector`s of the
//! very lexemes and positions the embedded engine indexes, split into overlapping chunks
//! (`lexemes`), and queries become quoted `tsquery`s; PostgreSQL never tokenises text itself.
//! Matching, visibility, filters, paging and snippets follow the trait's rules; the conformance
//! suite of `athena-search` runs against this engine in this crate's tests.
//!
//! Writes become visible on `commit`: upserts and deletes go into one open transaction (each
//! call in its own savepoint, so a failed call leaves the earlier ones pending), committed by
//! `commit` and rolled back when the index is dropped. Until then other sessions see the last
//! committed state and row locks wait for the commit.
//!
//! The trait is blocking. The engine owns a small tokio runtime on its own thread; each call
//! runs its SQL there and waits on a channel, so it works from plain threads, blocking tasks and
//! tests alike, never nesting runtimes. CPU work (analysis, snippets) runs on the caller's thread.
//!
//! This crate knows nothing of HTTP, users' books or the store: callers pass visibility in
//! `Query` as for every engine.

mod lexemes;
mod rows;
mod search_sql;

use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use athena_search::{cursor, parse_query, Doc, Hit, IndexHealth, Page, Query, Result, SearchError, SearchIndex, MAX_LIMIT};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, Postgres, Row, Transaction};

use crate::rows::{clean, prepare, Batch};
use crate::search_sql::{hit, matched_sql, Params};

pub use lexemes::{CHUNK_OVERLAP, CHUNK_STEP};

/// How long a call waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing the pool may take when the index is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Session limits of every connection: a statement (a search, a batch of writes) gives up after a
/// minute; a write waiting on another replica's uncommitted rows gives up after a minute too; and a
/// write transaction left uncommitted for 10 minutes (a caller that never commits) is ended by
/// the server, releasing its row locks and losing its writes.
const SESSION_LIMITS: &str = "SET statement_timeout = '60s'; SET lock_timeout = '60s'; SET idle_in_transaction_session_timeout = '600s'";

/// How to connect.
#[derive(Clone, Debug)]
pub struct PgSearchOptions {
    /// Connections for searches; writes use one more, held while a transaction is pending.
    pub max_connections: u32,
    /// Tables live in this schema (tests); `None`: the connection's default search path.
    pub schema: Option<String>,
}

impl Default for PgSearchOptions {
    fn default() -> Self {
        Self { max_connections: 4, schema: None }
    }
}

/// State shared by the calls running on the engine's runtime.
struct Shared {
    pool: sqlx::PgPool,
    /// The transaction holding uncommitted writes. A tokio mutex: it is held across awaits, and
    /// serialises the writers of this process as tantivy's single writer does.
    pending: tokio::sync::Mutex<Option<Transaction<'static, Postgres>>>,
}

/// The PostgreSQL engine. See the crate documentation.
pub struct PgSearchIndex {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    /// Dropping it stops the runtime thread, which rolls back pending writes and closes the pool.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for PgSearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSearchIndex").finish_non_exhaustive()
    }
}

fn engine_err(e: sqlx::Error) -> SearchError {
    // The driver's message (never the statement): PostgreSQL's error text, or the IO failure.
    match e {
        sqlx::Error::Database(d) => SearchError::Engine(format!("PostgreSQL: {} ({})", d.message(), d.code().unwrap_or_default())),
        e => SearchError::Engine(format!("PostgreSQL: {e}")),
    }
}

fn stopped() -> SearchError {
    SearchError::Engine("the PostgreSQL search engine has stopped".into())
}

impl PgSearchIndex {
    /// Connects to `url` (the tables must exist: `athena-store-postgres` migrations). Fails when
    /// the database cannot be reached.
    pub fn connect(url: &str, options: PgSearchOptions) -> Result<PgSearchIndex> {
        if let Some(schema) = &options.schema {
            let valid = !schema.is_empty() && schema.len() <= 63 && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(SearchError::Engine(format!("invalid schema name {schema:?}")));
            }
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = url.to_string();
        let thread = std::thread::Builder::new().name("search-postgres".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("search-postgres-io")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(SearchError::Io(e)));
                    return;
                }
            };
            let shared = match runtime.block_on(open_pool(&url, &options)) {
                Ok(pool) => Arc::new(Shared { pool, pending: tokio::sync::Mutex::new(None) }),
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            if ready_tx.send(Ok((shared.clone(), runtime.handle().clone()))).is_err() {
                return;
            }
            runtime.block_on(async move {
                // Err: the index was dropped without sending; stop either way.
                let _ = stop_rx.await;
                let close = async {
                    if let Some(tx) = shared.pending.lock().await.take() {
                        let _ = tx.rollback().await;
                    }
                    shared.pool.close().await;
                };
                if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
                    tracing::warn!("closing the PostgreSQL search pool timed out");
                }
            });
        })?;
        match ready_rx.recv() {
            Ok(Ok((shared, runtime))) => Ok(PgSearchIndex { shared, runtime, stop: Some(stop_tx), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(SearchError::Engine("the PostgreSQL search runtime failed to start".into()))
            }
        }
    }

    /// Runs `f` on the engine's runtime and waits for its result.
    fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        // A std channel: receiving blocks this thread without needing (or entering) a runtime.
        let (tx, rx) = mpsc::sync_channel(1);
        let fut = f(self.shared.clone());
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// Runs `f` inside the pending write transaction (started when there is none), in a
    /// savepoint: an error undoes this call's statements only.
    fn write<F>(&self, f: F) -> Result<()>
    where
        F: for<'c> FnOnce(&'c mut sqlx::PgConnection) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'c>> + Send + 'static,
    {
        self.call(|shared| async move {
            let mut pending = shared.pending.lock().await;
            if pending.is_none() {
                *pending = Some(shared.pool.begin().await.map_err(engine_err)?);
            }
            let Some(tx) = pending.as_mut() else { return Err(stopped()) };
            // (whether the transaction is broken, the error)
            let outcome = match sqlx::Acquire::begin(&mut **tx).await {
                Ok(mut savepoint) => match f(&mut savepoint).await {
                    Ok(()) => savepoint.commit().await.map_err(|e| (true, engine_err(e))),
                    // Dropping the savepoint rolls this call's statements back.
                    Err(e) => Err((false, e)),
                },
                Err(e) => Err((true, engine_err(e))),
            };
            outcome.map_err(|(broken, e)| {
                if broken {
                    // The connection is gone or unusable: the pending writes are lost with it.
                    *pending = None;
                }
                e
            })
        })
    }
}

async fn open_pool(url: &str, options: &PgSearchOptions) -> Result<sqlx::PgPool> {
    let set_path = options.schema.as_ref().map(|s| format!("SET search_path TO \"{s}\""));
    PgPoolOptions::new()
        // One more than the searches' share, for the pending write transaction.
        .max_connections(options.max_connections.max(1) + 1)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _meta| {
            let set_path = set_path.clone();
            Box::pin(async move {
                conn.execute(SESSION_LIMITS).await?;
                if let Some(sql) = set_path {
                    conn.execute(sql.as_str()).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(engine_err)
}

impl Drop for PgSearchIndex {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait for the rollback and the pool to close, unless dropped on an async thread, which
        // must not block (the runtime thread finishes on its own).
        if let Some(thread) = self.thread.take() {
            if tokio::runtime::Handle::try_current().is_err() {
                let _ = thread.join();
            }
        }
    }
}

impl SearchIndex for PgSearchIndex {
    fn upsert(&self, docs: Vec<Doc>) -> Result<()> {
        let rows = docs.into_iter().map(prepare).collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        let b = Batch::new(rows);
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM search_docs WHERE id = ANY($1)").bind(&b.ids).execute(&mut *conn).await.map_err(engine_err)?;
                sqlx::query(
                    "INSERT INTO search_docs (id, kind, scope, shared, content_key, book_id, location, title, body)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
                )
                .bind(&b.ids)
                .bind(&b.kinds)
                .bind(&b.scopes)
                .bind(&b.shared)
                .bind(&b.content_keys)
                .bind(&b.book_ids)
                .bind(&b.locations)
                .bind(&b.titles)
                .bind(&b.bodies)
                .execute(&mut *conn)
                .await
                .map_err(engine_err)?;
                sqlx::query(
                    "INSERT INTO search_chunks (doc_id, seq, grams, words)
                     SELECT d, s, g::tsvector, w::tsvector FROM UNNEST($1::text[], $2::int[], $3::text[], $4::text[]) AS u(d, s, g, w)",
                )
                .bind(&b.chunk_docs)
                .bind(&b.chunk_seqs)
                .bind(&b.chunk_grams)
                .bind(&b.chunk_words)
                .execute(&mut *conn)
                .await
                .map_err(engine_err)?;
                Ok(())
            })
        })
    }

    fn delete_by_book(&self, book_id: &str) -> Result<()> {
        let book_id = clean(book_id);
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM search_docs WHERE book_id = $1 AND NOT shared")
                    .bind(book_id)
                    .execute(conn)
                    .await
                    .map_err(engine_err)?;
                Ok(())
            })
        })
    }

    fn delete_by_content(&self, content_key: &str) -> Result<()> {
        let scope = clean(&format!("c:{content_key}"));
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM search_docs WHERE scope = $1").bind(scope).execute(conn).await.map_err(engine_err)?;
                Ok(())
            })
        })
    }

    fn delete(&self, id: &str) -> Result<()> {
        let id = clean(id);
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM search_docs WHERE id = $1").bind(id).execute(conn).await.map_err(engine_err)?;
                Ok(())
            })
        })
    }

    fn search(&self, q: &Query) -> Result<Page<Hit>> {
        if q.user_id.is_empty() {
            return Err(SearchError::InvalidQuery("a search needs a user".into()));
        }
        let parsed = parse_query(&q.text)?;
        let offset = cursor::decode(q)?;
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let empty = Page { items: Vec::new(), total: 0, next_cursor: None };
        if parsed.is_empty() || q.book_ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(empty);
        }
        let Some(ts) = lexemes::tsqueries(&parsed) else { return Ok(empty) };
        // Values with NUL can match nothing stored (and PostgreSQL text cannot carry them).
        let no_nul = |s: &&String| !s.contains('\0');
        let scopes: Vec<String> = std::iter::once(&q.user_id)
            .filter(no_nul)
            .map(|u| format!("u:{u}"))
            .chain(q.allowed_content.iter().filter(no_nul).map(|k| format!("c:{k}")))
            .collect();
        let kinds: Vec<&'static str> = q.kinds.iter().map(|k| k.as_str()).collect();
        let book_ids: Option<Vec<String>> = q.book_ids.as_ref().map(|ids| ids.iter().filter(no_nul).cloned().collect());
        let params = Params { any: ts.any, scopes, kinds, book_ids, boost: ts.boost, words: ts.words, required: ts.required };
        let page_sql = format!(
            "WITH matched AS ({}),
                  page AS (SELECT doc_id, score, count(*) OVER () AS total FROM matched
                           ORDER BY score DESC, doc_id LIMIT $7 OFFSET $8)
             SELECT p.doc_id, p.score, p.total, d.kind, d.content_key, d.book_id, d.location, d.title, d.body
               FROM page p JOIN search_docs d ON d.id = p.doc_id
              ORDER BY p.score DESC, p.doc_id",
            matched_sql(params.required.len(), 9)
        );
        let count_sql = format!("SELECT count(*) FROM ({}) m", matched_sql(params.required.len(), 7));
        let (limit, offset_i) = (limit as i64, offset as i64);
        let (rows, total) = self.call(move |shared| async move {
            let rows = params.bind(&page_sql, &[limit, offset_i]).fetch_all(&shared.pool).await.map_err(engine_err)?;
            let total = match rows.first() {
                Some(row) => row.try_get::<i64, _>("total").map_err(engine_err)?,
                None if offset_i == 0 => 0,
                None => {
                    params.bind(&count_sql, &[]).fetch_one(&shared.pool).await.and_then(|r| r.try_get::<i64, _>(0)).map_err(engine_err)?
                }
            };
            Ok((rows, total))
        })?;
        let items = rows.iter().map(|row| hit(row, &parsed.highlight)).collect::<Result<Vec<Hit>>>()?;
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let next = offset + items.len();
        let next_cursor = (next < total && next <= cursor::MAX_OFFSET && !items.is_empty()).then(|| cursor::encode(next, q));
        Ok(Page { items, total: total as u64, next_cursor })
    }

    fn commit(&self) -> Result<()> {
        self.call(|shared| async move {
            let tx = shared.pending.lock().await.take();
            match tx {
                Some(tx) => tx.commit().await.map_err(engine_err),
                None => Ok(()),
            }
        })
    }

    fn health(&self) -> IndexHealth {
        let state = self.call(|shared| async move {
            let row = sqlx::query("SELECT (SELECT count(*) FROM search_docs) AS docs, (SELECT rebuilding FROM search_state) AS rebuilding")
                .fetch_one(&shared.pool)
                .await
                .map_err(engine_err)?;
            let docs: i64 = row.try_get("docs").map_err(engine_err)?;
            let rebuilding: Option<String> = row.try_get("rebuilding").map_err(engine_err)?;
            Ok((u64::try_from(docs).unwrap_or(0), rebuilding))
        });
        match state {
            Ok((docs, None)) => IndexHealth::Ready { docs },
            Ok((docs, Some(reason))) => IndexHealth::Rebuilding { docs, reason },
            Err(e) => IndexHealth::Corrupt { reason: e.to_string() },
        }
    }

    fn mark_ready(&self) -> Result<()> {
        self.call(|shared| async move {
            sqlx::query("UPDATE search_state SET rebuilding = NULL").execute(&shared.pool).await.map_err(engine_err)?;
            Ok(())
        })
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }
}
