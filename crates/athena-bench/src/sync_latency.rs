//! Sync benchmark 2: change → visible on 10 connected clients. Ten NDJSON readers (one user, ten client ids) are
//! connected and caught up; then 200 shelves are created through `POST /api/v1/shelves`, one every 20 ms on a fixed
//! schedule (each write in its own task, so a slow write never delays the next). Latency, per change and client:
//! from just before the REST call starts to the arrival of the data line that carries the new row. Baseline, same
//! run: the REST write's own latency (call start → parsed 201).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use crate::load::cpu_seconds;
use crate::server;
use crate::stats::{ms, summarize, Summary};
use crate::sync_common::{Backend, Line, PgDatabase, Reader};

pub struct Options {
    pub clients: usize,
    pub changes: usize,
    pub interval: Duration,
    pub p99_target: Duration,
}

pub async fn run(bin: &Path, scratch_root: &Path, backend: Backend, pg_admin: &str, opts: &Options) -> anyhow::Result<serde_json::Value> {
    match backend {
        Backend::Sqlite => run_with(bin, scratch_root, backend, None, opts).await,
        Backend::Postgres => {
            let db = PgDatabase::create(pg_admin, "latency").await?;
            let result = run_with(bin, scratch_root, backend, Some(db.url.clone()), opts).await;
            db.drop().await;
            result
        }
    }
}

/// Reads one stream until it saw `want` distinct object ids in data lines (or `deadline`); first arrival of each.
async fn collect(mut reader: Reader, want: usize, deadline: Instant) -> HashMap<String, Instant> {
    let mut seen = HashMap::new();
    while seen.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(event) = reader.next(left).await else { break };
        if let Line::Data(ops) = event.line {
            for (_, id) in ops {
                seen.entry(id).or_insert(event.at);
            }
        }
    }
    seen
}

async fn run_with(
    bin: &Path,
    scratch_root: &Path,
    backend: Backend,
    database_url: Option<String>,
    opts: &Options,
) -> anyhow::Result<serde_json::Value> {
    let label = backend.label();
    let dir = server::scratch(scratch_root, "sync-latency-")?;
    let mut env = vec![];
    if let Some(url) = &database_url {
        env.push(("DATABASE_URL", url.clone()));
    }
    let s = server::athena(bin, dir.path(), &env)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(64).build()?;
    server::wait_ok(&client, &format!("{}/health", s.base()), s.spawned_at, Duration::from_secs(10)).await?;
    let (token, _user) = server::login(&client, &s.base(), "bench-sync-latency@example.com").await?;
    let streams = crate::sync_common::stream_client()?;
    let sync_base = s.sync_base()?;
    let shelves_url = format!("{}/api/v1/shelves", s.base());

    // Warm-up: a few writes, so connections and caches are open before anything is measured.
    for i in 0..5 {
        client
            .post(&shelves_url)
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": format!("warm-up {i}") }))
            .send()
            .await?
            .error_for_status()?;
    }
    let mut readers = Vec::new();
    for c in 0..opts.clients {
        let mut r = Reader::open(&streams, &sync_base, &token, &format!("bench-latency-{c}")).await?;
        r.first_complete(Duration::from_secs(10)).await?;
        readers.push(r);
    }
    let writes_take = opts.interval.mul_f64(opts.changes as f64);
    let deadline = Instant::now() + writes_take + Duration::from_secs(30);
    let collectors: Vec<_> = readers.into_iter().map(|r| tokio::spawn(collect(r, opts.changes, deadline))).collect();

    let cpu0 = cpu_seconds(s.pid()).unwrap_or(0.0);
    let start = Instant::now() + Duration::from_millis(50);
    let mut writes = Vec::with_capacity(opts.changes);
    let mut max_send_lag = Duration::ZERO;
    for i in 0..opts.changes {
        let scheduled = start + opts.interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        max_send_lag = max_send_lag.max(scheduled.elapsed());
        let req = client.post(&shelves_url).bearer_auth(&token).json(&serde_json::json!({ "name": format!("latency {i}") }));
        writes.push(tokio::spawn(async move {
            let t = Instant::now();
            let r: serde_json::Value = req.send().await?.error_for_status()?.json().await?;
            let took = t.elapsed();
            let id = r["data"]["id"].as_str().or_else(|| r["id"].as_str()).context("no shelf id in the response")?.to_string();
            anyhow::Ok((id, t, took))
        }));
    }
    let mut done = Vec::with_capacity(writes.len());
    for w in writes {
        done.push(w.await??);
    }
    let mut seen = Vec::new();
    for c in collectors {
        seen.push(c.await?);
    }
    let server_cpu = (cpu_seconds(s.pid()).unwrap_or(0.0) - cpu0) / start.elapsed().as_secs_f64();
    drop(s);

    let rest = summarize(done.iter().map(|(_, _, took)| *took).collect());
    let mut samples = Vec::with_capacity(done.len() * seen.len());
    let mut missed = 0usize;
    for (id, t, _) in &done {
        for client_seen in &seen {
            match client_seen.get(id) {
                Some(at) => samples.push(at.saturating_duration_since(*t)),
                None => missed += 1,
            }
        }
    }
    let visible = summarize(samples);
    ensure!(visible.count > 0, "no change reached any client");
    eprintln!(
        "sync-latency/{label}: {} changes x {} clients: visible p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms (missed {missed}); \
         REST write p50 {:.2} p99 {:.2} ms; server cpu {:.0}%; send lag max {:.1} ms",
        opts.changes,
        opts.clients,
        ms(visible.p50),
        ms(visible.p90),
        ms(visible.p99),
        ms(visible.max),
        ms(rest.p50),
        ms(rest.p99),
        server_cpu * 100.0,
        ms(max_send_lag)
    );
    Ok(serde_json::json!({
        "benchmark": "sync-latency",
        "backend": label,
        "clients": opts.clients,
        "changes": opts.changes,
        "interval_ms": ms(opts.interval),
        "visible": view(&visible),
        "missed": missed,
        "baseline_rest_write": view(&rest),
        "p99_ratio_visible_over_rest": ms(visible.p99) / ms(rest.p99),
        "server_cpu_pct": server_cpu * 100.0,
        "max_send_lag_ms": ms(max_send_lag),
        "p99_target_ms": ms(opts.p99_target),
        "pass": missed == 0 && visible.p99 < opts.p99_target,
    }))
}

fn view(s: &Summary) -> serde_json::Value {
    serde_json::json!({
        "n": s.count, "mean_ms": ms(s.mean), "p50_ms": ms(s.p50), "p90_ms": ms(s.p90), "p99_ms": ms(s.p99), "max_ms": ms(s.max),
    })
}
