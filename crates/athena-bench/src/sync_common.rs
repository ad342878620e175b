//! Shared parts of the sync benchmarks: an NDJSON sync-stream reader that timestamps every line on arrival, the
//! direct database connection the benchmarks write through (SQLite file or PostgreSQL), and a throw-away
//! PostgreSQL database.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use sqlx::Connection;
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One line of a sync stream, reduced to what the benchmarks look at.
#[derive(Debug)]
pub enum Line {
    /// `checkpoint` or `checkpoint_diff`, with its `last_op_id`.
    Checkpoint(i64),
    Complete(i64),
    /// The ops of a data line: (op id, object id) for every op.
    Data(Vec<(i64, String)>),
    KeepAlive,
    Other,
}

/// A line and when its bytes arrived (taken before parsing, so parsing never counts as latency).
#[derive(Debug)]
pub struct Event {
    pub at: Instant,
    pub line: Line,
}

/// A running sync-stream reader; the task ends when dropped.
pub struct Reader {
    pub events: mpsc::UnboundedReceiver<Event>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reader {
    /// Opens `POST {sync_base}/sync/stream` as a fresh client (no buckets) and reads it in a task.
    pub async fn open(client: &reqwest::Client, sync_base: &str, token: &str, client_id: &str) -> anyhow::Result<Self> {
        let response = client
            .post(format!("{sync_base}/sync/stream"))
            .header("Authorization", format!("Token {token}"))
            .json(&serde_json::json!({
                "buckets": [], "include_checksum": true, "raw_data": true, "client_id": client_id,
            }))
            .send()
            .await?;
        ensure!(response.status() == reqwest::StatusCode::OK, "sync stream answered {}", response.status());
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(chunk) = body.next().await {
                let at = Instant::now();
                buf.extend_from_slice(&chunk?);
                let mut start = 0;
                while let Some(n) = buf[start..].iter().position(|&b| b == b'\n') {
                    let line = parse_line(&buf[start..start + n])?;
                    start += n + 1;
                    if tx.send(Event { at, line }).is_err() {
                        return Ok(());
                    }
                }
                buf.drain(..start);
            }
            Ok(())
        });
        Ok(Self { events, task })
    }

    /// The next event, or an error after `limit`.
    pub async fn next(&mut self, limit: Duration) -> anyhow::Result<Event> {
        match tokio::time::timeout(limit, self.events.recv()).await {
            Ok(Some(e)) => Ok(e),
            Ok(None) => bail!("the sync stream ended"),
            Err(_) => bail!("no sync line within {limit:?}"),
        }
    }

    /// Reads until the first `checkpoint_complete`; returns its op id.
    pub async fn first_complete(&mut self, limit: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Line::Complete(id) = self.next(left).await?.line {
                return Ok(id);
            }
        }
    }
}

fn op_id(v: &serde_json::Value) -> anyhow::Result<i64> {
    // Op ids are decimal strings on the wire (a JSON number would be a protocol bug).
    v.as_str().context("op id is not a string")?.parse().context("op id is not a decimal")
}

pub fn parse_line(bytes: &[u8]) -> anyhow::Result<Line> {
    ensure!(!bytes.is_empty(), "the server sent an empty NDJSON line");
    let v: serde_json::Value = serde_json::from_slice(bytes).context("a sync line is not JSON")?;
    Ok(if let Some(c) = v.get("checkpoint").or_else(|| v.get("checkpoint_diff")) {
        Line::Checkpoint(op_id(&c["last_op_id"])?)
    } else if let Some(c) = v.get("checkpoint_complete") {
        Line::Complete(op_id(&c["last_op_id"])?)
    } else if let Some(d) = v.get("data") {
        let ops = d["data"].as_array().context("data line without ops")?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push((op_id(&op["op_id"])?, op["object_id"].as_str().unwrap_or_default().to_string()));
        }
        Line::Data(out)
    } else if v.get("token_expires_in").is_some() {
        Line::KeepAlive
    } else {
        Line::Other
    })
}

/// A direct connection to the server's database, as an operator's SQL session would be.
pub enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    pub async fn open(data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Self> {
        Ok(match database_url {
            Some(url) => Db::Postgres(sqlx::PgConnection::connect(url).await?),
            None => {
                use sqlx::sqlite::SqliteConnectOptions;
                let opts = SqliteConnectOptions::new()
                    .filename(data_dir.join("hot").join("athena.db"))
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                Db::Sqlite(sqlx::SqliteConnection::connect_with(&opts).await?)
            }
        })
    }

    pub async fn scalar_i64(&mut self, sql: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Db::Sqlite(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?,
            Db::Postgres(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?,
        })
    }

    pub async fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(c) => {
                sqlx::raw_sql(sql).execute(c).await?;
            }
            Db::Postgres(c) => {
                sqlx::raw_sql(sql).execute(c).await?;
            }
        }
        Ok(())
    }

    /// The sequencer's position: the newest op id in the log.
    pub async fn last_op_id(&mut self) -> anyhow::Result<i64> {
        self.scalar_i64("SELECT last_op_id FROM sync_state WHERE id = 1").await
    }
}

/// Inserts `n` shelves rows for `user` into `table` in batches of multi-row INSERTs, inside whatever transaction
/// the caller opened. Names carry `tag` so two runs never collide.
pub async fn insert_shelves(db: &mut Db, table: &str, user: &str, tag: &str, n: usize) -> anyhow::Result<()> {
    const BATCH: usize = 1000;
    let now = chrono::Utc::now();
    let mut i = 0;
    while i < n {
        let k = BATCH.min(n - i);
        match db {
            Db::Sqlite(c) => {
                let ts = now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "INSERT INTO {table} (id, user_id, name, sort_order, is_deleted, version, created_at, updated_at) "
                ));
                q.push_values(i..i + k, |mut b, j| {
                    b.push_bind(format!("{tag}-{j:08}"))
                        .push_bind(user.to_string())
                        .push_bind(format!("Bench shelf {j}"))
                        .push_bind(j as i64)
                        .push_bind(0i64)
                        .push_bind(1i64)
                        .push_bind(ts.clone())
                        .push_bind(ts.clone());
                });
                q.build().execute(&mut *c).await?;
            }
            Db::Postgres(c) => {
                let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
                    "INSERT INTO {table} (id, user_id, name, sort_order, is_deleted, version, created_at, updated_at) "
                ));
                q.push_values(i..i + k, |mut b, j| {
                    b.push_bind(format!("{tag}-{j:08}"))
                        .push_bind(user.to_string())
                        .push_bind(format!("Bench shelf {j}"))
                        .push_bind(j as i64)
                        .push_bind(false)
                        .push_bind(1i64)
                        .push_bind(now)
                        .push_bind(now);
                });
                q.build().execute(&mut *c).await?;
            }
        }
        i += k;
    }
    Ok(())
}

/// A fresh PostgreSQL database on the admin URL's server; `drop` removes it (always call it).
pub struct PgDatabase {
    admin: sqlx::PgConnection,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("athena_bench_{prefix}_{}_{}", std::process::id(), chrono::Utc::now().timestamp_micros());
        let mut admin = sqlx::PgConnection::connect(admin_url).await.context("connecting to PostgreSQL (--pg-admin-url)")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await?;
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => bail!("--pg-admin-url must end with /DATABASE"),
        };
        Ok(Self { admin, name, url })
    }

    pub async fn drop(mut self) {
        // FORCE ends the server's leftover connections.
        let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut self.admin).await;
        if let Err(e) = dropped {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}

/// A client for long-lived streams: no total timeout (it would cut the stream), a connect timeout only.
pub fn stream_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).pool_max_idle_per_host(64).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lines_the_benchmarks_use() {
        assert!(matches!(parse_line(br#"{"checkpoint":{"last_op_id":"7","buckets":[]}}"#).unwrap(), Line::Checkpoint(7)));
        assert!(matches!(parse_line(br#"{"checkpoint_diff":{"last_op_id":"9"}}"#).unwrap(), Line::Checkpoint(9)));
        assert!(matches!(parse_line(br#"{"checkpoint_complete":{"last_op_id":"9"}}"#).unwrap(), Line::Complete(9)));
        assert!(matches!(parse_line(br#"{"token_expires_in":60}"#).unwrap(), Line::KeepAlive));
        let data = br#"{"data":{"bucket":"b","data":[{"op_id":"8","op":"PUT","object_id":"s1"},{"op_id":"9","op":"CLEAR"}]}}"#;
        match parse_line(data).unwrap() {
            Line::Data(ops) => assert_eq!(ops, vec![(8, "s1".to_string()), (9, String::new())]),
            other => panic!("{other:?}"),
        }
        assert!(parse_line(br#"{"checkpoint_complete":{"last_op_id":9}}"#).is_err(), "numeric op ids are refused");
        assert!(parse_line(b"").is_err());
    }
}
