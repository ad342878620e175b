//! The sync service at the wire level: NDJSON lines read straight off `POST /sync/stream`, checked
//! against the protocol's rules (string op ids, checksums that add up, checkpoints always completed,
//! write checkpoints, isolation, token expiry, compaction). The official client's tests live in
//! `tests/sync-client`; these pin down the server's side precisely, on both backends.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{corpus, Backend, TestApp, User};
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_transaction_is_never_skipped() {
    let t = TestApp::spawn(Backend::PostgresS3).await;
    let ann = t.login("ann@example.com").await;
    let mut reader = Reader::open(&t.sync_base, &ann, json!({})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    // A transaction takes a capture id first and commits last.
    let mut slow = sqlx::PgConnection::connect(&t.database_url().unwrap()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
    let now = chrono::Utc::now();
    sqlx::query("INSERT INTO shelves (id, user_id, name, sort_order, is_deleted, version, created_at, updated_at) VALUES ($1, $2, 'slow', 0, false, 1, $3, $3)")
        .bind("0190f0e6-1c2b-7a00-8000-00000000aaaa")
        .bind(&ann.id)
        .bind(now)
        .execute(&mut slow)
        .await
        .unwrap();
    // Meanwhile a fast write commits and is streamed.
    t.post(&ann, "/api/v1/shelves").json(&json!({"name": "fast"})).send().await.unwrap();
    let names = |m: &Mirror| {
        let mut v: Vec<String> =
            m.rows.iter().filter(|((t, _), _)| t == "shelves").map(|(_, r)| r["name"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    while names(&mirror) != ["fast"] {
        mirror.apply(&reader.round().await);
    }
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    // The slow transaction's change arrives after all, with a higher op id.
    while names(&mirror) != ["fast", "slow"] {
        mirror.apply(&reader.round().await);
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sync_processes_on_one_database_agree() {
    let secret = "a-shared-signing-secret-for-both-processes-0123456789";
    let a = TestApp::spawn_with(Backend::PostgresS3, &[("POWERSYNC_JWT_SECRET", secret)]).await;
    let url = a.database_url().unwrap();
    let b = TestApp::spawn_with(Backend::PostgresS3, &[("POWERSYNC_JWT_SECRET", secret), ("DATABASE_URL", &url)]).await;
    let ann = a.login("ann@example.com").await;
    let mut on_a = Reader::open(&a.sync_base, &ann, json!({})).await;
    let mut on_b = Reader::open(&b.sync_base, &ann, json!({})).await;
    let (mut mirror_a, mut mirror_b) = (Mirror::default(), Mirror::default());
    mirror_a.apply(&on_a.round().await);
    mirror_b.apply(&on_b.round().await);
    // Writes through both processes.
    for i in 0..5 {
        a.post(&ann, "/api/v1/shelves").json(&json!({"name": format!("a{i}")})).send().await.unwrap();
        b.post(&ann, "/api/v1/shelves").json(&json!({"name": format!("b{i}")})).send().await.unwrap();
    }
    let count = |m: &Mirror| m.rows.keys().filter(|(t, _)| t == "shelves").count();
    let mut last_a = Value::Null;
    let mut last_b = Value::Null;
    while count(&mirror_a) < 10 {
        last_a = mirror_a.apply(&on_a.round().await);
    }
    while count(&mirror_b) < 10 {
        last_b = mirror_b.apply(&on_b.round().await);
    }
    assert_eq!(mirror_a.sums, mirror_b.sums, "both processes serve the same checksums");
    assert_eq!(mirror_a.rows, mirror_b.rows);
    let _ = (last_a, last_b);
    b.stop().await;
    a.stop().await;
}

on_both_backends!(
    initial_sync_has_consistent_checksums,
    bson_and_gzip_carry_the_same_stream,
    rest_writes_arrive_as_diffs,
    users_only_get_their_own_bucket,
    write_checkpoints_reach_the_stream,
    bad_requests_are_refused_cleanly,
    compaction_keeps_checksums_and_shrinks_history,
    api_prefix_serves_the_same_protocol,
    changed_rules_resync_without_checksum_failures,
    restart_resumes_from_the_clients_position,
    many_connects_and_disconnects_leave_nothing_behind,
    worker_results_reach_synced_clients,
);

#[derive(Clone, Copy, Default)]
struct Framing {
    bson: bool,
    gzip: bool,
}

struct Reader {
    lines: mpsc::Receiver<Value>,
    raw_blank_lines: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Dropping the reader closes the connection, like a client going away.
        self.task.abort();
    }
}

impl Reader {
    async fn open(base: &str, user: &User, body: Value) -> Reader {
        Self::open_framed(base, user, body, Framing::default()).await
    }

    /// A stream read as the official clients ask for it: BSON documents and/or gzip.
    async fn open_framed(base: &str, user: &User, body: Value, framing: Framing) -> Reader {
        let mut request =
            reqwest::Client::new().post(format!("{base}/sync/stream")).header("Authorization", format!("Token {}", user.token));
        if framing.bson {
            request = request.header("Accept", "application/vnd.powersync.bson-stream;q=0.9,application/x-ndjson;q=0.8");
        }
        if framing.gzip {
            request = request.header("Accept-Encoding", "gzip, deflate");
        }
        let r = request.json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let content_type = if framing.bson { "application/vnd.powersync.bson-stream" } else { "application/x-ndjson" };
        assert_eq!(r.headers()["content-type"], content_type);
        assert_eq!(r.headers().get("content-encoding").is_some(), framing.gzip, "{:?}", r.headers());
        let (tx, rx) = mpsc::channel(10_000);
        let blanks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = blanks.clone();
        let task = tokio::spawn(async move {
            use std::io::Write;
            let mut body = r.bytes_stream();
            let mut buf = Vec::new();
            let mut gunzip = framing.gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
            while let Some(Ok(chunk)) = body.next().await {
                match gunzip.as_mut() {
                    // Every line must be decodable from the bytes received so far.
                    Some(decoder) => {
                        decoder.write_all(&chunk).expect("valid gzip");
                        decoder.flush().unwrap();
                        buf.append(decoder.get_mut());
                    }
                    None => buf.extend_from_slice(&chunk),
                }
                while framing.bson && buf.len() >= 4 {
                    let len = i32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                    assert!(len >= 5, "a BSON document of {len} bytes");
                    if buf.len() < len {
                        break;
                    }
                    let doc: Vec<u8> = buf.drain(..len).collect();
                    let value: Value = bson::deserialize_from_slice(&doc).expect("every document is BSON");
                    if tx.send(value).await.is_err() {
                        return;
                    }
                }
                while let Some(pos) = (!framing.bson).then(|| buf.iter().position(|b| *b == b'\n')).flatten() {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let line = &line[..line.len() - 1];
                    if line.is_empty() {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let value: Value = serde_json::from_slice(line).expect("every line is JSON");
                    if tx.send(value).await.is_err() {
                        return;
                    }
                }
            }
        });
        Reader { lines: rx, raw_blank_lines: blanks, task }
    }

    async fn next(&mut self) -> Option<Value> {
        match tokio::time::timeout(Duration::from_secs(10), self.lines.recv()).await {
            Ok(v) => v,
            Err(_) => panic!("no sync line within 10 s"),
        }
    }

    /// Lines up to and including the next checkpoint_complete, skipping keep-alives.
    async fn round(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let line = self.next().await.expect("stream ended inside a checkpoint");
            assert_eq!(line.as_object().unwrap().len(), 1, "one key per line: {line}");
            if line.get("token_expires_in").is_some() {
                continue;
            }
            let done = line.get("checkpoint_complete").is_some();
            out.push(line);
            if done {
                return out;
            }
        }
    }
}

/// A minimal client state: bucket → (sum of checksums received, ops by object).
#[derive(Default)]
struct Mirror {
    sums: HashMap<String, u32>,
    rows: HashMap<(String, String), Value>,
    positions: HashMap<String, String>,
    ops_received: usize,
}

impl Mirror {
    fn apply(&mut self, round: &[Value]) -> Value {
        // A round may be extended by further diffs before its completion; the last header wins.
        let mut expected: HashMap<String, u64> = HashMap::new();
        let mut last_header = Value::Null;
        for line in round {
            if let Some(header) = line.get("checkpoint").or_else(|| line.get("checkpoint_diff")) {
                let buckets = header.get("buckets").or_else(|| header.get("updated_buckets")).unwrap();
                for b in buckets.as_array().unwrap() {
                    expected.insert(b["bucket"].as_str().unwrap().to_string(), b["checksum"].as_u64().unwrap());
                }
                last_header = header.clone();
            }
            if let Some(data) = line.get("data") {
                let bucket = data["bucket"].as_str().unwrap().to_string();
                assert!(data["after"].is_string() && data["next_after"].is_string());
                for op in data["data"].as_array().unwrap() {
                    self.ops_received += 1;
                    assert!(op["op_id"].is_string(), "op ids are strings: {op}");
                    let sum = self.sums.entry(bucket.clone()).or_default();
                    match op["op"].as_str().unwrap() {
                        "CLEAR" => {
                            *sum = op["checksum"].as_u64().unwrap() as u32;
                            self.rows.retain(|_, _| false);
                            continue;
                        }
                        _ => *sum = sum.wrapping_add(op["checksum"].as_u64().unwrap() as u32),
                    }
                    let key = (op["object_type"].as_str().unwrap_or("").to_string(), op["object_id"].as_str().unwrap_or("").to_string());
                    match op["op"].as_str().unwrap() {
                        "PUT" => {
                            let data: Value = serde_json::from_str(op["data"].as_str().expect("data is a JSON string")).unwrap();
                            self.rows.insert(key, data);
                        }
                        "REMOVE" => {
                            self.rows.remove(&key);
                        }
                        _ => {}
                    }
                }
                self.positions.insert(bucket, data["next_after"].as_str().unwrap().to_string());
            }
        }
        assert!(!last_header.is_null(), "a round starts with a checkpoint");
        for (name, checksum) in &expected {
            let got = self.sums.get(name).copied().unwrap_or(0);
            assert_eq!(u64::from(got), *checksum, "checksum of {name} must match what was received");
        }
        let complete = round.last().unwrap();
        assert_eq!(complete["checkpoint_complete"]["last_op_id"], last_header["last_op_id"]);
        last_header
    }

    fn books(&self) -> Vec<&Value> {
        self.rows.iter().filter(|((t, _), _)| t == "books").map(|(_, v)| v).collect()
    }
}

fn bucket_of(user: &User) -> String {
    format!("user_data[\"{}\"]", user.id)
}

async fn initial_sync_has_consistent_checksums(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let (_, a) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    let (_, b) = t.upload(&ann, &corpus().join("epub/wasteland.epub")).await;
    let mut reader =
        Reader::open(&t.sync_base, &ann, json!({"buckets": [], "include_checksum": true, "raw_data": true, "client_id": "c1"})).await;
    let round = reader.round().await;
    let mut mirror = Mirror::default();
    let checkpoint = mirror.apply(&round);
    assert!(checkpoint["last_op_id"].is_string());
    let buckets = checkpoint["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0]["bucket"], bucket_of(&ann));
    let books = mirror.books();
    assert_eq!(books.len(), 2);
    let titles: Vec<&str> = books.iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert!(titles.contains(&"论语"), "{titles:?}");
    let lunyu = books.iter().find(|b| b["title"] == "论语").unwrap();
    assert_eq!(lunyu["file_type"], "epub");
    assert_eq!(lunyu["user_id"], ann.id.as_str());
    assert!(lunyu["storage_key"].is_string() && lunyu.get("minio_key").is_none(), "columns renamed per the rules");
    assert!(lunyu["metadata_confirmed"].is_i64(), "booleans are integers");
    let _ = (a, b);
    assert_eq!(reader.raw_blank_lines.load(std::sync::atomic::Ordering::Relaxed), 0);

    // Reconnecting from the last position downloads nothing again.
    let position = mirror.positions[&bucket_of(&ann)].clone();
    let mut again = Reader::open(&t.sync_base, &ann, json!({"buckets": [{"name": bucket_of(&ann), "after": position}]})).await;
    let round = again.round().await;
    assert_eq!(round.len(), 2, "checkpoint + complete, no data: {round:?}");
    t.stop().await;
}

/// What the official clients ask for (BSON, gzip) carries exactly the NDJSON stream's content.
async fn bson_and_gzip_carry_the_same_stream(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    t.upload(&ann, &corpus().join("epub/wasteland.epub")).await;
    let body = json!({"buckets": [], "client_id": "c1", "binary_data": true});
    let mut plain = Reader::open(&t.sync_base, &ann, body.clone()).await;
    let mut expected = Mirror::default();
    expected.apply(&plain.round().await);
    for framing in [Framing { bson: true, gzip: false }, Framing { bson: false, gzip: true }, Framing { bson: true, gzip: true }] {
        let mut reader = Reader::open_framed(&t.sync_base, &ann, body.clone(), framing).await;
        let mut mirror = Mirror::default();
        mirror.apply(&reader.round().await);
        assert_eq!(mirror.sums, expected.sums);
        assert_eq!(mirror.rows, expected.rows);
        assert_eq!(mirror.books().len(), 2);
        // A later change arrives as its own decodable piece, without waiting for more data.
        let shelf: Value = t.post(&ann, "/api/v1/shelves").json(&json!({"name": "诗"})).send().await.unwrap().json().await.unwrap();
        mirror.apply(&reader.round().await);
        let id = shelf["data"]["id"].as_str().unwrap().to_string();
        assert_eq!(mirror.rows[&("shelves".to_string(), id)]["name"], "诗");
        expected.apply(&plain.round().await);
    }
    t.stop().await;
}

async fn rest_writes_arrive_as_diffs(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let (_, book) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    let id = book["data"]["id"].as_str().unwrap().to_string();
    let mut reader = Reader::open(&t.sync_base, &ann, json!({"buckets": []})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);

    let etag = t.get(&ann, &format!("/api/v1/books/{id}")).send().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let r = t
        .patch(&ann, &format!("/api/v1/books/{id}/metadata"))
        .header("If-Match", etag)
        .json(&json!({"title": "新标题"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    let round = reader.round().await;
    assert!(round[0].get("checkpoint_diff").is_some(), "{round:?}");
    mirror.apply(&round);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(mirror.books()[0]["title"], "新标题");

    // A shelf and a permanent delete: PUT then REMOVE.
    let shelf: Value = t.post(&ann, "/api/v1/shelves").json(&json!({"name": "S"})).send().await.unwrap().json().await.unwrap();
    mirror.apply(&reader.round().await);
    assert!(mirror.rows.contains_key(&("shelves".to_string(), shelf["data"]["id"].as_str().unwrap().to_string())));
    t.delete(&ann, &format!("/api/v1/books/{id}/permanent")).send().await.unwrap();
    mirror.apply(&reader.round().await);
    assert!(mirror.books().is_empty(), "the REMOVE arrived");
    t.stop().await;
}

/// Conversion, metadata and cover written by the worker arrive at a connected client as a diff.
async fn worker_results_reach_synced_clients(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let (_, book) = t.upload(&ann, &corpus().join("convert/lunyu.mobi")).await;
    let id = book["data"]["id"].as_str().unwrap().to_string();
    let mut reader = Reader::open(&t.sync_base, &ann, json!({"buckets": []})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    assert_eq!(mirror.books()[0]["conversion_status"], "pending");

    athena_worker::Worker::new(t.app.clone()).drain().await.unwrap();
    let started = std::time::Instant::now();
    while mirror.books()[0]["cover_url"].as_str().is_none_or(|c| !c.ends_with(".webp")) {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", mirror.books());
        mirror.apply(&reader.round().await);
    }
    let synced = mirror.books()[0].clone();
    assert_eq!(synced["id"], id);
    assert_eq!(synced["conversion_status"], "completed", "{synced}");
    assert!(synced["converted_epub_key"].as_str().unwrap().ends_with(".epub"));
    assert_eq!(synced["title"], "论语");
    t.stop().await;
}

async fn users_only_get_their_own_bucket(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let (_, book) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    let ann_book = book["data"]["id"].as_str().unwrap().to_string();
    // Bob asks for Ann's bucket by name.
    let mut reader = Reader::open(&t.sync_base, &bob, json!({"buckets": [{"name": bucket_of(&ann), "after": "0"}]})).await;
    let round = reader.round().await;
    let text = serde_json::to_string(&round).unwrap();
    assert!(!text.contains(&ann_book) && !text.contains(&ann.id), "nothing of Ann's reaches Bob: {text}");
    let buckets = round[0]["checkpoint"]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0]["bucket"], bucket_of(&bob));
    // A later write of Ann's does not wake Bob's stream with her data either.
    t.post(&ann, "/api/v1/shelves").json(&json!({"name": "Ann's"})).send().await.unwrap();
    let next = tokio::time::timeout(Duration::from_millis(800), reader.lines.recv()).await;
    if let Ok(Some(line)) = next {
        assert!(!line.to_string().contains("Ann's"), "{line}");
    }
    t.stop().await;
}

async fn write_checkpoints_reach_the_stream(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let mut reader = Reader::open(&t.sync_base, &ann, json!({"buckets": [], "client_id": "device-1"})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    let get = |client: &str| {
        t.client
            .get(format!("{}/write-checkpoint2.json?client_id={client}", t.sync_base))
            .header("Authorization", format!("Token {}", ann.token))
    };
    let r: Value = get("device-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["write_checkpoint"], "1", "a string, per (user, client)");
    // No data changed, yet the stream confirms the write checkpoint.
    let round = reader.round().await;
    assert_eq!(round[0]["checkpoint_diff"]["write_checkpoint"], "1", "{round:?}");
    // A write, then a checkpoint: the diff carries the data and the new write checkpoint together.
    t.post(&ann, "/api/v1/shelves").json(&json!({"name": "S"})).send().await.unwrap();
    let r: Value = get("device-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["write_checkpoint"], "2");
    let mut seen_shelf = false;
    let mut seen_wcp = false;
    for _ in 0..3 {
        let round = reader.round().await;
        let cp = mirror.apply(&round);
        seen_shelf |= mirror.rows.keys().any(|(t, _)| t == "shelves");
        if cp["write_checkpoint"] == "2" {
            assert!(seen_shelf, "the write checkpoint comes no earlier than the data it covers");
            seen_wcp = true;
            break;
        }
    }
    assert!(seen_wcp);
    // Another client's numbers are its own.
    let r: Value = get("device-2").send().await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["write_checkpoint"], "1");
    t.stop().await;
}

async fn bad_requests_are_refused_cleanly(backend: Backend) {
    let t = TestApp::spawn_with(backend, &[("ATHENA_ACCESS_TOKEN_TTL_SECS", "3")]).await;
    let ann = t.login("ann@example.com").await;
    let post = |auth: Option<String>, body: &'static str| {
        let mut r = t.client.post(format!("{}/sync/stream", t.sync_base)).header("content-type", "application/json").body(body);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r
    };
    assert_eq!(post(None, "{}").send().await.unwrap().status(), 401);
    assert_eq!(post(Some("Token garbage".into()), "{}").send().await.unwrap().status(), 401);
    assert_eq!(post(Some(format!("Token {}", ann.token)), "{\"buckets\": [").send().await.unwrap().status(), 400);
    assert_eq!(post(Some(format!("Token {}", ann.token)), "[1,2,3]").send().await.unwrap().status(), 400);
    let huge = format!("{{\"buckets\": [{}]}}", vec!["{\"name\":\"x\",\"after\":\"0\"}"; 2000].join(","));
    let r = t
        .client
        .post(format!("{}/sync/stream", t.sync_base))
        .header("Authorization", format!("Token {}", ann.token))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The stream counts down and closes when the token expires.
    let mut reader = Reader::open(&t.sync_base, &ann, json!({})).await;
    reader.round().await;
    let mut last = None;
    while let Some(line) = reader.next().await {
        if let Some(n) = line.get("token_expires_in") {
            last = Some(n.as_i64().unwrap());
        }
    }
    assert_eq!(last, Some(0), "a final token_expires_in 0, then the end");
    t.stop().await;
}

const UPDATES: usize = 10_000;

async fn compaction_keeps_checksums_and_shrinks_history(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let shelf: Value = t.post(&ann, "/api/v1/shelves").json(&json!({"name": "v0"})).send().await.unwrap().json().await.unwrap();
    let shelf_id: athena_domain::ShelfId = shelf["data"]["id"].as_str().unwrap().parse().unwrap();
    let user: athena_domain::UserId = ann.id.parse().unwrap();
    // An existing client that follows along.
    let mut old = Reader::open(&t.sync_base, &ann, json!({})).await;
    let mut old_mirror = Mirror::default();
    old_mirror.apply(&old.round().await);
    // 10,000 updates of one row, each captured by the triggers, in one transaction of raw SQL.
    let _ = &user;
    match backend {
        Backend::Embedded => {
            let path = t.dir.path().join("data/hot/athena.db");
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let mut tx = db.begin().await.unwrap();
            for i in 1..=UPDATES {
                sqlx::query("UPDATE shelves SET name = ? WHERE id = ?")
                    .bind(format!("v{i}"))
                    .bind(shelf_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        Backend::PostgresS3 => {
            let mut db = sqlx::PgConnection::connect(&t.database_url().unwrap()).await.unwrap();
            let mut tx = db.begin().await.unwrap();
            for i in 1..=UPDATES {
                sqlx::query("UPDATE shelves SET name = $1 WHERE id = $2")
                    .bind(format!("v{i}"))
                    .bind(shelf_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
    let sync = t.sync.clone().unwrap();
    sync.sequence_now().await.unwrap();
    let compacted = sync.compact_once().await;
    assert!(compacted >= UPDATES as u64 - 10, "superseded ops were compacted: {compacted}");
    // The old client converges with matching checksums (apply asserts them).
    let mut final_name = String::new();
    // The stream may have sent many small diffs while the updates were being made.
    for _ in 0..5000 {
        let round = old.round().await;
        let header = old_mirror.apply(&round);
        // Never a completed checkpoint without the shelf: compaction's CLEAR is not a visible gap.
        final_name = old_mirror
            .rows
            .iter()
            .find(|((t, _), _)| t == "shelves")
            .map(|(_, v)| v["name"].as_str().unwrap().to_string())
            .expect("the shelf is present at every completed checkpoint");
        let last: i64 = header["last_op_id"].as_str().unwrap().parse().unwrap();
        if final_name == format!("v{UPDATES}") && sync.last_op_id() <= last {
            break;
        }
    }
    assert_eq!(final_name, format!("v{UPDATES}"));
    // A new client downloads O(1) ops for the shelf.
    let mut fresh = Reader::open(&t.sync_base, &ann, json!({})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&fresh.round().await);
    assert!(mirror.ops_received <= 3, "CLEAR + the live row, not {} ops: {}", UPDATES + 1, mirror.ops_received);
    let name = mirror.rows.iter().find(|((t, _), _)| t == "shelves").map(|(_, v)| v["name"].clone()).unwrap();
    assert_eq!(name, format!("v{UPDATES}"));
    t.stop().await;
}

async fn api_prefix_serves_the_same_protocol(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    let mut reader = Reader::open(&format!("{}/powersync", t.base), &ann, json!({})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    assert_eq!(mirror.books().len(), 1);
    let r: Value = t
        .client
        .get(format!("{}/powersync/write-checkpoint2.json?client_id=x", t.base))
        .header("Authorization", format!("Bearer {}", ann.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["write_checkpoint"], "1");
    let health = t.client.get(format!("{}/health", t.sync_base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = t.client.get(format!("{}/metrics", t.metrics_base)).send().await.unwrap().text().await.unwrap();
    for name in ["powersync_active_connections", "powersync_ops_sent_total", "powersync_bytes_sent_total", "powersync_sync_lag_ms"] {
        assert!(metrics.contains(name), "{name} missing from the metrics port");
    }
    t.stop().await;
}

async fn changed_rules_resync_without_checksum_failures(backend: Backend) {
    let rules_v1 = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/sync_rules.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync_rules.yaml");
    std::fs::write(&path, &rules_v1).unwrap();
    let mut t = TestApp::spawn_with(backend, &[("ATHENA_SYNC_RULES", path.to_str().unwrap())]).await;
    let ann = t.login("ann@example.com").await;
    t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    t.post(&ann, "/api/v1/shelves").json(&json!({"name": "S"})).send().await.unwrap();
    let mut reader = Reader::open(&t.sync_base, &ann, json!({})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    assert!(mirror.rows.keys().any(|(t, _)| t == "shelves"));
    drop(reader);

    // New rules: shelves no longer synced, books now carry their language.
    let shelves_start = rules_v1.find("      - >-\n        SELECT id, user_id, name, description").expect("the shelves query");
    let shelves_end = rules_v1[shelves_start..].find("FROM shelves WHERE user_id = bucket.user_id\n").unwrap() + shelves_start;
    let shelves_end = shelves_end + "FROM shelves WHERE user_id = bucket.user_id\n".len();
    let v2 = format!("{}{}", &rules_v1[..shelves_start], &rules_v1[shelves_end..]).replacen(
        "SELECT id, user_id, title,",
        "SELECT id, user_id, title, language,",
        1,
    );
    assert_ne!(v2, rules_v1);
    std::fs::write(&path, &v2).unwrap();
    t.restart(&[]).await;
    // The client resumes with its old positions and converges, checksums matching throughout.
    let position = mirror.positions[&bucket_of(&ann)].clone();
    let mut reader = Reader::open(&t.sync_base, &ann, json!({"buckets": [{"name": bucket_of(&ann), "after": position}]})).await;
    mirror.apply(&reader.round().await);
    assert!(!mirror.rows.keys().any(|(t, _)| t == "shelves"), "rows of a table the rules dropped are gone");
    let book = mirror.books()[0].clone();
    assert_eq!(book["language"], "zh-CN", "the new column arrived");
    t.stop().await;
}

async fn restart_resumes_from_the_clients_position(backend: Backend) {
    let mut t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    for name in ["a", "b", "c"] {
        t.post(&ann, "/api/v1/shelves").json(&json!({"name": name})).send().await.unwrap();
    }
    let mut reader = Reader::open(&t.sync_base, &ann, json!({})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    let received = mirror.ops_received;
    t.restart(&[]).await;
    // The old stream ended with the server.
    while tokio::time::timeout(Duration::from_secs(5), reader.lines.recv()).await.expect("stream closed at shutdown").is_some() {}
    t.post(&ann, "/api/v1/shelves").json(&json!({"name": "d"})).send().await.unwrap();
    let position = mirror.positions[&bucket_of(&ann)].clone();
    let mut reader = Reader::open(&t.sync_base, &ann, json!({"buckets": [{"name": bucket_of(&ann), "after": position}]})).await;
    mirror.apply(&reader.round().await);
    assert_eq!(mirror.ops_received, received + 1, "only the new op is downloaded, not the bucket again");
    assert_eq!(mirror.rows.keys().filter(|(t, _)| t == "shelves").count(), 4);
    t.stop().await;
}

async fn many_connects_and_disconnects_leave_nothing_behind(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    let gauge = || async {
        let text = reqwest::get(format!("{}/metrics", t.metrics_base)).await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("powersync_active_connections"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = gauge().await;
    for i in 0..300 {
        let mut reader = Reader::open(&t.sync_base, &ann, json!({"client_id": format!("c{i}")})).await;
        if i % 2 == 0 {
            reader.round().await;
        }
        drop(reader);
    }
    // Streams notice their client left and end; the gauge returns to where it was.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = gauge().await;
        if now <= before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "connections still open: {now} (was {before})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the service still answers.
    let mut reader = Reader::open(&t.sync_base, &ann, json!({})).await;
    let mut mirror = Mirror::default();
    mirror.apply(&reader.round().await);
    assert_eq!(mirror.books().len(), 1);
    t.stop().await;
}
