//! `athena reindex` against the real binary: beside a running server (whose worker runs the jobs)
//! and alone (it opens the index and runs them itself), then `serve` answers from what it built.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_athena");
const DEADLINE: Duration = Duration::from_secs(60);

/// A fresh data dir; commands run with a cleared environment so no ATHENA_* variable leaks in.
struct Env {
    dir: tempfile::TempDir,
    /// A database of its own on the machine's PostgreSQL, dropped afterwards; None for SQLite.
    database: Option<(String, String)>,
}

fn pg_admin_url() -> String {
    std::env::var("ATHENA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql]).output().expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), database: None }
    }

    fn postgres() -> Self {
        let name = format!("athena_reindex_{}", uuid::Uuid::new_v4().simple());
        let admin = pg_admin_url();
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin.rsplit_once('/').expect("a database url");
        Self { dir: tempfile::tempdir().unwrap(), database: Some((name.clone(), format!("{base}/{name}"))) }
    }

    fn index_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("hot").join("index").join("tantivy")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATHENA_DATA_DIR", self.dir.path().join("data"))
            .env("ATHENA_BACKUP_DIR", self.dir.path().join("backups"))
            .env("ATHENA_API_PORT", "0")
            .env("POWERSYNC_PORT", "0")
            .env("ATHENA_METRICS_PORT", "0")
            .env("ATHENA_LOG", "info")
            .current_dir(self.dir.path());
        if let Some((_, url)) = &self.database {
            cmd.env("DATABASE_URL", url);
        }
        cmd
    }

    /// Runs a subcommand to completion (bounded): (status, stdout, stderr).
    fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let mut child = self.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let out = reader(child.stdout.take().unwrap());
        let err = reader(child.stderr.take().unwrap());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`athena {}` did not finish within {DEADLINE:?}: {}", args.join(" "), err.join().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
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

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((name, _)) = &self.database {
            let _ = Command::new("psql").args([&pg_admin_url(), "-qtAc", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]).output();
        }
    }
}

/// A running `athena serve`; its JSON log lines on stderr are kept.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Server {
    async fn start(env: &Env) -> Server {
        let mut child = env.command(&["serve"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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
            assert!(started.elapsed() < DEADLINE, "no `listening` line:\n{}", log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
        Server { child, base: format!("http://{addr}"), log, client }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    async fn search_health(&self) -> Value {
        let r = self.client.get(self.url("/health")).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        body["components"]["search"].clone()
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
        body["data"]["tokens"]["access_token"].as_str().unwrap_or_else(|| panic!("no token in {body}")).to_string()
    }

    /// The book ids of a search's hits.
    async fn search(&self, token: &str, q: &str) -> Vec<String> {
        let r = self.client.get(self.url("/api/v1/search")).query(&[("q", q)]).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "search {q}");
        let body: Value = r.json().await.unwrap();
        body["data"]["items"].as_array().unwrap().iter().filter_map(|h| h["book_id"].as_str().map(str::to_string)).collect()
    }

    /// SIGTERM, then waits for the process to exit (it releases the index as it goes).
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < DEADLINE, "serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// The API's address from its `listening` log line (fields may be flattened or under `fields`).
fn listening_addr(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    let field = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k))).and_then(Value::as_str).map(str::to_string);
    if field("message")? != "listening" || field("role").is_some_and(|r| r != "api") {
        return None;
    }
    field("addr")
}

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus")
}

async fn wait_for(what: &str, server: &Server, mut ok: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ok().await {
        assert!(started.elapsed() < DEADLINE, "{what} never happened:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_beside_a_server_and_alone() {
    let env = Env::new();
    let server = Server::start(&env).await;
    let token = server.login("ann@example.com").await;
    let epub = std::fs::read(corpus().join("zh/lunyu.epub")).unwrap();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(epub).file_name("lunyu.epub"));
    let r = server.client.post(server.url("/api/v1/books")).bearer_auth(&token).multipart(form).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap_or_else(|| panic!("upload: {body}")).to_string();
    wait_for("indexing after upload", &server, async || server.search(&token, "学而时习之").await.contains(&id)).await;

    // The server holds the index: the CLI queues the jobs and its worker runs them.
    let (status, out, err) = env.run(&["reindex"]);
    assert!(status.success(), "reindex beside serve: {err}");
    assert!(err.contains("held by a running server"), "{err}");
    assert!(err.contains("indexed 1/1"), "{err}");
    assert!(out.contains("indexed 1 books"), "{out}");
    let (status, _, err) = env.run(&["reindex", "--user", "nobody@example.com"]);
    assert!(!status.success(), "an unknown user is an error");
    assert!(err.contains("no user"), "{err}");
    server.stop();

    // Stopped, the index is lost: the CLI rebuilds it alone and marks it ready.
    for entry in std::fs::read_dir(env.index_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let (status, out, err) = env.run(&["reindex", "--user", "ann@example.com"]);
    assert!(status.success(), "reindex alone: {err}");
    assert!(!err.contains("held by a running server"), "{err}");
    assert!(err.contains("empty; indexing every book"), "{err}");
    assert!(err.contains("indexed 1/1"), "{err}");
    assert!(out.contains("indexed 1 books"), "{out}");
    let (status, _, err) = env.run(&["reindex", "--book", &uuid::Uuid::now_v7().to_string()]);
    assert!(!status.success(), "an unknown book is an error");
    assert!(err.contains("no live book"), "{err}");

    // `serve` finds a complete index: ready at once, and it answers.
    let server = Server::start(&env).await;
    let health = server.search_health().await;
    assert_eq!(health["status"], "ok", "{health}");
    let hits = server.search(&token, "学而时习之").await;
    assert!(!hits.is_empty() && hits.iter().all(|h| *h == id), "{hits:?}");
    server.stop();
}

/// On PostgreSQL the index is shared: `reindex` opens it beside a running server and runs the jobs
/// itself, and rebuilds what was lost from the tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_on_postgres_shares_the_index() {
    let env = Env::postgres();
    let server = Server::start(&env).await;
    let token = server.login("ann@example.com").await;
    let epub = std::fs::read(corpus().join("zh/lunyu.epub")).unwrap();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(epub).file_name("lunyu.epub"));
    let r = server.client.post(server.url("/api/v1/books")).bearer_auth(&token).multipart(form).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap_or_else(|| panic!("upload: {body}")).to_string();
    wait_for("indexing after upload", &server, async || server.search(&token, "学而时习之").await.contains(&id)).await;

    // The index's rows are lost; reindex beside the running server brings them back.
    let url = env.database.as_ref().unwrap().1.clone();
    psql(&url, "DELETE FROM search_chunks; DELETE FROM search_docs;");
    assert!(server.search(&token, "学而时习之").await.is_empty());
    let (status, out, err) = env.run(&["reindex"]);
    assert!(status.success(), "reindex on PostgreSQL: {err}");
    assert!(!err.contains("held by a running server"), "{err}");
    assert!(out.contains("indexed 1 books"), "{out}");
    let hits = server.search(&token, "学而时习之").await;
    assert!(!hits.is_empty() && hits.iter().all(|h| *h == id), "{hits:?}");
    assert!(env.index_dir().read_dir().is_err(), "no tantivy index is made on PostgreSQL");
    server.stop();
}
