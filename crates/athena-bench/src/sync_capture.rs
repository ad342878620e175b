//! Sync benchmark 1: change-capture throughput. One transaction inserts 100,000 `shelves` rows for one user,
//! straight into the server's database (as an operator's SQL would) while the server runs and a client is connected
//! to the user's sync stream. From the commit on, the clock runs until (a) the op log holds all the ops
//! (`sync_state.last_op_id`), (b) the client received a checkpoint covering them, (c) the client received all their
//! data and the `checkpoint_complete`. Baseline, same run, same database: the same insert into a copy of `shelves`
//! without the capture triggers (what the rows cost without capture), and the captured insert's own duration.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;

use crate::load::cpu_seconds;
use crate::server;
use crate::sync_common::{insert_shelves, Backend, Db, Line, PgDatabase, Reader};

pub async fn run(bin: &Path, scratch_root: &Path, backend: Backend, pg_admin: &str, rows: usize) -> anyhow::Result<serde_json::Value> {
    match backend {
        Backend::Sqlite => run_with(bin, scratch_root, backend, None, rows).await,
        Backend::Postgres => {
            let db = PgDatabase::create(pg_admin, "capture").await?;
            let result = run_with(bin, scratch_root, backend, Some(db.url.clone()), rows).await;
            db.drop().await;
            result
        }
    }
}

fn begin(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    }
}

/// A copy of `shelves` with its keys and index but no capture trigger (and no foreign key).
fn plain_table_ddl(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE TABLE bench_shelves_plain (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
               cover_url TEXT, sort_order INTEGER NOT NULL DEFAULT 0, is_deleted INTEGER NOT NULL DEFAULT 0, deleted_at TEXT,
               version INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
             CREATE INDEX bench_shelves_plain_user ON bench_shelves_plain (user_id, sort_order, created_at, id);"
        }
        Backend::Postgres => "CREATE TABLE bench_shelves_plain (LIKE shelves INCLUDING ALL)",
    }
}

async fn run_with(
    bin: &Path,
    scratch_root: &Path,
    backend: Backend,
    database_url: Option<String>,
    rows: usize,
) -> anyhow::Result<serde_json::Value> {
    let label = backend.label();
    let dir = server::scratch(scratch_root, "sync-capture-")?;
    let mut env = vec![];
    if let Some(url) = &database_url {
        env.push(("DATABASE_URL", url.clone()));
    }
    let s = server::athena(bin, dir.path(), &env)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    server::wait_ok(&client, &format!("{}/health", s.base()), s.spawned_at, Duration::from_secs(10)).await?;
    let (token, user) = server::login(&client, &s.base(), "bench-sync-capture@example.com").await?;
    let streams = crate::sync_common::stream_client()?;
    let mut reader = Reader::open(&streams, &s.sync_base()?, &token, "bench-capture").await?;
    let first = reader.first_complete(Duration::from_secs(10)).await?;

    let mut db = Db::open(dir.path(), database_url.as_deref()).await?;
    let mut poll_db = Db::open(dir.path(), database_url.as_deref()).await?;

    // Baseline: the same rows into a table without capture, in one transaction, same connection.
    db.execute(plain_table_ddl(backend)).await?;
    let t = Instant::now();
    db.execute(begin(backend)).await?;
    insert_shelves(&mut db, "bench_shelves_plain", &user, "plain", rows).await?;
    let plain_insert = t.elapsed();
    db.execute("COMMIT").await?;
    let plain_total = t.elapsed();
    db.execute("DROP TABLE bench_shelves_plain").await?;
    eprintln!(
        "sync-capture/{label}: baseline insert of {rows} rows without capture: {:.3} s (+ commit: {:.3} s)",
        plain_insert.as_secs_f64(),
        plain_total.as_secs_f64()
    );

    let before = db.last_op_id().await?;
    ensure!(before >= first, "op log at {before} behind the stream's checkpoint {first}");
    let target = before + rows as i64;
    let t = Instant::now();
    db.execute(begin(backend)).await?;
    insert_shelves(&mut db, "shelves", &user, "cap", rows).await?;
    let insert = t.elapsed();
    let cpu0 = cpu_seconds(s.pid()).unwrap_or(0.0);
    let t0 = Instant::now();
    db.execute("COMMIT").await?;
    let commit = t0.elapsed();

    // The op log's position, polled on its own connection while the stream is read.
    let limit = Duration::from_secs(120);
    let oplog = tokio::spawn(async move {
        let deadline = t0 + limit;
        while Instant::now() < deadline {
            if poll_db.last_op_id().await? >= target {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::bail!("the op log did not reach {target} within {limit:?}")
    });
    let deadline = t0 + limit;
    let (mut announced, mut completed, mut received, mut diffs) = (None, None, 0usize, 0usize);
    while completed.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = reader.next(left).await?;
        match event.line {
            Line::Checkpoint(id) => {
                diffs += 1;
                if id >= target && announced.is_none() {
                    announced = Some(event.at - t0);
                }
            }
            Line::Data(ops) => received += ops.iter().filter(|(id, _)| *id > before && *id <= target).count(),
            Line::Complete(id) if id >= target => completed = Some(event.at - t0),
            _ => {}
        }
    }
    let completed = completed.unwrap_or_default();
    let announced = announced.unwrap_or(completed);
    let in_log = oplog.await??;
    let server_cpu_s = cpu_seconds(s.pid()).unwrap_or(0.0) - cpu0;

    let ops_logged = db.scalar_i64(&format!("SELECT COUNT(*) FROM sync_oplog WHERE op_id > {before} AND object_type = 'shelves'")).await?;
    let pending = db.scalar_i64("SELECT COUNT(*) FROM sync_changes").await?;
    ensure!(ops_logged == rows as i64, "op log holds {ops_logged} shelves ops after {before}, expected {rows}");
    ensure!(received == rows, "the client received {received} of the {rows} ops");
    drop(reader);
    drop(s);

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    eprintln!(
        "sync-capture/{label}: insert {:.3} s + commit {:.3} s; after commit: in op log {:.3} s ({:.0} rows/s), announced {:.3} s, \
         client has all data {:.3} s ({:.0} rows/s); {diffs} checkpoints; server cpu {server_cpu_s:.2} s",
        insert.as_secs_f64(),
        commit.as_secs_f64(),
        in_log.as_secs_f64(),
        rate(in_log),
        announced.as_secs_f64(),
        completed.as_secs_f64(),
        rate(completed)
    );
    Ok(serde_json::json!({
        "benchmark": "sync-capture",
        "backend": label,
        "rows": rows,
        "baseline_insert_without_capture_s": plain_insert.as_secs_f64(),
        "baseline_insert_without_capture_incl_commit_s": plain_total.as_secs_f64(),
        "insert_with_capture_s": insert.as_secs_f64(),
        "commit_s": commit.as_secs_f64(),
        "commit_to_oplog_s": in_log.as_secs_f64(),
        "commit_to_checkpoint_announced_s": announced.as_secs_f64(),
        "commit_to_client_complete_s": completed.as_secs_f64(),
        "capture_rows_per_s": rate(in_log),
        "end_to_end_rows_per_s": rate(completed),
        "checkpoint_lines": diffs,
        "server_cpu_s_after_commit": server_cpu_s,
        "changes_left_unsequenced": pending,
        "target_rows_per_s": 50_000,
        "pass": rate(in_log) >= 50_000.0 && rate(announced) >= 50_000.0,
    }))
}
