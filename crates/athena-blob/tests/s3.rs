//! Runs the shared suite against S3. With `ATHENA_TEST_S3_ENDPOINT` (plus `_ACCESS_KEY`,
//! `_SECRET_KEY`, `_BUCKET`) it uses that server; otherwise it starts its own SeaweedFS through
//! `scripts/seaweedfs.sh`, so a plain `cargo test` covers S3 too. It never skips.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use athena_blob::{BlobError, BlobStore, S3BlobStore, S3Settings};
use bytes::Bytes;
use common::key;

const SCRIPT_DEFAULT_ACCESS_KEY: &str = "athena-test";
const SCRIPT_DEFAULT_SECRET_KEY: &str = "athena-test-secret";
const SCRIPT_DEFAULT_BUCKET: &str = "athena-test";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/seaweedfs.sh")
}

/// A SeaweedFS this test started; stopped on drop, even when an assertion fails.
struct OwnServer {
    dir: tempfile::TempDir,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(self.dir.path()).status();
    }
}

/// A port with the next eight free as well, as the script needs.
fn free_port_block() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 40_000) as u16;
        let free = (base..=base + 8).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no block of free ports found");
}

fn start_own_server() -> (S3Settings, OwnServer) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block();
    let out =
        Command::new("bash").arg(script()).arg("start").arg(dir.path()).arg(port.to_string()).output().expect("run scripts/seaweedfs.sh");
    let server = OwnServer { dir };
    assert!(
        out.status.success(),
        "scripts/seaweedfs.sh start failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("script did not print {name}: {stdout}"))
            .to_string()
    };
    let settings = S3Settings::new(var("S3_ENDPOINT"), var("S3_BUCKET"), var("S3_ACCESS_KEY"), var("S3_SECRET_KEY"));
    (settings, server)
}

fn settings_from_env() -> Option<S3Settings> {
    let endpoint = std::env::var("ATHENA_TEST_S3_ENDPOINT").ok().filter(|e| !e.is_empty())?;
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    Some(S3Settings::new(
        endpoint,
        var("ATHENA_TEST_S3_BUCKET", SCRIPT_DEFAULT_BUCKET),
        var("ATHENA_TEST_S3_ACCESS_KEY", SCRIPT_DEFAULT_ACCESS_KEY),
        var("ATHENA_TEST_S3_SECRET_KEY", SCRIPT_DEFAULT_SECRET_KEY),
    ))
}

/// One test drives everything so a self-started server is started and stopped once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend() {
    let (settings, _server) = match settings_from_env() {
        Some(settings) => (settings, None),
        None => {
            let (settings, server) = tokio::task::spawn_blocking(start_own_server).await.unwrap();
            (settings, Some(server))
        }
    };
    eprintln!("testing S3 at {} bucket {}", settings.endpoint, settings.bucket);

    let store = S3BlobStore::new(settings.clone()).unwrap();
    assert_eq!(store.backend(), "s3");
    // A fresh SeaweedFS has no bucket yet: ensure_bucket must get one made.
    store.ensure_bucket().await.unwrap();
    store.ensure_bucket().await.unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(store);
    assert!(store.local_path(&key("a/b")).is_none());

    common::suite(store.clone()).await;
    presigned_put_uploads(store.as_ref(), &settings).await;
    public_endpoint_is_used_for_presigning(&settings).await;
    wrong_credentials_and_dead_endpoints_fail_cleanly(&settings).await;
    common::large_stream_stays_bounded(store).await;
}

async fn presigned_put_uploads(store: &dyn BlobStore, _settings: &S3Settings) {
    let k = key(&format!("{}users/u1/up1/Book_1.epub", common::fresh_prefix()));
    let put = store.presign_put(&k, Duration::from_secs(300)).await.unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.url.contains("X-Amz-Signature="), "{}", put.url);
    let remaining = put.expires_at - chrono::Utc::now();
    assert!(remaining.num_seconds() > 290 && remaining.num_seconds() <= 300, "{remaining}");

    let body = common::pattern(70_000);
    let client = reqwest::Client::new();
    let mut req = client.put(&put.url).body(body.clone());
    for (name, value) in &put.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}: {}", resp.status(), resp.text().await.unwrap_or_default());
    assert_eq!(common::read_all(store, &k, None).await, body);

    // A tampered URL is refused by the server.
    let tampered = put.url.replace("Book_1.epub", "Book_2.epub");
    let resp = client.put(&tampered).body("x").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403, "tampered URL accepted");
    store.delete(&k).await.unwrap();
}

async fn public_endpoint_is_used_for_presigning(settings: &S3Settings) {
    let public = settings.endpoint.replace("127.0.0.1", "localhost");
    let store = S3BlobStore::new(S3Settings { public_endpoint: Some(public.clone()), ..settings.clone() }).unwrap();
    let k = key(&format!("{}via-public.bin", common::fresh_prefix()));
    let put = store.presign_put(&k, Duration::from_secs(60)).await.unwrap();
    assert!(put.url.starts_with(&format!("{public}/{}/", settings.bucket)), "{}", put.url);
    // Data operations still go to the private endpoint.
    store.put_bytes(&k, Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.stat(&k).await.unwrap().unwrap().size, 1);
    store.delete(&k).await.unwrap();
}

async fn wrong_credentials_and_dead_endpoints_fail_cleanly(settings: &S3Settings) {
    let bad = S3BlobStore::new(S3Settings { secret_key: "wrong".into(), ..settings.clone() }).unwrap();
    let err = bad.probe().await.unwrap_err();
    assert!(matches!(err, BlobError::Internal(_) | BlobError::Unavailable(_)), "{err:?}");

    // Nothing listens on port 1: the backend is unavailable, which callers may retry.
    let dead = S3BlobStore::new(S3Settings { endpoint: "http://127.0.0.1:1".into(), ..settings.clone() }).unwrap();
    let err = dead.stat(&key("a")).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
