//! Benchmark 1: time from spawn to the first `GET /health` 200, and resident memory after a few idle seconds.

use std::path::Path;
use std::time::Duration;

use crate::server::{self, mib, Memory};
use crate::stats::{ms, summarize};

#[derive(Debug)]
struct Run {
    ready: Duration,
    memory: Memory,
}

pub async fn run(bin: &Path, scratch_root: &Path, runs: usize, idle: Duration) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut athena = Vec::new();
    let mut python = Vec::new();
    // Interleaved, so a burst of noise from other users of the machine hits both sides alike.
    for i in 0..runs {
        let dir = server::scratch(scratch_root, "startup-")?;
        let s = server::athena(bin, dir.path(), &[])?;
        let ready = server::wait_ok(&client, &format!("{}/health", s.base()), s.spawned_at, Duration::from_secs(10)).await?;
        tokio::time::sleep(idle).await;
        let memory = s.memory()?;
        eprintln!(
            "startup run {i}: athena ready {:.1} ms, rss {:.1} MiB, hwm {:.1} MiB",
            ms(ready),
            mib(memory.rss_kib),
            mib(memory.hwm_kib)
        );
        athena.push(Run { ready, memory });
        drop(s);

        let p = server::python_http(dir.path())?;
        let ready = server::wait_ok(&client, &format!("{}/", p.base()), p.spawned_at, Duration::from_secs(10)).await?;
        tokio::time::sleep(idle).await;
        let memory = p.memory()?;
        eprintln!(
            "startup run {i}: python ready {:.1} ms, rss {:.1} MiB, hwm {:.1} MiB",
            ms(ready),
            mib(memory.rss_kib),
            mib(memory.hwm_kib)
        );
        python.push(Run { ready, memory });
    }
    // A process that does nothing: the floor any process pays (libc, loader), for scale.
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let floor = Memory::of(sleeper.id());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let floor = floor?;

    let a = summarize(athena.iter().map(|r| r.ready).collect());
    let p = summarize(python.iter().map(|r| r.ready).collect());
    let max_kib = |runs: &[Run], f: fn(&Memory) -> u64| runs.iter().map(|r| f(&r.memory)).max().unwrap_or(0);
    let a_rss = max_kib(&athena, |m| m.rss_kib);
    let a_hwm = max_kib(&athena, |m| m.hwm_kib);
    let p_rss = max_kib(&python, |m| m.rss_kib);
    let p_hwm = max_kib(&python, |m| m.hwm_kib);
    let report = serde_json::json!({
        "benchmark": "startup",
        "runs": runs,
        "idle_s": idle.as_secs_f64(),
        "athena_ready_ms": { "median": ms(a.p50), "max": ms(a.max) },
        "python_ready_ms": { "median": ms(p.p50), "max": ms(p.max) },
        "ready_ratio_median": ms(a.p50) / ms(p.p50),
        "athena_rss_mib_max": mib(a_rss),
        "athena_hwm_mib_max": mib(a_hwm),
        "python_rss_mib_max": mib(p_rss),
        "python_hwm_mib_max": mib(p_hwm),
        "rss_ratio": a_rss as f64 / p_rss as f64,
        "sleep_rss_mib": mib(floor.rss_kib),
        "pass_ready_lt_1s": a.max < Duration::from_secs(1),
        "pass_rss_lt_60mb": a_hwm * 1024 < 60_000_000,
    });
    Ok(report)
}
