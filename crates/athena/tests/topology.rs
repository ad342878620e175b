//! The production process topology without containers: `athena serve --role api`, `--role sync`
//! and `--role worker` as three processes on one PostgreSQL database and one S3 store, behind a
//! real nginx running the shipped `deploy/nginx/athena.conf`. A client talks only to nginx: it
//! logs in, uploads a book, sees the worker process make its cover, and syncs the book.
//!
//! Needs PostgreSQL (`ATHENA_TEST_DATABASE_URL`), S3 (`ATHENA_TEST_S3_*`, set by scripts/test.sh),
//! nginx and openssl (scripts/install-deps.sh) and the shared corpus.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_athena");
const DEADLINE: Duration = Duration::from_secs(30);
const SECRET: &str = "topology-test-signing-secret-0123456789abcdef";
const BOUNDARY: &str = "athena-topology-boundary";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> PathBuf {
    let from_env = std::env::var_os("ATHENA_CORPUS").map(PathBuf::from);
    for candidate in from_env.into_iter().chain([repo().join("../shared/corpus"), PathBuf::from("/work/shared/corpus")]) {
        if candidate.join("zh/lunyu.epub").exists() {
            return candidate;
        }
    }
    panic!("the shared corpus (zh/lunyu.epub) was not found: set ATHENA_CORPUS");
}

fn s3_env() -> [(&'static str, String); 4] {
    let get = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: this test needs an S3 store (scripts/test.sh starts SeaweedFS and sets ATHENA_TEST_S3_*)")
        })
    };
    [
        ("MINIO_ENDPOINT", get("ATHENA_TEST_S3_ENDPOINT")),
        ("MINIO_ACCESS_KEY", get("ATHENA_TEST_S3_ACCESS_KEY")),
        ("MINIO_SECRET_KEY", get("ATHENA_TEST_S3_SECRET_KEY")),
        ("MINIO_BUCKET", get("ATHENA_TEST_S3_BUCKET")),
    ]
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A fresh database on `ATHENA_TEST_DATABASE_URL`'s server, dropped at the end.
struct PgDatabase {
    admin: String,
    url: String,
    name: String,
}

impl PgDatabase {
    fn create() -> Self {
        let admin = std::env::var("ATHENA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let (server, _) = admin.rsplit_once('/').expect("ATHENA_TEST_DATABASE_URL has no database name");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("athena_topology_{}_{nanos}", std::process::id());
        let out = Command::new("psql")
            .arg(&admin)
            .args(["-v", "ON_ERROR_STOP=1", "-tAc", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql must be installed");
        assert!(out.status.success(), "CREATE DATABASE on {admin} failed (is PostgreSQL up?): {}", String::from_utf8_lossy(&out.stderr));
        Self { url: format!("{server}/{name}"), admin, name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql").arg(&self.admin).arg("-c").arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).output();
    }
}

// ---------------------------------------------------------------------------------------------
// The three athena processes
// ---------------------------------------------------------------------------------------------

/// One `athena serve --role …` process with its own data dir; killed when dropped.
struct Role {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Role {
    /// Starts the role and waits for the `listening` line of `announces` (the role whose port
    /// it serves: api, sync, or metrics for the worker).
    async fn start(name: &'static str, announces: &str, db: &str) -> Role {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--role", name])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATHENA_MODE", "development")
            .env("ATHENA_DATA_DIR", dir.path().join("data"))
            .env("ATHENA_BACKUP_DIR", dir.path().join("backups"))
            .env("DATABASE_URL", db)
            .env("POWERSYNC_JWT_SECRET", SECRET)
            .env("ATHENA_API_PORT", "0")
            .env("POWERSYNC_PORT", "0")
            .env("ATHENA_METRICS_PORT", "0")
            .env("ATHENA_WORKER_METRICS_PORT", "0")
            .env("ATHENA_LOG", "info")
            // Calibre refuses to start its Qt parts as root without an offscreen platform.
            .env("QT_QPA_PLATFORM", "offscreen")
            .current_dir(dir.path());
        for (k, v) in s3_env() {
            cmd.env(k, v);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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
            let found = log.lock().unwrap().iter().find_map(|l| listening_addr(l, announces));
            if let Some(addr) = found {
                break addr;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("athena serve --role {name} exited early ({status}):\n{}", log.lock().unwrap().join("\n"));
            }
            assert!(
                started.elapsed() < DEADLINE,
                "--role {name}: no `listening` line within {DEADLINE:?}:\n{}",
                log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Role { name, child, addr, log, _dir: dir }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- athena --role {} stderr ---\n{}", self.name, self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_addr(line: &str, role: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line).ok()?;
    let field = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k))).and_then(Value::as_str).map(str::to_string);
    if field("message")? != "listening" || field("role")? != role {
        return None;
    }
    field("addr")?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shipped nginx config with the upstreams pointed at the real processes, paths moved into a
/// temp dir, the listeners on free loopback ports and a self-signed certificate; killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    https: u16,
}

impl Nginx {
    fn start(api: SocketAddr, sync: SocketAddr, s3: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = d.to_str().unwrap().to_string();
        std::fs::create_dir_all(d.join("snippets")).unwrap();
        std::fs::create_dir_all(d.join("tls")).unwrap();
        let s3_host = s3.trim_start_matches("http://").trim_end_matches('/');
        let mut conf = std::fs::read_to_string(repo().join("deploy/nginx/athena.conf")).unwrap();
        let (http, https) = (free_port(), free_port());
        for (from, to) in [
            ("server api:48000;", format!("server {api};")),
            ("server sync:48090;", format!("server {sync};")),
            ("server seaweed:8333;", format!("server {s3_host};")),
            ("listen 80 default_server;", format!("listen 127.0.0.1:{http};")),
            ("listen 443 ssl http2 default_server;", format!("listen 127.0.0.1:{https} ssl http2;")),
        ] {
            assert!(conf.contains(from), "deploy/nginx/athena.conf no longer has `{from}`");
            conf = conf.replace(from, &to);
        }
        conf = conf.replace("/etc/nginx/", &format!("{root}/")).replace("/var/log/nginx/", &format!("{root}/"));
        std::fs::write(d.join("athena.conf"), conf).unwrap();
        let tls = std::fs::read_to_string(repo().join("deploy/nginx/athena-tls.conf")).unwrap().replace("/etc/nginx/", &format!("{root}/"));
        std::fs::write(d.join("snippets/athena-tls.conf"), tls).unwrap();
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(d.join("tls/privkey.pem"))
            .arg("-out")
            .arg(d.join("tls/fullchain.pem"))
            .output()
            .expect("openssl must be installed");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        // Like the nginx image's nginx.conf: the site is included inside `http`.
        let wrapper = format!(
            "error_log {root}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  \
             uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n  include {root}/athena.conf;\n}}\n"
        );
        std::fs::write(d.join("nginx.conf"), wrapper).unwrap();
        let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("nginx is not installed: scripts/install-deps.sh installs Debian's nginx");
        let child = Command::new(binary)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-g")
            .arg(format!("daemon off; pid {root}/nginx.pid;"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Nginx { child, dir, https }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nginx error.log ---\n{}", self.error_log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------------

async fn json_of(r: reqwest::Response, what: &str) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_sync_and_worker_processes_behind_nginx_on_postgres_and_s3() {
    let s3 = s3_env();
    let book_file = corpus().join("zh/lunyu.epub");
    let db = PgDatabase::create();
    let url = db.url.clone();
    // The API migrates the fresh database first; the other roles then start on a migrated schema.
    let api = Role::start("api", "api", &url).await;
    let (sync, worker) = tokio::join!(Role::start("sync", "sync", &url), Role::start("worker", "metrics", &url));
    let nginx = Nginx::start(api.addr, sync.addr, &s3[0].1);
    let base = format!("https://localhost:{}", nginx.https);
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).timeout(DEADLINE).build().unwrap();

    // nginx is ready once /health (the API's) answers through it.
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(started.elapsed() < DEADLINE, "/health never answered 200 through nginx:\n{}", nginx.error_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Log in through nginx.
    let email = "topology@example.com";
    let r = client.post(format!("{base}/api/v1/auth/email/send-code")).json(&json!({ "email": email })).send().await.unwrap();
    let body = json_of(r, "send-code").await;
    let code = body["data"]["dev_code"].as_str().unwrap_or_else(|| panic!("no dev_code in {body}")).to_string();
    let r =
        client.post(format!("{base}/api/v1/auth/email/verify-code")).json(&json!({ "email": email, "code": code })).send().await.unwrap();
    let body = json_of(r, "verify-code").await;
    let token = body["data"]["tokens"]["access_token"].as_str().unwrap_or_else(|| panic!("no access token in {body}")).to_string();

    // Upload a real EPUB through nginx to the API process.
    let bytes = std::fs::read(&book_file).unwrap();
    let mut multipart = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"lunyu.epub\"\r\nContent-Type: application/epub+zip\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(&bytes);
    multipart.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let r = client
        .post(format!("{base}/api/v1/books"))
        .bearer_auth(&token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart)
        .send()
        .await
        .unwrap();
    let body = json_of(r, "upload lunyu.epub").await;
    let book_id = body["data"]["id"].as_str().unwrap_or_else(|| panic!("no book id in {body}")).to_string();

    // The worker process (the only one running jobs) processes the book. The API already stores
    // an EPUB's embedded cover at upload, so `has_cover` alone would not prove the worker ran: wait
    // for its metadata and text-extraction jobs to succeed as well.
    let started = Instant::now();
    let status = loop {
        let r = client.get(format!("{base}/api/v1/books/{book_id}/processing/status")).bearer_auth(&token).send().await.unwrap();
        let status = json_of(r, "processing status").await;
        let data = &status["data"];
        let jobs = data["jobs"].as_array().cloned().unwrap_or_default();
        assert!(!jobs.iter().any(|j| j["state"] == "dead"), "a job died: {status}\n--- worker ---\n{}", worker.log_text());
        let succeeded = |kind: &str| jobs.iter().any(|j| j["kind"] == kind && j["state"] == "succeeded");
        if data["has_cover"] == true && data["text_status"] == "extracted" && succeeded("book.metadata") && succeeded("book.extract") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker did not process the book within 60 s: {status}\n--- worker ---\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let processed_in = started.elapsed();
    assert!(
        !api.log_text().contains("housekeeping sweep") && !sync.log_text().contains("housekeeping sweep"),
        "only the worker process may run the worker role"
    );

    // Sync through nginx's /powersync/ prefix to the sync process.
    let r = client.get(format!("{base}/powersync/write-checkpoint2.json?client_id=x")).bearer_auth(&token).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{:?}", r.headers());
    let body = json_of(r, "write-checkpoint2.json").await;
    assert!(body["data"]["write_checkpoint"].is_string(), "no write checkpoint in {body}");

    let r = client
        .post(format!("{base}/powersync/sync/stream"))
        .bearer_auth(&token)
        .json(&json!({ "buckets": [], "include_checksum": true, "raw_data": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "sync/stream through nginx");
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let mut stream = r.bytes_stream();
    let mut buf = Vec::new();
    let mut lines: Vec<Value> = Vec::new();
    let read = async {
        // Lines up to the data line that carries the book.
        while !lines.iter().any(|l| l.get("data").is_some() && l.to_string().contains(&book_id)) {
            let Some(chunk) = stream.next().await else { break };
            buf.extend_from_slice(&chunk.unwrap());
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if line.len() > 1 {
                    lines.push(serde_json::from_slice(&line[..line.len() - 1]).unwrap());
                }
            }
        }
    };
    let in_time = tokio::time::timeout(DEADLINE, read).await.is_ok();
    let first = lines.first().unwrap_or_else(|| panic!("no NDJSON line within {DEADLINE:?}"));
    let checkpoint = first.get("checkpoint").unwrap_or_else(|| panic!("the first line is not a checkpoint: {first}"));
    let buckets = checkpoint["buckets"].as_array().unwrap_or_else(|| panic!("a checkpoint without buckets: {first}"));
    assert!(buckets.iter().any(|b| b["count"].as_i64().unwrap_or(0) > 0), "the checkpoint names no rows: {first}");
    assert!(
        in_time && lines.iter().any(|l| l.get("data").is_some() && l.to_string().contains(&book_id)),
        "the book {book_id} never arrived on the sync stream within {DEADLINE:?}; lines: {lines:?}"
    );
    drop(stream);
    eprintln!("processed in {processed_in:?}: {status}\nsync stream: {} lines up to the book, first: {first}", lines.len());

    // Drop order: nginx, then the processes, then the database.
    drop(nginx);
    drop((api, sync, worker));
    drop(db);
}
