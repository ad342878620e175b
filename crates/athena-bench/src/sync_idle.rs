//! Sync benchmark 3: many concurrent idle streams in one server process (`athena serve`, SQLite). Streams are
//! opened over raw HTTP/1.1 on loopback (one TCP connection each, one user, distinct client ids), each read until
//! its first `checkpoint_complete`, then left idle while a task per stream keeps reading (keep-alives), as a real
//! client would. Server memory (VmRSS/VmHWM from /proc) is read after each step; baseline: the same server idle,
//! logged in, before any stream. At the end one change (a new shelf through REST) fans out to every open stream,
//! and the time until each stream saw its data line is recorded. By default the streams ask for what the official
//! clients ask for — BSON lines, gzip — and are decoded as they arrive (chunked transfer, then inflate).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::cpu_seconds;
use crate::server::{self, mib};
use crate::stats::{ms, summarize};

pub struct Options {
    pub streams: usize,
    /// Memory is read when this many streams are open (ascending; `streams` is always the last step).
    pub steps: Vec<usize>,
    /// Streams being opened at once.
    pub concurrency: usize,
    pub settle: Duration,
    pub framing: Framing,
}

/// What the streams ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// `Accept: application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8`, `Accept-Encoding: gzip`.
    BsonGzip,
    /// `Accept: application/x-ndjson`, no compression.
    Ndjson,
}

impl Framing {
    fn headers(self) -> &'static str {
        match self {
            Self::BsonGzip => {
                "Accept: application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8\r\nAccept-Encoding: gzip, deflate\r\n"
            }
            Self::Ndjson => "Accept: application/x-ndjson\r\n",
        }
    }

    /// Bytes that appear in a data line and nowhere else: a JSON key, or BSON's embedded-document tag + key.
    fn data_marker(self) -> &'static [u8] {
        match self {
            Self::BsonGzip => b"\x03data\x00",
            Self::Ndjson => b"{\"data\"",
        }
    }
}

/// The body of a raw HTTP/1.1 response as it arrives: headers skipped, chunked framing removed, gzip inflated.
#[derive(Default)]
struct BodyDecoder {
    head: Vec<u8>,
    headers_done: bool,
    gzip: bool,
    /// Bytes left in the current chunk; None while reading a chunk-size line.
    chunk_left: Option<usize>,
    pending: Vec<u8>,
    inflater: Option<flate2::Decompress>,
    gzip_header_left: usize,
}

impl BodyDecoder {
    /// Feeds received bytes; returns the body bytes they complete.
    fn feed(&mut self, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut input = input;
        if !self.headers_done {
            self.head.extend_from_slice(input);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                anyhow::ensure!(self.head.len() < 16 << 10, "response headers too long");
                return Ok(Vec::new());
            };
            let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
            anyhow::ensure!(head.starts_with("http/1.1 200"), "not 200: {}", &head[..head.len().min(300)]);
            anyhow::ensure!(head.contains("transfer-encoding: chunked"), "expected a chunked stream: {head}");
            self.gzip = head.contains("content-encoding: gzip");
            if self.gzip {
                self.inflater = Some(flate2::Decompress::new(false));
                self.gzip_header_left = 10;
            }
            self.headers_done = true;
            self.pending = self.head.split_off(end + 4);
            let rest = std::mem::take(&mut self.pending);
            return self.feed_body(&rest);
        }
        let owned;
        if !self.pending.is_empty() {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(input);
            owned = joined;
            input = &owned;
        }
        self.feed_body(input)
    }

    fn feed_body(&mut self, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut raw = Vec::new();
        let mut at = 0;
        while at < input.len() {
            match self.chunk_left {
                Some(0) => {
                    // The CRLF after a chunk's data.
                    if input.len() - at < 2 {
                        self.pending = input[at..].to_vec();
                        break;
                    }
                    at += 2;
                    self.chunk_left = None;
                }
                Some(n) => {
                    let take = n.min(input.len() - at);
                    raw.extend_from_slice(&input[at..at + take]);
                    at += take;
                    self.chunk_left = Some(n - take);
                }
                None => {
                    let Some(eol) = input[at..].windows(2).position(|w| w == b"\r\n") else {
                        self.pending = input[at..].to_vec();
                        break;
                    };
                    let size = std::str::from_utf8(&input[at..at + eol])?.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16).context("chunk size")?;
                    at += eol + 2;
                    self.chunk_left = Some(size);
                }
            }
        }
        let Some(inflater) = self.inflater.as_mut() else { return Ok(raw) };
        let mut raw = &raw[..];
        let skip = self.gzip_header_left.min(raw.len());
        raw = &raw[skip..];
        self.gzip_header_left -= skip;
        let mut out = Vec::with_capacity(raw.len() * 4 + 1024);
        let start = inflater.total_in();
        loop {
            let consumed = (inflater.total_in() - start) as usize;
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity());
            }
            inflater.decompress_vec(&raw[consumed..], &mut out, flate2::FlushDecompress::Sync)?;
            if (inflater.total_in() - start) as usize == raw.len() && out.capacity() - out.len() >= 1024 {
                return Ok(out);
            }
        }
    }
}

/// The soft limit on open files of this process (the server inherits it).
fn nofile_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Per open stream: when its first data line after the idle phase arrived.
type Arrivals = Arc<Mutex<Vec<Option<Instant>>>>;

/// Opens one stream and reads it to its first `checkpoint_complete`; then a task keeps reading, and records in
/// `arrivals[slot]` when the first data line arrives.
async fn open_stream(addr: &str, token: &str, slot: usize, arrivals: Arrivals, framing: Framing) -> anyhow::Result<()> {
    let body = format!(r#"{{"buckets":[],"include_checksum":true,"raw_data":true,"client_id":"bench-idle-{slot}"}}"#);
    let request = format!(
        "POST /sync/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Token {token}\r\nContent-Type: application/json\r\n\
         {}Content-Length: {}\r\n\r\n{body}",
        framing.headers(),
        body.len()
    );
    let mut decoder = BodyDecoder::default();
    let mut tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                bail!("closed before the first checkpoint_complete: {}", String::from_utf8_lossy(&buf));
            }
            buf.extend_from_slice(&decoder.feed(&chunk[..n])?);
            if decoder.headers_done && (decoder.gzip != (framing == Framing::BsonGzip)) {
                bail!("asked for {framing:?}, the response is {}gzipped", if decoder.gzip { "" } else { "not " });
            }
            if contains(&buf, b"checkpoint_complete") {
                return Ok(());
            }
            anyhow::ensure!(buf.len() < 1 << 20, "no checkpoint_complete in the first MiB");
        }
    })
    .await
    .context("first checkpoint_complete within 60 s")??;
    tokio::spawn(async move {
        let mut chunk = [0u8; 2048];
        // The end of what came before, so a marker split between two reads is still found.
        let mut seen = Vec::new();
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let Ok(body) = decoder.feed(&chunk[..n]) else { return };
                    seen.extend_from_slice(&body);
                    let found = contains(&seen, framing.data_marker());
                    seen.drain(..seen.len().saturating_sub(8));
                    if found {
                        let mut a = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                        a[slot].get_or_insert_with(Instant::now);
                    }
                }
            }
        }
    });
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn active_connections(client: &reqwest::Client, metrics_base: &str) -> Option<f64> {
    let text = client.get(format!("{metrics_base}/metrics")).send().await.ok()?.text().await.ok()?;
    let line = text.lines().find(|l| l.starts_with("powersync_active_connections"))?;
    line.split_whitespace().last()?.parse().ok()
}

pub async fn run(bin: &Path, scratch_root: &Path, opts: &Options) -> anyhow::Result<serde_json::Value> {
    let limit = nofile_limit();
    eprintln!("sync-idle-streams: open-files limit {limit:?} (bench and server each need one per stream)");
    let dir = server::scratch(scratch_root, "sync-idle-")?;
    let s = server::athena(bin, dir.path(), &[])?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    server::wait_ok(&client, &format!("{}/health", s.base()), s.spawned_at, Duration::from_secs(10)).await?;
    let (token, _user) = server::login(&client, &s.base(), "bench-sync-idle@example.com").await?;
    let sync_addr = s.addrs.get("sync").context("no sync listener")?.clone();
    let metrics_base = format!("http://{}", s.addrs.get("metrics").context("no metrics listener")?);
    tokio::time::sleep(opts.settle).await;
    let idle = s.memory()?;
    eprintln!("sync-idle-streams: idle server (logged in, no stream): VmRSS {:.1} MiB", mib(idle.rss_kib));

    let arrivals: Arrivals = Arc::new(Mutex::new(vec![None; opts.streams]));
    let mut steps: Vec<usize> = opts.steps.iter().copied().filter(|&n| n < opts.streams).collect();
    steps.push(opts.streams);
    let mut open = 0usize;
    let mut rows = Vec::new();
    let mut stopped_by = None;
    let started = Instant::now();
    for &step in &steps {
        let t = Instant::now();
        let cpu0 = cpu_seconds(s.pid()).unwrap_or(0.0);
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(open..step)
            .map(|slot| {
                let (addr, token, arrivals) = (sync_addr.clone(), token.clone(), arrivals.clone());
                async move { open_stream(&addr, &token, slot, arrivals, opts.framing).await.with_context(|| format!("stream {slot}")) }
            })
            .buffered(opts.concurrency)
            .collect()
            .await;
        let opened = results.iter().take_while(|r| r.is_ok()).count();
        open += opened;
        let open_s = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(s.pid()).unwrap_or(0.0) - cpu0;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            stopped_by = Some(format!("{e:#}"));
        }
        tokio::time::sleep(opts.settle).await;
        let m = s.memory()?;
        let gauge = active_connections(&client, &metrics_base).await;
        let per_stream_kib = (m.rss_kib as f64 - idle.rss_kib as f64) / open.max(1) as f64;
        eprintln!(
            "sync-idle-streams: {open} open ({:.1} s, {:.0}/s, server cpu {cpu:.1} s): VmRSS {:.1} MiB, VmHWM {:.1} MiB, \
             {per_stream_kib:.1} KiB/stream; gauge {gauge:?}",
            open_s,
            opened as f64 / open_s,
            mib(m.rss_kib),
            mib(m.hwm_kib)
        );
        rows.push(serde_json::json!({
            "open": open, "open_s": open_s, "server_cpu_s": cpu,
            "rss_mib": mib(m.rss_kib), "hwm_mib": mib(m.hwm_kib),
            "kib_per_stream_over_idle": per_stream_kib, "active_connections_gauge": gauge,
        }));
        if stopped_by.is_some() {
            eprintln!("sync-idle-streams: stopped at {open}: {}", stopped_by.as_deref().unwrap_or_default());
            break;
        }
    }
    let open_total_s = started.elapsed().as_secs_f64();

    // Idle for a while longer (a keep-alive interval is 20 s), then memory again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = s.memory()?;
    let gauge = active_connections(&client, &metrics_base).await;

    // One change, fanned out to every open stream.
    let t0 = Instant::now();
    let cpu0 = cpu_seconds(s.pid()).unwrap_or(0.0);
    client
        .post(format!("{}/api/v1/shelves", s.base()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": "fan-out" }))
        .send()
        .await?
        .error_for_status()?;
    let deadline = t0 + Duration::from_secs(120);
    let seen = loop {
        let seen: Vec<Instant> = arrivals.lock().unwrap_or_else(|e| e.into_inner()).iter().take(open).flatten().copied().collect();
        if seen.len() >= open || Instant::now() >= deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let fan_cpu = cpu_seconds(s.pid()).unwrap_or(0.0) - cpu0;
    let fan = summarize(seen.iter().map(|at| at.saturating_duration_since(t0)).collect());
    let after_fan = s.memory()?;
    eprintln!(
        "sync-idle-streams: fan-out of one change to {} of {open} streams: p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms; server cpu {fan_cpu:.1} s; \
         VmRSS after {:.1} MiB (VmHWM {:.1})",
        fan.count,
        ms(fan.p50),
        ms(fan.p99),
        ms(fan.max),
        mib(after_fan.rss_kib),
        mib(after_fan.hwm_kib)
    );
    drop(s);
    let kib_per_stream = (held.rss_kib as f64 - idle.rss_kib as f64) / open.max(1) as f64;
    Ok(serde_json::json!({
        "benchmark": "sync-idle-streams",
        "backend": "sqlite",
        "framing": format!("{:?}", opts.framing),
        "open_files_limit": limit,
        "requested": opts.streams,
        "open": open,
        "stopped_by": stopped_by,
        "open_total_s": open_total_s,
        "baseline_idle_rss_mib": mib(idle.rss_kib),
        "rss_mib_idle_with_streams": mib(held.rss_kib),
        "hwm_mib": mib(held.hwm_kib),
        "kib_per_stream_over_idle": kib_per_stream,
        "active_connections_gauge": gauge,
        "steps": rows,
        "fan_out": {
            "reached": fan.count, "p50_ms": ms(fan.p50), "p99_ms": ms(fan.p99), "max_ms": ms(fan.max),
            "server_cpu_s": fan_cpu, "rss_mib_after": mib(after_fan.rss_kib), "hwm_mib_after": mib(after_fan.hwm_kib),
        },
        "target_rss_mb": 300,
        "pass": open >= opts.streams && (held.rss_kib as f64 * 1024.0) < 300e6,
    }))
}
