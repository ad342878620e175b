//! Crash soak: `kill -9` of `athena serve` at random moments during a concurrent write load, 20
//! times on one SQLite data dir (and once on PostgreSQL). After every kill the server must come
//! back healthy and every write it acknowledged with a 2xx must still be there.
//!
//! The seed is printed; set `ATHENA_SOAK_SEED` to replay a run's kill moments.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_athena");
const DEADLINE: Duration = Duration::from_secs(30);
const BOUNDARY: &str = "athena-crash-soak-boundary";
const ROUNDS: usize = 20;

/// splitmix64: a small deterministic generator, so a printed seed replays the kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    match std::env::var("ATHENA_SOAK_SEED") {
        Ok(s) => s.parse().expect("ATHENA_SOAK_SEED must be a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    }
}

/// One data dir that every round's process reuses; the environment is cleared so no outside
/// DATABASE_URL or ATHENA_* variable leaks in.
struct Env {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(vars: &[(&str, &str)]) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        // API and sync only: a worker would start Calibre for each text upload, and a SIGKILL
        // orphans those subprocesses (the write path under test is the API's anyway).
        cmd.args(["serve", "--role", "api", "--role", "sync"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATHENA_DATA_DIR", self.dir.path().join("data"))
            .env("ATHENA_BACKUP_DIR", self.dir.path().join("backups"))
            .env("ATHENA_API_PORT", "0")
            .env("POWERSYNC_PORT", "0")
            .env("ATHENA_METRICS_PORT", "0")
            .env("ATHENA_LOG", "info")
            // Hundreds of uploads: far past the default 50-book quota.
            .env("ATHENA_QUOTA_BOOKS", "1000000")
            .current_dir(self.dir.path());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }
}

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Server {
    async fn start(env: &Env) -> Server {
        let mut child = env.command().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let mut server = Server { child, base: String::new(), log, client };
        let started = Instant::now();
        let addr = loop {
            let found = server.log.lock().unwrap().iter().find_map(|l| listening_addr(l));
            if let Some(addr) = found {
                break addr;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("athena serve exited early ({status}):\n{}", server.log_text());
            }
            assert!(started.elapsed() < DEADLINE, "no `listening` line within {DEADLINE:?}:\n{}", server.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.base = format!("http://{addr}");
        loop {
            if let Ok(r) = server.client.get(server.url("/health")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(started.elapsed() < DEADLINE, "/health never answered 200 within {DEADLINE:?}:\n{}", server.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn login(&self, email: &str) -> String {
        let r = self.client.post(self.url("/api/v1/auth/email/send-code")).json(&json!({ "email": email })).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        let code = body["data"]["dev_code"].as_str().unwrap_or_else(|| panic!("no dev_code in {body}")).to_string();
        let r = self
            .client
            .post(self.url("/api/v1/auth/email/verify-code"))
            .json(&json!({ "email": email, "code": code }))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        body["data"]["tokens"]["access_token"].as_str().unwrap_or_else(|| panic!("no access token in {body}")).to_string()
    }

    /// Every id of a paged list, following `next_cursor` to the end.
    async fn all_ids(&self, token: &str, path: &str) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut req = self.client.get(self.url(path)).bearer_auth(token).query(&[("limit", "200")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let r = req.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "GET {path}: {body}");
            for item in body["data"]["items"].as_array().unwrap_or_else(|| panic!("no items in {body}")) {
                assert!(ids.insert(item["id"].as_str().unwrap().to_string()), "{path} listed {} twice", item["id"]);
            }
            match body["data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return ids,
            }
        }
        panic!("{path}: more than 1000 pages");
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

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line).ok()?;
    let field = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k))).and_then(Value::as_str).map(str::to_string);
    if field("message")? != "listening" || field("role")? != "api" {
        return None;
    }
    field("addr")?.parse().ok()
}

/// Writes acknowledged with a 2xx, by the id the response named.
#[derive(Default)]
struct Acked {
    books: BTreeSet<String>,
    shelves: BTreeSet<String>,
}

fn text_file(tag: &str) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{tag}.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    );
    for i in 0..40 {
        body.push_str(&format!("{tag}, line {i}: It was a bright cold day in April, and the clocks were striking thirteen.\n"));
    }
    body.push_str(&format!("\r\n--{BOUNDARY}--\r\n"));
    body.into_bytes()
}

/// One writer: uploads (`uploads`) or shelf creations, in a loop until the server is gone.
async fn writer(client: reqwest::Client, base: String, token: String, tag: String, uploads: bool, acked: Arc<Mutex<Acked>>) {
    for i in 0.. {
        let name = format!("{tag}-{i}");
        let request = if uploads {
            client
                .post(format!("{base}/api/v1/books"))
                .bearer_auth(&token)
                .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
                .body(text_file(&name))
        } else {
            client.post(format!("{base}/api/v1/shelves")).bearer_auth(&token).json(&json!({ "name": name }))
        };
        let Ok(r) = request.send().await else { return };
        let status = r.status();
        // Only a complete 2xx answer naming the id counts as acknowledged.
        let Ok(body) = r.json::<Value>().await else { return };
        if status.is_success() {
            let id = body["data"]["id"].as_str().unwrap_or_else(|| panic!("{status} without an id: {body}")).to_string();
            let mut acked = acked.lock().unwrap();
            if uploads {
                acked.books.insert(id);
            } else {
                acked.shelves.insert(id);
            }
        } else {
            assert!(status.is_server_error() || status == 429, "write {name} refused with {status}: {body}");
        }
    }
}

/// Starts the server, checks every write acknowledged so far, then loads it and kills it.
async fn round(env: &Env, round: usize, rng: &mut Rng, token: &mut Option<String>, acked: &Arc<Mutex<Acked>>) {
    let mut server = Server::start(env).await;
    // One login for the whole soak (send-code is rate limited); the token outlives restarts
    // because the development signing secret is kept in the data dir.
    if token.is_none() {
        *token = Some(server.login("soak@example.com").await);
    }
    let token = token.clone().unwrap();
    verify(&server, &token, acked, round).await;

    let mut writers = Vec::new();
    for w in 0..4 {
        let tag = format!("r{round}w{w}");
        writers.push(tokio::spawn(writer(server.client.clone(), server.base.clone(), token.clone(), tag, w % 2 == 0, acked.clone())));
    }
    let after = rng.between(100, 700);
    tokio::time::sleep(Duration::from_millis(after)).await;
    server.kill9();
    for w in writers {
        tokio::time::timeout(Duration::from_secs(15), w).await.expect("a writer hung after the kill").unwrap();
    }
    let a = acked.lock().unwrap();
    eprintln!("round {round}: killed after {after} ms; acknowledged so far: {} books, {} shelves", a.books.len(), a.shelves.len());
}

async fn verify(server: &Server, token: &str, acked: &Arc<Mutex<Acked>>, round: usize) {
    let (books, shelves) = {
        let a = acked.lock().unwrap();
        (a.books.clone(), a.shelves.clone())
    };
    let listed_books = server.all_ids(token, "/api/v1/books").await;
    let lost: Vec<_> = books.difference(&listed_books).collect();
    assert!(lost.is_empty(), "round {round}: acknowledged uploads lost after kill -9: {lost:?}");
    let listed_shelves = server.all_ids(token, "/api/v1/shelves").await;
    let lost: Vec<_> = shelves.difference(&listed_shelves).collect();
    assert!(lost.is_empty(), "round {round}: acknowledged shelves lost after kill -9: {lost:?}");
}

async fn soak(env: &Env, rounds: usize, seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut token = None;
    for r in 1..=rounds {
        round(env, r, &mut rng, &mut token, &acked).await;
    }
    // The last restart: healthy, and everything acknowledged is there.
    let server = Server::start(env).await;
    let token = token.unwrap();
    verify(&server, &token, &acked, rounds + 1).await;
    let a = acked.lock().unwrap();
    (a.books.len(), a.shelves.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_no_acknowledged_write_sqlite() {
    let seed = seed();
    eprintln!("crash soak seed: {seed} (replay with ATHENA_SOAK_SEED={seed})");
    let started = Instant::now();
    let env = Env::new(&[]);
    let (books, shelves) = soak(&env, ROUNDS, seed).await;
    eprintln!("SQLite: {ROUNDS} kills, {books} books and {shelves} shelves acknowledged and kept, {:?}", started.elapsed());
    // A soak in which nothing was acknowledged would prove nothing.
    assert!(books > 0 && shelves > 0, "no write was acknowledged in {ROUNDS} rounds ({books} books, {shelves} shelves)");
}

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
        let name = format!("athena_soak_{}_{nanos}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        Self { url: format!("{server}/{name}"), admin, name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql").arg(&self.admin).arg("-c").arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").arg(url).args(["-v", "ON_ERROR_STOP=1", "-tAc", sql]).output().expect("psql must be installed");
    assert!(out.status.success(), "psql {sql:?} on {url} failed (is PostgreSQL up?): {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_no_acknowledged_write_postgres() {
    let seed = seed();
    eprintln!("crash soak seed: {seed} (replay with ATHENA_SOAK_SEED={seed})");
    let db = PgDatabase::create();
    let env = Env::new(&[("DATABASE_URL", &db.url)]);
    let (books, shelves) = soak(&env, 1, seed).await;
    eprintln!("PostgreSQL: 1 kill, {books} books and {shelves} shelves acknowledged and kept");
    assert!(!PathBuf::from(env.dir.path()).join("data/hot/athena.db").exists(), "SQLite was opened although DATABASE_URL is PostgreSQL");
    assert!(books + shelves > 0, "no write was acknowledged");
}
