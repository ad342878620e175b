//! Backpressure on sync streams. Its own test binary: it reads the process-wide
//! `powersync_bytes_sent_total` counter, which other tests' streams would move.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use futures::StreamExt;
use serde_json::json;
use sqlx::Connection;

/// A client that connects and never reads must not make the server buffer its whole download:
/// the stream waits for the socket instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_are_backpressured() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let ann = t.login("ann@example.com").await;
    // About 40 MB of rows in the user's bucket.
    let path = t.dir.path().join("data/hot/athena.db");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let description = "x".repeat(2000);
    for i in 0..20_000 {
        sqlx::query("INSERT INTO shelves (id, user_id, name, description, sort_order, is_deleted, version, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, 1, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')")
            .bind(format!("0190f0e6-1c2b-7a00-8000-{i:012}"))
            .bind(&ann.id)
            .bind(format!("shelf {i}"))
            .bind(&description)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    t.sync.clone().unwrap().sequence_now().await.unwrap();
    let bytes_sent = || async {
        let text = reqwest::get(format!("{}/metrics", t.metrics_base)).await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("powersync_bytes_sent_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = bytes_sent().await;
    // Connect and read nothing.
    let response = reqwest::Client::new()
        .post(format!("{}/sync/stream", t.sync_base))
        .header("Authorization", format!("Token {}", ann.token))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut last = 0.0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = bytes_sent().await - before;
        if (now - last).abs() < 1.0 && now > 0.0 {
            break;
        }
        last = now;
    }
    let produced = bytes_sent().await - before;
    eprintln!("produced before backpressure: {produced} bytes");
    assert!(produced > 0.0, "the stream started");
    assert!(produced < 20_000_000.0, "the server stopped producing once the socket was full: {produced} bytes of ~40 MB");
    // Reading resumes the stream to the end.
    let mut body = response.bytes_stream();
    let mut total = 0usize;
    let mut tail = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next()).await.expect("the stream resumes") {
        let chunk = chunk.unwrap();
        total += chunk.len();
        tail.extend_from_slice(&chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 4096);
        }
        if String::from_utf8_lossy(&tail).contains("checkpoint_complete") {
            break;
        }
    }
    assert!(total > 40_000_000, "the whole download arrives once read: {total} bytes");
    t.stop().await;
}
