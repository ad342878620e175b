//! Every command of the runbook (`docs/OPERATIONS.md`) runs here, in the order the runbook gives them, against a
//! real `athena` on PostgreSQL with a temporary data dir.
//!
//! The test reads the fenced `bash` blocks and classifies each command:
//! - `athena …`, `psql …`, `curl …`, `ss …` (and pipes of them into `grep`/`jq`) run through `bash -o pipefail`,
//!   also when wrapped in `docker compose exec SERVICE …` or `docker compose run --rm backup|migrate …`; each must
//!   exit 0 and print what [`EXPECTED`] says;
//! - `docker compose up` / `stop` / `down` / `restart` and `athena serve` start and stop the test's server;
//! - the rest of `docker …` (build, ps, logs, stats, the nginx and SeaweedFS containers) and lines whose comment
//!   starts with `compose only:` need the compose stack and are skipped with their reason (`deploy_files.rs`
//!   validates the compose files);
//! - anything else fails the test: a new command in the runbook comes with its check here.
//!
//! Documented values are replaced in a fixed way: the ports 48000 / 48090 / 49091 by the server's (asked for as 0),
//! `-U athena -d athena` by the test's database, `<ID>` by a job of the scenario and `<NAME>` by the newest backup set.
//! Where a troubleshooting section describes a symptom, the test first produces it (see [`Runbook::symptom`]).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_athena");
/// Upper bound for one command or one server start.
const DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Reading the runbook
// ---------------------------------------------------------------------------------------------

/// One command line of a fenced block, with the section it is in and its trailing comment.
#[derive(Debug, Clone)]
struct DocCommand {
    section: String,
    line: usize,
    text: String,
    comment: String,
}

/// Splits `s` at the first `#` that starts a shell comment (outside quotes, at the start or after whitespace).
/// `None` when a quote is still open at the end (the command goes on on the next line).
fn split_comment(s: &str) -> Option<(&str, &str)> {
    let (mut single, mut double) = (false, false);
    let mut prev_space = true;
    for (i, c) in s.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return Some((s[..i].trim_end(), s[i + 1..].trim())),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    (!single && !double).then(|| (s.trim_end(), ""))
}

/// Splits at top-level `&&` (outside quotes).
fn split_and(s: &str) -> Vec<String> {
    let (mut single, mut double) = (false, false);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '&' if !single && !double && chars.peek() == Some(&'&') => {
                chars.next();
                parts.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current.trim().to_string());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Every command of every `bash`/`sh` block, in document order. Continuation lines (`\`) and quoted strings that
/// span lines are joined; comment-only lines are dropped.
fn commands(doc: &str) -> Vec<DocCommand> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut in_block = false;
    let mut shell_block = false;
    let mut pending: Option<(usize, String, bool)> = None;
    for (i, raw) in doc.lines().enumerate() {
        let line_no = i + 1;
        if let Some(info) = raw.trim_start().strip_prefix("```") {
            if in_block {
                assert!(pending.is_none(), "line {line_no}: a block ends inside a command");
                in_block = false;
            } else {
                in_block = true;
                shell_block = matches!(info.trim(), "bash" | "sh" | "shell" | "console");
            }
            continue;
        }
        if !in_block {
            if raw.starts_with('#') {
                section = raw.trim_start_matches('#').trim().to_string();
            }
            continue;
        }
        if !shell_block {
            continue;
        }
        // A pending command goes on: after a trailing backslash with a space, inside a quoted string with the newline.
        let (start, text) = match pending.take() {
            Some((start, mut text, in_quotes)) => {
                if in_quotes {
                    text.push('\n');
                    text.push_str(raw);
                } else {
                    text.push(' ');
                    text.push_str(raw.trim_start());
                }
                (start, text)
            }
            None => (line_no, raw.to_string()),
        };
        let Some((cmd, comment)) = split_comment(&text) else {
            pending = Some((start, text, true));
            continue;
        };
        if let Some(head) = cmd.strip_suffix('\\') {
            pending = Some((start, head.trim_end().to_string(), false));
            continue;
        }
        if cmd.trim().is_empty() {
            continue;
        }
        out.push(DocCommand { section: section.clone(), line: start, text: cmd.trim().to_string(), comment: comment.to_string() });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Start,
    Stop,
    Restart,
    /// A shell command line to run (documented form, before substitution).
    Run(String),
    Skip(String),
}

/// What a command must print (all of these, after substitution), by the command's start. Longest match wins.
const EXPECTED: &[(&str, &[&str])] = &[
    ("athena init", &["/hot", "/cold"]),
    ("athena migrate", &["migrations applied (postgres)"]),
    // Secrets print redacted: the database URL is set, and shown as stars.
    ("athena config show", &["\"database_url\": \"***\"", "\"data_dir\": \""]),
    // The test's server keeps objects in local files: no S3 settings.
    ("athena config show | jq .s3", &["null"]),
    ("athena doctor", &["healthy", "database"]),
    ("athena jobs list", &["QUEUE", "gpu_high", "cpu_default"]),
    ("athena jobs list --queue gpu_high", &["QUEUE", "gpu_high"]),
    ("athena jobs list --queue gpu_high --state running", &["QUEUE", "gpu_high"]),
    ("athena jobs list --kind book.index", &["book.index", "succeeded"]),
    ("athena jobs show <ID>", &["\"id\": \"<ID>\"", "\"kind\": \"book.ocr\""]),
    ("athena jobs cancel <ID>", &["\"id\": \"<ID>\"", "\"state\": \"cancelled\""]),
    ("athena jobs retry <ID>", &["\"id\": \"<ID>\"", "\"state\": \"queued\""]),
    ("athena admin create --email you@example.com", &["admin: you@example.com"]),
    ("athena backup create", &["backup athena_", "written"]),
    ("athena backup list", &["NAME", "athena_", "postgres"]),
    ("athena backup verify <NAME>", &["backup <NAME> verified"]),
    ("athena backup restore <NAME> --force", &["backup <NAME> restored"]),
    ("athena storage check", &["storage ok"]),
    ("athena reindex", &["indexed"]),
    ("psql -U athena -d athena -c", &[]),
    ("psql -U athena -d athena", &[]),
    ("curl http://localhost:48000/health", &["\"status\":\"ok\"", "\"database\""]),
    ("curl -fsS http://localhost:48000/health", &["\"status\":\"ok\""]),
    ("curl http://localhost:48090/health", &["ok"]),
    ("curl -s http://127.0.0.1:48000/health | jq .components.search", &["\"status\": \"ok\""]),
    ("curl -s http://127.0.0.1:48000/health | jq .components.backup", &["\"status\":"]),
    ("curl -s http://127.0.0.1:49091/metrics | grep powersync", &["powersync_"]),
    ("curl -s http://127.0.0.1:49091/metrics | grep -E 'powersync_", &["powersync_upload_queue_size "]),
    ("curl -s http://127.0.0.1:48000/metrics | grep athena_db_pool_connections", &["athena_db_pool_connections{state=\"max\"}"]),
    ("curl -s http://127.0.0.1:48000/metrics | grep athena_http_request_duration_seconds_sum", &["route="]),
    ("curl -s http://127.0.0.1:48000/metrics | grep athena_backup_age_seconds", &["athena_backup_age_seconds "]),
    ("ss -tln | grep -E", &["127.0.0.1:"]),
];

/// Why a `docker` command that the test cannot mirror is skipped, by subcommand.
fn docker_only(sub: &str, rest: &[&str]) -> Option<String> {
    let reason = match sub {
        "build" => "builds the image; the test runs the binary cargo built",
        "ps" => "container states; the test checks its server through /health instead",
        "logs" => "container logs; the test's server logs to its stderr",
        "stats" => "container resource use",
        "system" => "Docker's own disk use and cleanup",
        "exec" => match rest.first().copied() {
            Some("seaweed") => "inside the SeaweedFS container (its S3 API is covered by the S3 suites)",
            Some("nginx") => "inside the nginx container (deploy_files.rs runs nginx -t on deploy/nginx and routes through it)",
            _ => return None,
        },
        _ => return None,
    };
    Some(format!("docker {sub}: {reason}"))
}

fn classify(cmd: &DocCommand, part: &str) -> Result<Step, String> {
    if let Some(reason) = cmd.comment.strip_prefix("compose only:") {
        return Ok(Step::Skip(format!("compose only:{reason}")));
    }
    let words: Vec<&str> = part.split_whitespace().collect();
    match words.first().copied() {
        Some("docker") => {
            // Drop `compose`, `-f FILE` and `-p NAME` to reach the subcommand.
            let mut rest = &words[1..];
            if rest.first() == Some(&"compose") {
                rest = &rest[1..];
            }
            while let [flag, _, tail @ ..] = rest {
                if *flag == "-f" || *flag == "-p" {
                    rest = tail;
                } else {
                    break;
                }
            }
            let (sub, args) = rest.split_first().ok_or_else(|| format!("bare docker command {part:?}"))?;
            match *sub {
                "up" => Ok(Step::Start),
                "stop" | "down" => Ok(Step::Stop),
                "restart" => Ok(Step::Restart),
                "exec" => {
                    let inner = args.get(1..).unwrap_or_default();
                    match inner.first().copied() {
                        Some("athena") | Some("psql") => Ok(Step::Run(rejoin(part, inner[0]))),
                        _ => docker_only(sub, args).map(Step::Skip).ok_or_else(|| format!("unknown container command {part:?}")),
                    }
                }
                "run" => match args {
                    // The backup service is the athena image with `backup create` as its default command.
                    ["--rm", "backup"] => Ok(Step::Run("athena backup create".into())),
                    ["--rm", "backup", rest @ ..] => Ok(Step::Run(format!("athena {}", rest.join(" ")))),
                    ["--rm", "migrate"] => Ok(Step::Run("athena migrate".into())),
                    _ => Err(format!("unknown one-off container {part:?}")),
                },
                _ => docker_only(sub, args).map(Step::Skip).ok_or_else(|| format!("unknown docker command {part:?}")),
            }
        }
        Some("athena") if words.get(1) == Some(&"serve") => Ok(Step::Restart),
        Some("athena" | "psql" | "curl" | "ss") => Ok(Step::Run(part.to_string())),
        _ => Err(format!("a command the runbook test does not know: {part:?}")),
    }
}

/// The rest of `part` from the first occurrence of the word `from` (keeps the original quoting and newlines).
fn rejoin(part: &str, from: &str) -> String {
    let i = part.find(&format!(" {from} ")).map(|i| i + 1).or_else(|| part.find(&format!(" {from}")).map(|i| i + 1)).unwrap_or(0);
    part[i..].to_string()
}

/// The expectation whose key is the longest prefix of `cmd`.
fn expected(cmd: &str) -> Option<(&'static str, &'static [&'static str])> {
    let normal: String = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
    EXPECTED.iter().filter(|(k, _)| normal.starts_with(k)).max_by_key(|(k, _)| k.len()).copied()
}

// ---------------------------------------------------------------------------------------------
// The server and the data it serves
// ---------------------------------------------------------------------------------------------

struct PgDatabase {
    name: String,
}

fn psql_admin(sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql must be installed");
    assert!(out.status.success(), "psql {sql:?} failed (is PostgreSQL up on 127.0.0.1:5432?): {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PgDatabase {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("athena_runbook_{}_{nanos}", std::process::id());
        psql_admin(&format!("CREATE DATABASE {name}"));
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

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS)")
}

fn model_dir() -> PathBuf {
    let dir = std::env::var("ATHENA_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    assert!(dir.join("ppocr/det.onnx").exists(), "OCR models missing in {}: run scripts/fetch-models.sh", dir.display());
    dir
}

/// Where a running server listens.
#[derive(Debug, Clone, Copy)]
struct Ports {
    api: SocketAddr,
    sync: SocketAddr,
    metrics: SocketAddr,
}

struct Server {
    child: Child,
    ports: Ports,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening(line: &str) -> Option<(String, SocketAddr)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let f = v.get("fields").unwrap_or(&v);
    if f.get("message")?.as_str()? != "listening" {
        return None;
    }
    Some((f.get("role")?.as_str()?.to_string(), f.get("addr")?.as_str()?.parse().ok()?))
}

struct Runbook {
    dir: tempfile::TempDir,
    db: PgDatabase,
    server: Option<Server>,
    /// Roles of the next start; empty: all of them.
    roles: Vec<&'static str>,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    token: Option<String>,
    job: Option<String>,
    symptoms_done: BTreeSet<String>,
}

impl Runbook {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            db: PgDatabase::create(),
            server: None,
            roles: Vec::new(),
            rt: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
            http: reqwest::Client::builder().timeout(DEADLINE).build().unwrap(),
            token: None,
            job: None,
            symptoms_done: BTreeSet::new(),
        }
    }

    /// The environment of the server and of every command: a cleared one, so that the developer's variables cannot
    /// leak in, with `athena` first on PATH.
    fn command(&self, program: &str) -> Command {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", path)
            .env("LANG", "C.UTF-8")
            .env("HOME", self.dir.path())
            .env("ATHENA_DATA_DIR", self.dir.path().join("data"))
            .env("ATHENA_BACKUP_DIR", self.dir.path().join("backups"))
            .env("DATABASE_URL", self.db.url())
            .env("ATHENA_MODEL_DIR", model_dir())
            .env("ATHENA_API_PORT", "0")
            .env("POWERSYNC_PORT", "0")
            .env("ATHENA_METRICS_PORT", "0")
            .env("ATHENA_LOG", "info")
            .env("ATHENA_JOB_LEASE_SECS", "5")
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", "5432")
            .current_dir(self.dir.path());
        cmd
    }

    fn start(&mut self) {
        if self.server.is_some() {
            return;
        }
        let mut args = vec!["serve".to_string()];
        for r in &self.roles {
            args.push("--role".into());
            args.push(r.to_string());
        }
        let mut child = self.command(BIN).args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let ports = loop {
            let found: Vec<(String, SocketAddr)> = log.lock().unwrap().iter().filter_map(|l| listening(l)).collect();
            let get = |role: &str| found.iter().find(|(r, _)| r == role).map(|(_, a)| *a);
            if let (Some(api), Some(sync), Some(metrics)) = (get("api"), get("sync"), get("metrics")) {
                break Ports { api, sync, metrics };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("athena serve exited ({status}):\n{}", log.lock().unwrap().join("\n"));
            }
            assert!(started.elapsed() < DEADLINE, "athena serve did not listen:\n{}", log.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = Server { child, ports, log };
        let url = format!("http://{}/health", ports.api);
        let http = self.http.clone();
        self.rt.block_on(async {
            loop {
                if let Ok(r) = http.get(&url).send().await {
                    if r.status() == 200 {
                        return;
                    }
                }
                assert!(started.elapsed() < DEADLINE, "/health never answered 200:\n{}", server.log.lock().unwrap().join("\n"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        self.server = Some(server);
        if self.token.is_none() {
            self.seed_library();
        }
    }

    /// SIGTERM and wait, as `docker compose stop` does.
    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
            assert!(status.success());
            let started = Instant::now();
            while server.child.try_wait().unwrap().is_none() {
                assert!(started.elapsed() < DEADLINE, "athena serve did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.as_ref().expect("a running server").ports.api)
    }

    /// A user with a book, so that backups, restores and metrics have something to carry.
    fn seed_library(&mut self) {
        let (http, send, verify, books) = (
            self.http.clone(),
            self.api("/api/v1/auth/email/send-code"),
            self.api("/api/v1/auth/email/verify-code"),
            self.api("/api/v1/books"),
        );
        let token = self.rt.block_on(async move {
            let email = "reader@example.com";
            let r: Value = http.post(&send).json(&json!({ "email": email })).send().await.unwrap().json().await.unwrap();
            let code = r["data"]["dev_code"].as_str().unwrap_or_else(|| panic!("no dev_code: {r}")).to_string();
            let r: Value = http.post(&verify).json(&json!({ "email": email, "code": code })).send().await.unwrap().json().await.unwrap();
            let token = r["data"]["tokens"]["access_token"].as_str().unwrap().to_string();
            let epub = std::fs::read(corpus().join("epub/wasteland.epub")).unwrap();
            let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(epub).file_name("wasteland.epub"));
            let r = http.post(&books).bearer_auth(&token).multipart(form).send().await.unwrap();
            assert!(r.status().is_success(), "upload: {}", r.text().await.unwrap());
            token
        });
        self.token = Some(token);
    }

    fn book_titles(&self) -> Vec<String> {
        let (http, url, token) = (self.http.clone(), self.api("/api/v1/books"), self.token.clone().unwrap());
        self.rt.block_on(async move {
            let r: Value = http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
            r["data"]["items"]
                .as_array()
                .unwrap_or_else(|| panic!("{r}"))
                .iter()
                .map(|b| b["title"].as_str().unwrap_or("").to_string())
                .collect()
        })
    }

    /// Produces the symptom a troubleshooting section starts from, the first time a command of it runs.
    fn symptom(&mut self, section: &str) {
        if !self.symptoms_done.insert(section.to_string()) {
            return;
        }
        if section == "OCR queue stuck or growing" {
            // No worker running, and a scanned book waiting for OCR: the job stays queued on gpu_high.
            self.stop();
            self.roles = vec!["api", "sync"];
            self.start();
            let (http, books, token) = (self.http.clone(), self.api("/api/v1/books"), self.token.clone().unwrap());
            let base = self.api("");
            let id = self.rt.block_on(async move {
                let pdf = std::fs::read(corpus().join("pdf/scanned-shijing.pdf")).unwrap();
                let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(pdf).file_name("shijing.pdf"));
                let r: Value = http.post(&books).bearer_auth(&token).multipart(form).send().await.unwrap().json().await.unwrap();
                let id = r["data"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
                let r = http.post(format!("{base}/api/v1/books/{id}/ocr")).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                id
            });
            let out = self.command(BIN).args(["jobs", "list", "--queue", "gpu_high", "--json"]).output().unwrap();
            let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
            let job = listed["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["kind"] == "book.ocr" && j["state"] == "queued")
                .unwrap_or_else(|| panic!("no queued OCR job for {id}: {listed}"));
            self.job = Some(job["id"].as_str().unwrap().to_string());
            // The runbook's `restart worker` brings the worker back.
            self.roles = Vec::new();
        }
    }

    /// The documented command with the test's values in place of the documented ones.
    fn substitute(&self, text: &str) -> String {
        let mut s = text.to_string();
        if let Some(server) = &self.server {
            let p = server.ports;
            for host in ["localhost", "127.0.0.1"] {
                s = s
                    .replace(&format!("{host}:48000"), &format!("127.0.0.1:{}", p.api.port()))
                    .replace(&format!("{host}:48090"), &format!("127.0.0.1:{}", p.sync.port()))
                    .replace(&format!("{host}:49091"), &format!("127.0.0.1:{}", p.metrics.port()));
            }
            // `ss | grep -E ':(48000|48090|49091|…) '`: the ports as a list.
            s = s
                .replace("(48000|", &format!("({}|", p.api.port()))
                .replace("|48090|", &format!("|{}|", p.sync.port()))
                .replace("|49091|", &format!("|{}|", p.metrics.port()));
        }
        s = s.replace("-U athena -d athena", &format!("-U postgres -d {}", self.db.name));
        if s.contains("<ID>") {
            s = s.replace("<ID>", self.job.as_deref().expect("<ID> outside a section that made a job"));
        }
        if s.contains("<NAME>") {
            s = s.replace("<NAME>", &self.newest_backup());
        }
        s
    }

    fn newest_backup(&self) -> String {
        let out = self.command(BIN).args(["backup", "list", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let sets: Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<&str> = sets.as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
        names.last().unwrap_or_else(|| panic!("<NAME> before any backup set exists: {sets}")).to_string()
    }

    /// Runs one command line through bash with pipefail; returns stdout.
    fn run(&self, cmd: &DocCommand, documented: &str) -> String {
        let (key, wanted) =
            expected(documented).unwrap_or_else(|| panic!("line {}: no expected output for {documented:?}: add it to EXPECTED", cmd.line));
        let line = self.substitute(documented);
        let started = Instant::now();
        let mut child = self
            .command("bash")
            .args(["-o", "pipefail", "-c", &line])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
        let err = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("line {}: {line:?} did not finish within {DEADLINE:?}", cmd.line);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        let context = || {
            let log = self.server.as_ref().map(|s| s.log.lock().unwrap().iter().rev().take(30).cloned().collect::<Vec<_>>().join("\n"));
            format!(
                "line {} ({}): {line}\n--- stdout\n{out}\n--- stderr\n{err}\n--- server log (newest first)\n{}",
                cmd.line,
                cmd.section,
                log.unwrap_or_default()
            )
        };
        assert!(status.success(), "exited with {status}\n{}", context());
        assert!(!out.trim().is_empty() || documented.starts_with("psql") && !documented.contains(" -c"), "printed nothing\n{}", context());
        for w in wanted {
            let w = self.substitute(w);
            assert!(out.contains(&w), "expected {w:?} (rule {key:?})\n{}", context());
        }
        eprintln!("ran   {:>4} ms  {line}", started.elapsed().as_millis());
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

fn runbook_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/OPERATIONS.md")).unwrap()
}

/// The classification alone: fast, and it names every command the runbook test would not know.
#[test]
fn every_runbook_command_is_known() {
    let doc = runbook_text();
    let cmds = commands(&doc);
    assert!(cmds.len() > 60, "the parser found only {} commands", cmds.len());
    let mut unknown = Vec::new();
    let mut unchecked = Vec::new();
    let mut used = BTreeSet::new();
    for c in &cmds {
        for part in split_and(&c.text) {
            match classify(c, &part) {
                Ok(Step::Run(run)) => match expected(&run) {
                    Some((key, _)) => {
                        used.insert(key);
                    }
                    None => unchecked.push(format!("line {}: {run}", c.line)),
                },
                Ok(_) => {}
                Err(e) => unknown.push(format!("line {}: {e}", c.line)),
            }
        }
    }
    assert!(unknown.is_empty(), "commands the runbook test cannot run:\n{}", unknown.join("\n"));
    assert!(unchecked.is_empty(), "commands without an expected output in EXPECTED:\n{}", unchecked.join("\n"));
    let stale: Vec<_> = EXPECTED.iter().map(|(k, _)| *k).filter(|k| !used.contains(k)).collect();
    assert!(stale.is_empty(), "EXPECTED rules no runbook command uses any more: {stale:?}");
}

#[test]
fn the_parser_joins_continuations_and_quoted_lines_and_drops_comments() {
    let doc = "## S\n```bash\n# only a comment\npsql -c \\\n  \"SELECT 1\n   FROM t;\"   # why\ncurl -s x | grep y  # compose only: nginx's, because\n```\n```yaml\nnot: a command\n```\n";
    let cmds = commands(doc);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0].text, "psql -c \"SELECT 1\n   FROM t;\"");
    assert_eq!(cmds[0].comment, "why");
    assert_eq!(cmds[1].section, "S");
    assert_eq!(classify(&cmds[1], &cmds[1].text), Ok(Step::Skip("compose only: nginx's, because".into())));
    let c = DocCommand { section: String::new(), line: 1, text: String::new(), comment: String::new() };
    assert_eq!(classify(&c, "docker compose -f a.yml -f b.yml up -d"), Ok(Step::Start));
    assert_eq!(classify(&c, "docker compose exec api athena doctor"), Ok(Step::Run("athena doctor".into())));
    assert_eq!(classify(&c, "docker compose run --rm backup backup list"), Ok(Step::Run("athena backup list".into())));
    assert_eq!(classify(&c, "docker compose run --rm backup"), Ok(Step::Run("athena backup create".into())));
    assert!(classify(&c, "rm -rf /").is_err());
    assert!(classify(&c, "docker compose exec api sh").is_err());
    assert_eq!(split_and("a && b \"x && y\""), vec!["a", "b \"x && y\""]);
}

/// Runs the whole runbook, top to bottom.
#[test]
fn every_runbook_command_runs_against_a_real_server() {
    let doc = runbook_text();
    let mut rb = Runbook::new();
    let (mut ran, mut skipped) = (0, Vec::new());
    let mut restored = false;
    for c in commands(&doc) {
        for part in split_and(&c.text) {
            let step = classify(&c, &part).unwrap_or_else(|e| panic!("line {}: {e}", c.line));
            match step {
                Step::Start => rb.start(),
                Step::Stop => rb.stop(),
                Step::Restart => {
                    rb.stop();
                    rb.start();
                }
                Step::Skip(reason) => skipped.push(format!("line {}: {part}  ({reason})", c.line)),
                Step::Run(run) => {
                    rb.symptom(&c.section);
                    if run.starts_with("athena backup restore") {
                        assert!(rb.server.is_none(), "line {}: the runbook restores while the server runs", c.line);
                        restored = true;
                    }
                    rb.run(&c, &run);
                    ran += 1;
                }
            }
        }
    }
    assert!(restored, "the runbook no longer restores a backup");
    // The restore brought the seeded book back (the set was taken after the upload).
    rb.start();
    assert!(rb.book_titles().iter().any(|t| t.to_lowercase().contains("waste")), "after restore: {:?}", rb.book_titles());
    eprintln!("ran {ran} commands; skipped {} that need the compose stack:\n{}", skipped.len(), skipped.join("\n"));
}
