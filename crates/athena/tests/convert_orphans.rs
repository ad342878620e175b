//! `kill -9` of the real `athena` process while its worker converts a book: Calibre must not keep running (the
//! conversion sandbox's watchdog takes the tool's whole process group down when the server dies).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_athena");
const DEADLINE: Duration = Duration::from_secs(60);

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS)")
}

/// Live (not zombie) processes whose working directory is inside `dir`, with their command lines.
fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(true);
        if zombie || !std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        found.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ").chars().take(120).collect()));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_athena_mid_conversion_leaves_no_calibre_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("ATHENA_DATA_DIR", &data)
        .env("ATHENA_BACKUP_DIR", dir.path().join("backups"))
        .env("ATHENA_API_PORT", "0")
        .env("POWERSYNC_PORT", "0")
        .env("ATHENA_METRICS_PORT", "0")
        .env("ATHENA_LOG", "info")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "listening" && v["role"] == "api" {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx.recv_timeout(DEADLINE).expect("athena announces its API listener");
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    let email = "convert@example.com";
    let r: Value = http
        .post(format!("{base}/api/v1/auth/email/send-code"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = r["data"]["dev_code"].as_str().unwrap().to_string();
    let r: Value = http
        .post(format!("{base}/api/v1/auth/email/verify-code"))
        .json(&json!({ "email": email, "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["data"]["tokens"]["access_token"].as_str().unwrap().to_string();
    // The corpus's Lunyu a hundred times over (6.5 MB of text): Calibre needs many seconds for it.
    let book = std::fs::read(corpus().join("convert/lunyu.txt")).unwrap().repeat(100);
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(book).file_name("big-lunyu.txt"));
    let r = http.post(format!("{base}/api/v1/books")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert!(r.status().is_success(), "upload: {}", r.text().await.unwrap());

    // Wait for Calibre to run in the worker's job folder, give it a moment to get going, then kill athena.
    let started = Instant::now();
    loop {
        if processes_in(&data).iter().any(|(_, cmd)| cmd.contains("ebook-convert")) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "ebook-convert never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = processes_in(&data);
    assert!(before.iter().any(|(_, cmd)| cmd.contains("ebook-convert")), "the conversion ended before the kill: {before:?}");
    child.kill().unwrap(); // SIGKILL: no destructor runs in athena
    child.wait().unwrap();

    let killed = Instant::now();
    loop {
        let left = processes_in(&data);
        if left.is_empty() {
            eprintln!("gone {:?} after kill -9: {before:?}", killed.elapsed());
            return;
        }
        if killed.elapsed() > Duration::from_secs(5) {
            for (pid, _) in &left {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            panic!("still running 5 s after kill -9 of athena: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
