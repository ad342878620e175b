//! An open-loop load generator: requests leave at fixed, pre-computed times whatever the server does, and each
//! latency is measured from the request's *scheduled* time, so a stalled server shows up as latency instead of as
//! fewer requests (no coordinated omission).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::{summarize, Summary};

/// Requests in flight beyond this are counted as failures instead of piling up without bound.
const MAX_IN_FLIGHT: usize = 4096;

#[derive(Debug)]
pub struct LoadResult {
    pub rate: u32,
    pub sent: usize,
    pub failed: usize,
    /// Completion minus scheduled send time, for every request that completed with 200.
    pub latency: Summary,
    /// How late the generator itself was in sending, at worst (its own scheduling noise).
    pub max_send_lag: Duration,
}

pub async fn open_loop(client: &reqwest::Client, url: &str, token: Option<&str>, rate: u32, duration: Duration) -> LoadResult {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(total as usize);
    let mut refused = 0usize;
    let mut max_send_lag = Duration::ZERO;
    let start = Instant::now() + Duration::from_millis(20);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        max_send_lag = max_send_lag.max(scheduled.elapsed());
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            refused += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let in_flight = in_flight.clone();
        handles.push(tokio::spawn(async move {
            let ok = match req.send().await {
                Ok(r) => r.status() == reqwest::StatusCode::OK && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (ok, scheduled.elapsed())
        }));
    }
    let mut samples = Vec::with_capacity(handles.len());
    let mut failed = refused;
    for h in handles {
        match h.await {
            Ok((true, d)) => samples.push(d),
            _ => failed += 1,
        }
    }
    LoadResult { rate, sent: total as usize, failed, latency: summarize(samples), max_send_lag }
}

/// Server CPU time (user + system) so far, in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}
