//! Spawning the servers under test as child processes, finding their port, and reading their memory from /proc.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process killed on drop, so an early `?` never leaves a server running.
pub struct Server {
    pub child: Child,
    /// The API address (or, for a process without one, the first address it announced).
    pub addr: String,
    /// Every announced address by role (`api`, `sync`, `metrics`; `http` for the Python baseline).
    pub addrs: HashMap<String, String>,
    pub spawned_at: Instant,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of the sync service's own listener.
    pub fn sync_base(&self) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.addrs.get("sync").context("the server announced no sync listener")?))
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid())
    }
}

/// The environment of one `athena serve` run; `extra` is added after the defaults. Every listener binds port 0
/// (API, sync, metrics), so parallel runs and other servers on the machine never collide.
pub fn athena(bin: &Path, data_dir: &Path, extra: &[(&str, String)]) -> anyhow::Result<Server> {
    athena_with(bin, data_dir, &[], extra, &["api"])
}

/// `athena serve ARGS…`, returning once every role in `wait_for` announced its address.
pub fn athena_with(bin: &Path, data_dir: &Path, args: &[&str], extra: &[(&str, String)], wait_for: &[&str]) -> anyhow::Result<Server> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ATHENA_DATA_DIR", data_dir)
        .env("ATHENA_API_PORT", "0")
        .env("POWERSYNC_PORT", "0")
        .env("ATHENA_METRICS_PORT", "0")
        .env("ATHENA_WORKER_METRICS_PORT", "0")
        .env("ATHENA_MODE", "development")
        .env("ATHENA_LOG_FORMAT", "json");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    // Each address is in a JSON log line {"message":"listening", "addr":"127.0.0.1:PORT", "role":"api"}.
    spawn_and_find_addr(cmd, Stream::Stderr, wait_for, |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields").unwrap_or(&v);
        let msg = fields.get("message").or_else(|| v.get("message"))?.as_str()?;
        if msg != "listening" {
            return None;
        }
        let role = fields.get("role").or_else(|| v.get("role")).and_then(|r| r.as_str()).unwrap_or("api").to_string();
        let addr = fields.get("addr").or_else(|| v.get("addr"))?.as_str()?.to_string();
        Some((role, addr))
    })
}

/// `python3 -m http.server` on port 0, the baseline server: a minimal HTTP server in a common runtime.
pub fn python_http(dir: &Path) -> anyhow::Result<Server> {
    let mut cmd = Command::new("python3");
    // -u: unbuffered, or the "Serving HTTP on … port N" line would sit in a buffer.
    cmd.args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]).current_dir(dir);
    spawn_and_find_addr(cmd, Stream::Stdout, &["http"], |line| {
        let rest = line.strip_prefix("Serving HTTP on ")?;
        let mut words = rest.split_whitespace();
        let host = words.next()?;
        let port = words.nth(1)?;
        Some(("http".to_string(), format!("{host}:{port}")))
    })
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

type FindAddr = fn(&str) -> Option<(String, String)>;

fn spawn_and_find_addr(mut cmd: Command, stream: Stream, wait_for: &[&str], find: FindAddr) -> anyhow::Result<Server> {
    match stream {
        Stream::Stdout => cmd.stdout(Stdio::piped()).stderr(Stdio::null()),
        Stream::Stderr => cmd.stdout(Stdio::null()).stderr(Stdio::piped()),
    };
    let spawned_at = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    let pipe: Box<dyn std::io::Read + Send> = match stream {
        Stream::Stdout => Box::new(child.stdout.take().context("stdout")?),
        Stream::Stderr => Box::new(child.stderr.take().context("stderr")?),
    };
    let (tx, rx) = mpsc::channel();
    // The reader keeps draining after the addresses are found: a full pipe would block the server's logging.
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(found) = find(&line) {
                let _ = tx.send(found);
            }
        }
    });
    let mut server = Server { child, addr: String::new(), addrs: HashMap::new(), spawned_at };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = None;
    while !wait_for.iter().all(|r| server.addrs.contains_key(*r)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((role, addr)) => {
                first.get_or_insert_with(|| addr.clone());
                server.addrs.insert(role, addr);
            }
            Err(_) => {
                let status = server.child.try_wait()?;
                bail!("no listening address for {wait_for:?} within 30 s (found {:?}; exit status: {status:?})", server.addrs)
            }
        }
    }
    server.addr = server.addrs.get("api").cloned().or(first).unwrap_or_default();
    Ok(server)
}

/// Resident set now and its peak, in KiB, from /proc/PID/status.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        Ok(Self { rss_kib: field_kib(&text, "VmRSS:")?, hwm_kib: field_kib(&text, "VmHWM:")? })
    }
}

fn field_kib(status: &str, name: &str) -> anyhow::Result<u64> {
    let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("{name} missing"))?;
    let n = line[name.len()..].split_whitespace().next().context("value")?;
    Ok(n.parse()?)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Polls `url` until it answers 200, up to `limit`; returns when it did, measured from `since`.
pub async fn wait_ok(client: &reqwest::Client, url: &str, since: Instant, limit: Duration) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == reqwest::StatusCode::OK {
                return Ok(since.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bail!("{url} did not answer 200 within {limit:?}")
}

/// A scratch dir next to the repository's target dir, so server data and copies land on the same disk.
pub fn scratch(root: &Path, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(root)?;
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(root)?)
}

pub fn default_bin() -> PathBuf {
    PathBuf::from("target/release/athena")
}

/// Logs in through the email-code flow (development mode returns the code) and gives (access token, user id).
pub async fn login(client: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<(String, String)> {
    let r: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/email/send-code"))
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let code = r["data"]["dev_code"].as_str().context("no data.dev_code (is the server in development mode?)")?;
    let r: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/email/verify-code"))
        .json(&serde_json::json!({ "email": email, "code": code }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = r["data"]["tokens"]["access_token"].as_str().context("no access token")?.to_string();
    let user = r["data"]["user"]["id"].as_str().context("no user id")?.to_string();
    Ok((token, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_status_fields() {
        let text = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(field_kib(text, "VmRSS:").unwrap(), 2048);
        assert_eq!(field_kib(text, "VmHWM:").unwrap(), 12345);
        assert!(field_kib(text, "VmSwap:").is_err());
    }
}
