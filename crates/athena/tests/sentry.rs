//! Sentry reporting through the real binary: with `SENTRY_DSN` pointing at a fake ingest endpoint (a tiny HTTP
//! listener here), an internal error of a handler arrives there as an envelope with the release, environment, route
//! template and request id, and without the user's token, email or the concrete path; client errors (4xx) send
//! nothing; with `SENTRY_DSN` unset reporting stays off, and a malformed one is refused without printing it.
//! (Panics: `athena-server`'s `error_report.rs` unit test.)

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_athena");
const DEADLINE: Duration = Duration::from_secs(30);

/// One request the fake ingest endpoint received: request line + headers, and the body.
#[derive(Debug)]
struct Received {
    head: String,
    body: String,
}

/// Accepts HTTP/1.1 POSTs (one per connection, as reqwest sends them here) and answers 200.
async fn fake_ingest() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                        let _ = tx.send(Received { head, body });
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

struct PgDatabase {
    name: String,
}

fn psql(database: &str, sql: &str) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql must be installed");
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl PgDatabase {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("athena_sentry_{}_{nanos}", std::process::id());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self { name }
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

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    db: PgDatabase,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(sentry_dsn: Option<&str>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = PgDatabase::create();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(["--role", "api"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATHENA_DATA_DIR", dir.path().join("data"))
            .env("ATHENA_BACKUP_DIR", dir.path().join("backups"))
            .env("DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{}", db.name))
            .env("ATHENA_API_PORT", "0")
            .env("ATHENA_LOG", "info")
            .current_dir(dir.path());
        if let Some(dsn) = sentry_dsn {
            cmd.env("SENTRY_DSN", dsn);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let addr = loop {
            let found = log.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening" && v["role"] == "api").then(|| v["addr"].as_str()?.parse::<SocketAddr>().ok()).flatten()
            });
            if let Some(addr) = found {
                break addr;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("athena serve exited ({status}):\n{}", log.lock().unwrap().join("\n"));
            }
            assert!(started.elapsed() < DEADLINE, "no listening line:\n{}", log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Server { child, base: format!("http://{addr}"), log, _dir: dir, db }
    }

    fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// Logs in, then breaks the database under the running server so that listing books is an internal error.
/// Returns (token, email, the 500's request id).
async fn internal_error(server: &Server, http: &reqwest::Client, check_4xx: impl AsyncFnOnce()) -> (String, String, String) {
    let email = "private.reader@example.com".to_string();
    let r: Value = http
        .post(format!("{}/api/v1/auth/email/send-code", server.base))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = r["data"]["dev_code"].as_str().unwrap().to_string();
    let r: Value = http
        .post(format!("{}/api/v1/auth/email/verify-code", server.base))
        .json(&json!({ "email": email, "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["data"]["tokens"]["access_token"].as_str().unwrap().to_string();
    let r = http.get(format!("{}/api/v1/books?limit=5", server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    check_4xx().await;
    // A real internal error: the table the handler reads is gone.
    psql(&server.db.name, "ALTER TABLE books RENAME TO books_gone");
    let r = http.get(format!("{}/api/v1/books?limit=5", server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "internal_error", "{body}");
    (token, email, request_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_reaches_sentry_without_user_content() {
    let (ingest, mut received) = fake_ingest().await;
    let server = Server::start(Some(&format!("http://publickey123@{ingest}/42"))).await;
    let http = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    let (token, email, request_id) = internal_error(&server, &http, async || {
        // Client errors are not reported.
        let r = http.get(format!("{}/api/v1/books", server.base)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = http.get(format!("{}/api/v1/nothing-here", server.base)).send().await.unwrap();
        assert_eq!(r.status(), 404);
    })
    .await;

    let got = tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("no envelope within 10 s").unwrap();
    assert!(got.head.starts_with("POST /api/42/envelope/ HTTP/1.1"), "{}", got.head);
    let head = got.head.to_ascii_lowercase();
    assert!(head.contains("x-sentry-auth: sentry sentry_version=7") && head.contains("sentry_key=publickey123"), "{}", got.head);
    let lines: Vec<&str> = got.body.lines().collect();
    assert_eq!(lines.len(), 3, "envelope header, item header, event: {}", got.body);
    let item: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(item["type"], "event");
    let event: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(event["level"], "error");
    assert_eq!(event["release"], format!("athena@{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(event["environment"], "development");
    assert_eq!(event["transaction"], "GET /api/v1/books");
    assert_eq!(event["tags"]["route"], "/api/v1/books");
    assert_eq!(event["tags"]["status"], "500");
    assert_eq!(event["tags"]["request_id"], request_id.as_str());
    assert_eq!(event["tags"]["roles"], "api");
    assert_eq!(event["exception"]["values"][0]["type"], "internal_error");
    let cause = event["exception"]["values"][0]["value"].as_str().unwrap();
    assert!(cause.contains("books"), "the internal cause is reported: {cause}");
    // Nothing about the user or the request's content.
    let local = email.split('@').next().unwrap();
    for secret in [token.as_str(), local, "limit=5", "Bearer", "authorization"] {
        assert!(!got.body.to_lowercase().contains(&secret.to_lowercase()), "{secret:?} leaked into the event: {}", got.body);
    }
    // The 401 and 404 before it sent nothing, and nothing else follows.
    assert!(tokio::time::timeout(Duration::from_secs(1), received.recv()).await.is_err(), "an unexpected second event");
    assert!(server.log_has("Sentry reporting on"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sentry_dsn_reporting_stays_off() {
    let server = Server::start(None).await;
    let http = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    internal_error(&server, &http, async || {}).await;
    // The error is logged as before; no reporter was started.
    let started = Instant::now();
    while !server.log_has("request failed") {
        assert!(started.elapsed() < DEADLINE, "the internal error was not logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.log_has("Sentry"), "{}", server.log.lock().unwrap().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_dsn_is_named_without_its_value_and_leaves_reporting_off() {
    let server = Server::start(Some("not-a-url-but-secret-7f3a")).await;
    let started = Instant::now();
    while !server.log_has("Sentry reporting is off") {
        assert!(started.elapsed() < DEADLINE, "{}", server.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.log_has("secret-7f3a"), "the DSN's value was logged");
    assert!(!server.log_has("Sentry reporting on"));
}
