//! Process-level tests of the real `athena` binary: crash safety under `kill -9`, graceful
//! shutdown on SIGTERM, the CLI subcommands, PostgreSQL and SMTP wiring. Each test owns a fresh
//! temporary data dir and asks for port 0, so they run in parallel.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::mpsc;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_athena");
/// Upper bound for anything the binary should do quickly (start, answer, exit).
const DEADLINE: Duration = Duration::from_secs(30);
const BOUNDARY: &str = "athena-process-test-boundary";

// ---------------------------------------------------------------------------------------------
// Environment and process helpers
// ---------------------------------------------------------------------------------------------

/// A fresh data dir and backup dir; every command runs with a cleared environment so that the
/// developer's or CI's variables (DATABASE_URL, SMTP_HOST, ATHENA_*) cannot leak into a test.
struct Env {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), vars: Vec::new() }
    }

    fn with(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn backup(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn spool(&self) -> PathBuf {
        self.data().join("hot").join("tmp").join("uploads")
    }

    fn blob_tmp(&self) -> PathBuf {
        self.data().join("cold").join("objects").join(".tmp")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATHENA_DATA_DIR", self.data())
            .env("ATHENA_BACKUP_DIR", self.backup())
            .env("ATHENA_API_PORT", "0")
            .env("POWERSYNC_PORT", "0")
            .env("ATHENA_METRICS_PORT", "0")
            .env("ATHENA_LOG", "info")
            // A stray ./athena.toml in the test's working dir must not be picked up.
            .current_dir(self.dir.path());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a subcommand to completion (bounded) and returns (status, stdout, stderr).
    fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let mut child = self.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let out = reader(child.stdout.take().unwrap());
        let err = reader(child.stderr.take().unwrap());
        let status = wait_bounded(&mut child, DEADLINE).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`athena {}` did not finish within {DEADLINE:?}", args.join(" "));
        });
        (status, out.join().unwrap(), err.join().unwrap())
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Waits for a child to exit, up to `limit`; `None` when it is still running.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `athena serve`, with its stderr (JSON log lines) captured.
struct Server {
    child: Child,
    addr: SocketAddr,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Server {
    async fn start(env: &Env, args: &[&str]) -> Server {
        let mut child = env.command(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let addr = loop {
            let found = log.lock().unwrap().iter().find_map(|l| listening_addr(l));
            if let Some(addr) = found {
                break addr;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("athena serve exited early ({status}):\n{}", log.lock().unwrap().join("\n"));
            }
            assert!(started.elapsed() < DEADLINE, "no `listening` line within {DEADLINE:?}:\n{}", log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
        let server = Server { child, addr, base: format!("http://{addr}"), log, client };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.client.get(self.url("/health")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(started.elapsed() < DEADLINE, "/health never answered 200:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (bounded) for a log line containing `needle`.
    async fn wait_log(&self, needle: &str) {
        let started = Instant::now();
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            assert!(started.elapsed() < DEADLINE, "log never said {needle:?}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no chance to clean up, as in a power cut or OOM kill.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Logs in through the email-code flow, using the development-mode `dev_code`.
    async fn login(&self, email: &str) -> String {
        let body = self.send_code(email).await;
        let code = body["data"]["dev_code"].as_str().unwrap_or_else(|| panic!("no dev_code in {body}")).to_string();
        self.verify(email, &code).await
    }

    async fn send_code(&self, email: &str) -> Value {
        let r = self.client.post(self.url("/api/v1/auth/email/send-code")).json(&json!({ "email": email })).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "send-code: {body}");
        body
    }

    async fn verify(&self, email: &str, code: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/v1/auth/email/verify-code"))
            .json(&json!({ "email": email, "code": code }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "verify-code: {body}");
        body["data"]["tokens"]["access_token"].as_str().unwrap().to_string()
    }

    async fn get_json(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn book_count(&self, token: &str) -> usize {
        let (status, body) = self.get_json(token, "/api/v1/books").await;
        assert_eq!(status, 200, "GET /books: {body}");
        body["data"]["items"].as_array().unwrap_or_else(|| panic!("no items in {body}")).len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- athena stderr ---\n{}", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address of a `listening` log line (fields are flattened into the JSON object).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line).ok()?;
    let field = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k))).and_then(Value::as_str).map(str::to_string);
    // Each role logs its own `listening` line; the tests talk to the API.
    if field("message")? != "listening" || field("role").is_some_and(|r| r != "api") {
        return None;
    }
    field("addr")?.parse().ok()
}

/// Files directly in `dir` (missing dir = none).
fn files_in(dir: &Path) -> Vec<(PathBuf, u64)> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok().filter(|m| m.is_file()).map(|m| (e.path(), m.len()))).collect())
        .unwrap_or_default()
}

/// Waits (bounded) until a file with data appears in `dir`: proof that the server is mid-write.
async fn wait_partial_file(dir: &Path, server: &Server) {
    let started = Instant::now();
    while !files_in(dir).iter().any(|(_, len)| *len > 0) {
        assert!(started.elapsed() < DEADLINE, "no partial file appeared in {}:\n{}", dir.display(), server.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Feed = mpsc::UnboundedSender<Result<Bytes, std::io::Error>>;

/// A request body that the test feeds chunk by chunk and keeps open as long as it likes.
fn slow_body() -> (Feed, reqwest::Body) {
    let (tx, rx) = mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    (tx, reqwest::Body::wrap_stream(rx))
}

/// Plain text that sniffs as TXT.
fn text_chunk(i: usize) -> Bytes {
    let line = format!("Chapter {i}. It was a bright cold day in April, and the clocks were striking thirteen.\n");
    Bytes::from(line.repeat(64 * 1024 / line.len()))
}

fn multipart_head(filename: &str) -> Bytes {
    Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n"
    ))
}

fn multipart_tail() -> Bytes {
    Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"))
}

/// Starts a one-step multipart upload whose body stays open; sends the head and ~3 MB of text.
fn start_slow_multipart(server: &Server, token: &str) -> (Feed, tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>) {
    let (tx, body) = slow_body();
    tx.unbounded_send(Ok(multipart_head("slow.txt"))).unwrap();
    for i in 0..48 {
        tx.unbounded_send(Ok(text_chunk(i))).unwrap();
    }
    let request = server
        .client
        .post(server.url("/api/v1/books"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send();
    (tx, tokio::spawn(request))
}

fn assert_empty(dir: &Path, what: &str) {
    let left = files_in(dir);
    assert!(left.is_empty(), "{what} ({}) is not empty after restart: {left:?}", dir.display());
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 mid-upload leaves nothing behind
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_one_step_upload_leaves_no_book_and_no_spool_file() {
    let env = Env::new();
    let mut server = Server::start(&env, &["serve"]).await;
    let token = server.login("crash@example.com").await;

    let (_feed, request) = start_slow_multipart(&server, &token);
    wait_partial_file(&env.spool(), &server).await;
    server.kill9();
    request.abort();
    assert!(!files_in(&env.spool()).is_empty(), "the killed process should have left its partial spool file");
    drop(server);

    let server = Server::start(&env, &["serve"]).await;
    assert_empty(&env.spool(), "the upload spool");
    // The token from before the crash still works: the dev signing secret is kept in the hot dir.
    assert_eq!(server.book_count(&token).await, 0, "a killed upload must not leave a book");
    let r = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.wait_log("removed partial uploads left by a previous process").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_two_step_upload_leaves_nothing_half_visible() {
    let env = Env::new();
    let mut server = Server::start(&env, &["serve"]).await;
    let token = server.login("crash2@example.com").await;

    let r = server.client.post(server.url("/api/v1/books/upload_init")).bearer_auth(&token).json(&json!({ "filename": "two.txt" }));
    let body: Value = r.send().await.unwrap().json().await.unwrap();
    let url = body["data"]["upload_url"].as_str().unwrap_or_else(|| panic!("no upload_url in {body}")).to_string();
    let key = body["data"]["key"].as_str().unwrap().to_string();
    assert!(url.starts_with(&server.base), "embedded mode signs URLs to the server itself: {url}");

    let (feed, stream) = slow_body();
    for i in 0..48 {
        feed.unbounded_send(Ok(text_chunk(i))).unwrap();
    }
    let mut put = server.client.put(&url).body(stream);
    if let Some(headers) = body["data"]["headers"].as_object() {
        for (k, v) in headers {
            put = put.header(k, v.as_str().unwrap());
        }
    }
    let request = tokio::spawn(put.send());
    wait_partial_file(&env.blob_tmp(), &server).await;
    server.kill9();
    request.abort();
    drop(feed);
    drop(server);

    let server = Server::start(&env, &["serve"]).await;
    assert_empty(&env.blob_tmp(), "the blob store's temporary dir");
    assert!(!env.data().join("cold").join("objects").join(&key).exists(), "a partial PUT must not become the object {key}");
    assert_empty(&env.spool(), "the upload spool");
    assert_eq!(server.book_count(&token).await, 0);
    // Completing the interrupted upload must not conjure a book out of nothing.
    let r = server.client.post(server.url("/api/v1/books/upload_complete")).bearer_auth(&token).json(&json!({ "key": key }));
    let r = r.send().await.unwrap();
    assert!(!r.status().is_success(), "upload_complete after a killed PUT answered {}", r.status());
    assert_eq!(server.book_count(&token).await, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. SIGTERM finishes in-flight requests, refuses new ones, exits 0
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_upload_then_exits_zero() {
    let env = Env::new();
    let mut server = Server::start(&env, &["serve"]).await;
    let token = server.login("graceful@example.com").await;

    let (feed, request) = start_slow_multipart(&server, &token);
    wait_partial_file(&env.spool(), &server).await;
    server.sigterm();
    server.wait_log("shutting down").await;

    // The listener closes at once even though a request is still running.
    let started = Instant::now();
    while std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_ok() {
        assert!(started.elapsed() < DEADLINE, "new connections still accepted after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the process exited with a request in flight");

    // Finish the body: the request that was running when the signal came completes normally.
    feed.unbounded_send(Ok(text_chunk(99))).unwrap();
    feed.unbounded_send(Ok(multipart_tail())).unwrap();
    drop(feed);
    let response = request.await.unwrap().expect("the in-flight upload must get an answer");
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "in-flight upload after SIGTERM: {body}");
    assert_eq!(body["data"]["file_type"], "txt", "{body}");
    // Every byte sent after the signal was received too, not a truncated file.
    let sent: usize = (0..48).chain([99]).map(|i| text_chunk(i).len()).sum();
    assert_eq!(body["data"]["file_size"], sent as u64, "{body}");

    let exit = wait_bounded(&mut server.child, DEADLINE).expect("the process did not exit after SIGTERM");
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM:\n{}", server.log_text());
    assert!(std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err());
    drop(server);

    // What was acknowledged is durable.
    let server = Server::start(&env, &["serve"]).await;
    assert_eq!(server.book_count(&token).await, 1);
}

// ---------------------------------------------------------------------------------------------
// 3. CLI subcommands
// ---------------------------------------------------------------------------------------------

#[test]
fn init_creates_hot_cold_and_backup_dirs() {
    let env = Env::new();
    let (status, stdout, stderr) = env.run(&["init"]);
    assert!(status.success(), "init: {stderr}");
    for dir in [env.data().join("hot"), env.data().join("hot/tmp/uploads"), env.data().join("cold/objects"), env.backup()] {
        assert!(dir.is_dir(), "{} missing; init printed:\n{stdout}", dir.display());
    }
}

#[test]
fn migrate_is_idempotent_on_sqlite() {
    let env = Env::new();
    for round in 1..=2 {
        let (status, stdout, stderr) = env.run(&["migrate"]);
        assert!(status.success(), "migrate round {round}: {stderr}");
        assert!(stdout.contains("migrations applied (sqlite)"), "round {round}: {stdout}");
    }
}

#[test]
fn config_show_redacts_secrets() {
    let secrets = ["jwt-secret-value-0123456789abcdefghijklmnop", "db-password-4711", "minio-secret-key-0815"];
    let env = Env::new()
        .with("POWERSYNC_JWT_SECRET", secrets[0])
        .with("DATABASE_URL", &format!("postgres://athena:{}@127.0.0.1:5432/athena", secrets[1]))
        .with("MINIO_ENDPOINT", "http://127.0.0.1:9")
        .with("MINIO_ACCESS_KEY", "access")
        .with("MINIO_SECRET_KEY", secrets[2]);
    let (status, stdout, stderr) = env.run(&["config", "show"]);
    assert!(status.success(), "config show: {stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("config show is not JSON ({e}):\n{stdout}"));
    for s in secrets {
        assert!(!stdout.contains(s) && !stderr.contains(s), "secret {s:?} printed:\n{stdout}{stderr}");
    }
    let stars = stdout.matches("\"***\"").count();
    assert!(stars >= 3, "expected the three secrets as \"***\", got {stars}:\n{stdout}");
    assert!(shown.is_object());
}

#[test]
fn malformed_setting_exits_2_naming_it() {
    let env = Env::new().with("ATHENA_API_PORT", "abc");
    let (status, _, stderr) = env.run(&["serve"]);
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("ATHENA_API_PORT"), "stderr: {stderr}");
}

#[test]
fn production_without_secrets_names_the_missing_one() {
    let env = Env::new().with("ATHENA_MODE", "production");
    let (status, _, stderr) = env.run(&["serve"]);
    assert!(!status.success());
    assert!(stderr.contains("POWERSYNC_JWT_SECRET"), "stderr: {stderr}");
}

#[test]
fn development_mode_refuses_a_public_bind() {
    let env = Env::new().with("ATHENA_BIND", "0.0.0.0");
    let (status, _, stderr) = env.run(&["serve"]);
    assert!(!status.success(), "serve on 0.0.0.0 in development must be refused");
    assert!(stderr.contains("ATHENA_BIND") && stderr.contains("loopback"), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_makes_an_admin_who_can_log_in() {
    let env = Env::new();
    let (status, stdout, stderr) = env.run(&["admin", "create", "--email", "Admin@Example.com"]);
    assert!(status.success(), "admin create: {stderr}");
    assert!(stdout.contains("admin@example.com"), "emails are stored lowercased: {stdout}");

    let server = Server::start(&env, &["serve"]).await;
    let token = server.login("Admin@Example.com").await;
    let (status, me) = server.get_json(&token, "/api/v1/auth/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["role"], "admin", "{me}");
    assert_eq!(me["data"]["email"], "admin@example.com", "{me}");

    // A plain user is not an admin: the role comes from `admin create`, not from logging in.
    let other = server.login("reader@example.com").await;
    let (_, me) = server.get_json(&other, "/api/v1/auth/me").await;
    assert_ne!(me["data"]["role"], "admin", "{me}");
}

#[test]
fn storage_check_prints_ok() {
    let env = Env::new();
    let (status, stdout, stderr) = env.run(&["storage", "check"]);
    assert!(status.success(), "storage check: {stderr}");
    assert!(stdout.contains("storage ok"), "{stdout}");
}

#[test]
fn doctor_is_healthy_on_a_fresh_dir() {
    let env = Env::new();
    let (status, stdout, stderr) = env.run(&["doctor"]);
    assert!(status.success(), "doctor on a fresh dir:\n{stdout}{stderr}");
    assert!(stdout.trim_end().ends_with("healthy") && !stdout.contains("UNHEALTHY"), "{stdout}");
    let (status, stdout, _) = env.run(&["doctor", "--json"]);
    assert!(status.success());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["healthy"], true, "{report}");
}

#[test]
fn doctor_fails_naming_the_database_when_postgres_is_unreachable() {
    // Port 1 is closed: connecting is refused at once.
    let env = Env::new().with("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x");
    let (status, stdout, stderr) = env.run(&["doctor"]);
    assert!(!status.success(), "doctor must fail:\n{stdout}");
    assert!(stdout.contains("UNHEALTHY"), "{stdout}{stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failed.len() == 1 && failed[0].contains("database"), "expected exactly the database check to fail:\n{stdout}");
}

#[test]
fn serve_role_sync_alone_serves_the_sync_port_only() {
    let env = Env::new();
    let mut child =
        env.command(&["serve", "--role", "sync"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut roles = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["message"] == "listening" {
            roles.push(v["role"].as_str().unwrap_or("").to_string());
            if roles.len() == 2 {
                break;
            }
        }
        if v["level"] == "ERROR" {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    roles.sort();
    assert_eq!(roles, ["metrics", "sync"], "a sync-only process serves sync and metrics, not the API");
}

#[test]
fn serve_with_an_unknown_role_is_a_usage_error() {
    let env = Env::new();
    let (status, _, stderr) = env.run(&["serve", "--role", "x"]);
    assert_eq!(status.code(), Some(2), "clap usage errors exit 2: {stderr}");
    assert!(stderr.contains("unknown role `x`"), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_role_api_serves_without_the_worker() {
    let env = Env::new();
    let server = Server::start(&env, &["serve", "--role", "api"]).await;
    let token = server.login("api-only@example.com").await;
    assert_eq!(server.book_count(&token).await, 0);
    // The worker sweeps at start; with `--role api` it must not run at all.
    assert!(!server.log_text().contains("housekeeping sweep"), "the worker ran under --role api:\n{}", server.log_text());
}

// ---------------------------------------------------------------------------------------------
// 4. PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A database created for one test on the machine's PostgreSQL, dropped when the test ends.
/// PostgreSQL being down is a failure, not a skip.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("athena_cli_{}_{nanos}", std::process::id());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .output();
    }
}

fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql must be installed");
    assert!(out.status.success(), "psql {sql:?} failed (is PostgreSQL up on 127.0.0.1:5432?): {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn migrate_and_doctor_on_postgres() {
    let db = PgDatabase::create();
    let env = Env::new().with("DATABASE_URL", &db.url());
    for round in 1..=2 {
        let (status, stdout, stderr) = env.run(&["migrate"]);
        assert!(status.success(), "migrate round {round} on PostgreSQL: {stderr}");
        assert!(stdout.contains("migrations applied (postgres)"), "round {round}: {stdout}");
    }
    let books = psql(&db.name, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'books'");
    assert_eq!(books.trim(), "1", "migrate did not create the books table in {}", db.name);
    let (status, stdout, stderr) = env.run(&["doctor"]);
    assert!(status.success(), "doctor on PostgreSQL:\n{stdout}{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("OK") && l.contains("database") && l.contains("postgres")), "{stdout}");
    // Nothing went to the embedded database instead.
    assert!(!env.data().join("hot").join("athena.db").exists(), "SQLite was opened although DATABASE_URL is PostgreSQL");
}

// ---------------------------------------------------------------------------------------------
// 5. SMTP
// ---------------------------------------------------------------------------------------------

/// One mail the sink accepted: envelope recipients and the raw DATA.
#[derive(Debug)]
struct Mail {
    rcpt: Vec<String>,
    data: String,
}

/// A tiny SMTP server that speaks just enough of the protocol for lettre without TLS.
async fn smtp_sink() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Mail>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = tokio::io::BufReader::new(read);
                write.write_all(b"220 sink ESMTP\r\n").await?;
                let mut rcpt = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "MAIL" | "RSET" | "NOOP" => {
                            if verb == "MAIL" || verb == "RSET" {
                                rcpt.clear();
                            }
                            b"250 OK\r\n"
                        }
                        "RCPT" => {
                            rcpt.push(line.trim_end().to_string());
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            write.write_all(b"354 go ahead\r\n").await?;
                            let mut data = String::new();
                            while !data.ends_with("\r\n.\r\n") {
                                if lines.read_line(&mut data).await? == 0 {
                                    return Ok(());
                                }
                            }
                            let _ = tx.send(Mail { rcpt: std::mem::take(&mut rcpt), data });
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await?;
                            return Ok(());
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    write.write_all(reply).await?;
                }
            });
        }
    });
    (port, rx)
}

/// The body of a mail, decoded from base64 when that is its transfer encoding.
fn mail_body(data: &str) -> String {
    let (headers, body) = data.split_once("\r\n\r\n").unwrap_or(("", data));
    let body = body.trim_end_matches("\r\n.\r\n");
    if headers.to_ascii_lowercase().contains("content-transfer-encoding: base64") {
        use base64::Engine;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).unwrap()).unwrap()
    } else {
        // Quoted-printable soft line breaks would split the code; join them.
        body.replace("=\r\n", "")
    }
}

/// The first run of exactly six ASCII digits.
fn six_digits(text: &str) -> Option<String> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(5)).find_map(|i| {
        let run = &b[i..i + 6];
        let before = i.checked_sub(1).map(|j| b[j].is_ascii_digit()).unwrap_or(false);
        let after = b.get(i + 6).is_some_and(u8::is_ascii_digit);
        (run.iter().all(u8::is_ascii_digit) && !before && !after).then(|| text[i..i + 6].to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_mails_the_login_code_instead_of_returning_it() {
    let (port, mut mails) = smtp_sink().await;
    let env = Env::new()
        .with("SMTP_HOST", "127.0.0.1")
        .with("SMTP_PORT", &port.to_string())
        .with("SMTP_TLS", "none")
        .with("SMTP_FROM", "athena@example.com");
    let server = Server::start(&env, &["serve"]).await;

    let sent = server.send_code("mailed@example.com").await;
    assert!(sent["data"].get("dev_code").is_none_or(Value::is_null), "dev_code leaked with SMTP configured: {sent}");

    let mail = tokio::time::timeout(DEADLINE, mails.recv()).await.expect("no mail within the deadline").unwrap();
    assert!(mail.rcpt.iter().any(|r| r.contains("<mailed@example.com>")), "{mail:?}");
    let body = mail_body(&mail.data);
    let code = six_digits(&body).unwrap_or_else(|| panic!("no 6-digit code in the body:\n{body}"));

    let token = server.verify("mailed@example.com", &code).await;
    let (status, me) = server.get_json(&token, "/api/v1/auth/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["email"], "mailed@example.com");
}

/// The OCR models fetched by `scripts/fetch-models.sh` (the test command does it).
fn model_dir() -> PathBuf {
    let dir = std::env::var("ATHENA_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    assert!(dir.join("ppocr/det.onnx").exists(), "OCR models missing in {}: run scripts/fetch-models.sh", dir.display());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ocr_then_restart_finishes_the_job_once() {
    let env = Env::new()
        .with("ATHENA_MODEL_DIR", &model_dir().display().to_string())
        .with("ATHENA_SEMANTIC", "off")
        .with("ATHENA_JOB_LEASE_SECS", "2");
    let mut server = Server::start(&env, &["serve"]).await;
    let token = server.login("ann@example.com").await;
    let corpus = std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus");
    let pdf = std::fs::read(corpus.join("pdf/scanned-shijing.pdf")).unwrap();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(pdf).file_name("shijing.pdf"));
    let r = server.client.post(server.url("/api/v1/books")).bearer_auth(&token).multipart(form).send().await.unwrap();
    let book: Value = r.json().await.unwrap();
    let id = book["data"]["id"].as_str().unwrap().to_string();
    let r = server.client.post(server.url(&format!("/api/v1/books/{id}/ocr"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Kill the worker once it has recognised a page or two of the six.
    let started = Instant::now();
    loop {
        let (_, s) = server.get_json(&token, &format!("/api/v1/books/{id}/ocr/status")).await;
        let done = s["data"]["pages_done"].as_i64().unwrap_or(0);
        if done >= 1 {
            assert!(done < 6, "OCR finished before the kill; the test needs a slower book");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "OCR never started: {s}\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();

    // A new process takes the job over once the dead one's lease runs out, and finishes it.
    let server = Server::start(&env, &["serve"]).await;
    let started = Instant::now();
    loop {
        let (_, s) = server.get_json(&token, &format!("/api/v1/books/{id}/ocr/status")).await;
        if s["data"]["ocr_status"] == "completed" {
            break;
        }
        assert_ne!(s["data"]["ocr_status"], "failed", "{s}");
        assert!(started.elapsed() < Duration::from_secs(240), "OCR did not finish after restart: {s}\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for page in 1..=6 {
        let (status, p) = server.get_json(&token, &format!("/api/v1/books/{id}/ocr/page/{page}")).await;
        assert_eq!(status, 200, "page {page}: {p}");
        assert!(!p["data"]["text"].as_str().unwrap().is_empty(), "page {page}");
    }
    let layered = server.client.get(server.url(&format!("/api/v1/books/{id}/content"))).bearer_auth(&token).send().await.unwrap();
    assert!(layered.bytes().await.unwrap().starts_with(b"%PDF"));
    drop(server);
    // One job, run twice (the killed attempt and the one that finished); no duplicate.
    let (status, out, err) = env.run(&["jobs", "list", "--kind", "book.ocr", "--json"]);
    assert!(status.success(), "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(jobs[0]["state"], "succeeded");
    assert_eq!(jobs[0]["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_only_process_serves_queue_metrics() {
    let env = Env::new().with("ATHENA_WORKER_METRICS_PORT", "0");
    let mut child =
        env.command(&["serve", "--role", "worker"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            let f = v.get("fields").unwrap_or(&v);
            if f["message"] == "listening" && f["role"] == "metrics" {
                let _ = tx.send(f["addr"].as_str().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(DEADLINE).expect("the worker announces its metrics listener");
    let body = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    for queue in ["gpu_high", "gpu_low", "cpu_default"] {
        assert!(body.contains(&format!("athena_queue_depth{{queue=\"{queue}\"}} 0")), "{queue}:\n{body}");
    }
}
