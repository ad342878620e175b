//! Benchmark 2: one-step multipart upload of a large text file, streamed from disk, against a local copy + fsync.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use sha2::{Digest, Sha256};

use crate::server::{self, mib};

/// Writes `size` bytes of UTF-8 text lines (unique per run, so nothing dedups) and returns their SHA-256.
fn make_text_file(path: &Path, size: u64, seed: u128) -> anyhow::Result<String> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut line = String::with_capacity(128);
    let mut i = 0u64;
    while written < size {
        line.clear();
        use std::fmt::Write as _;
        let _ = writeln!(line, "{seed:032x} line {i:010} — the quick brown fox jumps over the lazy dog; 学而时习之.");
        let take = (size - written).min(line.len() as u64) as usize;
        // The last line may be cut short; cut at a char boundary so the file stays valid UTF-8
        // (the line starts with ASCII, so `end` never reaches 0).
        let mut end = take;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let bytes = &line.as_bytes()[..end];
        out.write_all(bytes)?;
        hasher.update(bytes);
        written += bytes.len() as u64;
        i += 1;
    }
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(hex::encode(hasher.finalize()))
}

/// The baseline: a plain user-space read/write copy on the same disk, made durable with fsync, like the server's spool.
fn copy_and_sync(src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut input = std::fs::File::open(src)?;
    let mut output = std::fs::File::create(dst)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n])?;
    }
    output.sync_all()?;
    let took = start.elapsed();
    drop(output);
    std::fs::remove_file(dst)?;
    Ok(took)
}

struct UploadRun {
    took: Duration,
    hwm_before_kib: u64,
    hwm_after_kib: u64,
    rss_peak_sampled_kib: u64,
}

async fn upload_once(bin: &Path, scratch_root: &Path, file: &Path, size: u64, sha: &str) -> anyhow::Result<UploadRun> {
    let dir = server::scratch(scratch_root, "upload-")?;
    let env = [("ATHENA_MAX_UPLOAD_BYTES", (size + (100 << 20)).to_string()), ("ATHENA_QUOTA_BYTES", (1u64 << 50).to_string())];
    let s = server::athena(bin, dir.path(), &env)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    server::wait_ok(&client, &format!("{}/health", s.base()), s.spawned_at, Duration::from_secs(10)).await?;
    let (token, _) = server::login(&client, &s.base(), "bench-upload@example.com").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = s.memory()?;

    // Sample RSS while the upload runs: VmHWM gives the peak, the samples show it was not a blip at start-up.
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), s.pid());
        tokio::spawn(async move {
            // Bounded: at most 10 minutes of 50 ms samples.
            for _ in 0..12_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(m) = server::Memory::of(pid) {
                    peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let f = tokio::fs::File::open(file).await?;
    // 256 KiB reads: the client streams from disk and never holds the file.
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
    let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), size)
        .file_name("bench.txt")
        .mime_str("text/plain")?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let start = Instant::now();
    let resp = client.post(format!("{}/api/v1/books", s.base())).bearer_auth(&token).multipart(form).send().await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.context("upload response")?;
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    ensure!(status == reqwest::StatusCode::CREATED, "upload answered {status}: {body}");
    ensure!(body["data"]["file_size"].as_u64() == Some(size), "size mismatch: {body}");
    ensure!(body["data"]["content_sha256"].as_str() == Some(sha), "hash mismatch: {body}");
    let after = s.memory()?;
    drop(s);
    Ok(UploadRun { took, hwm_before_kib: before.hwm_kib, hwm_after_kib: after.hwm_kib, rss_peak_sampled_kib: peak.load(Ordering::Relaxed) })
}

pub async fn run(bin: &Path, scratch_root: &Path, size: u64, runs: usize) -> anyhow::Result<serde_json::Value> {
    let work = server::scratch(scratch_root, "upload-src-")?;
    let src = work.path().join("book.txt");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let t = Instant::now();
    let sha = make_text_file(&src, size, seed)?;
    eprintln!("upload: wrote {} MB of text in {:.1} s", size / 1_000_000, t.elapsed().as_secs_f64());
    let mbps = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();

    let mut copies = Vec::new();
    let mut uploads = Vec::new();
    // Interleaved so both sides see the same disk and page-cache conditions.
    for i in 0..runs {
        let c = copy_and_sync(&src, &work.path().join("copy.bin"))?;
        eprintln!("upload run {i}: copy+fsync {:.2} s = {:.0} MB/s", c.as_secs_f64(), mbps(c));
        copies.push(c);
        let u = upload_once(bin, scratch_root, &src, size, &sha).await?;
        eprintln!(
            "upload run {i}: upload {:.2} s = {:.0} MB/s, server VmHWM {:.1} -> {:.1} MiB (sampled RSS peak {:.1} MiB)",
            u.took.as_secs_f64(),
            mbps(u.took),
            mib(u.hwm_before_kib),
            mib(u.hwm_after_kib),
            mib(u.rss_peak_sampled_kib)
        );
        uploads.push(u);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let copy = median(copies.clone());
    let up = median(uploads.iter().map(|u| u.took).collect());
    let growth_kib = uploads.iter().map(|u| u.hwm_after_kib.saturating_sub(u.hwm_before_kib)).max().unwrap_or(0);
    Ok(serde_json::json!({
        "benchmark": "upload",
        "bytes": size,
        "runs": runs,
        "copy_fsync_mb_s": copies.iter().map(|d| mbps(*d)).collect::<Vec<_>>(),
        "upload_mb_s": uploads.iter().map(|u| mbps(u.took)).collect::<Vec<_>>(),
        "copy_fsync_mb_s_median": mbps(copy),
        "upload_mb_s_median": mbps(up),
        "ratio": mbps(up) / mbps(copy),
        "server_hwm_before_mib": uploads.iter().map(|u| mib(u.hwm_before_kib)).collect::<Vec<_>>(),
        "server_hwm_after_mib": uploads.iter().map(|u| mib(u.hwm_after_kib)).collect::<Vec<_>>(),
        "server_hwm_growth_mib_max": mib(growth_kib),
        "pass_ratio_ge_70pct": mbps(up) / mbps(copy) >= 0.7,
        "pass_growth_lt_50mb": growth_kib * 1024 < 50_000_000,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_file_has_exact_size_and_is_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        for size in [1u64, 97, 1000, 4096] {
            let sha = make_text_file(&p, size, 7).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(bytes.len() as u64, size);
            assert!(std::str::from_utf8(&bytes).is_ok());
            assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
        }
    }
}
