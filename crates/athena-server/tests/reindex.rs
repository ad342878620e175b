//! The search index is derived data: when its files are lost, a restart queues `book.index` for
//! every live book, reports search `degraded` until those jobs ran, then `ok` again. On PostgreSQL
//! the index lives in the database (`ATHENA_SEARCH_ENGINE=auto`): replicas share it, and a lost
//! one is rebuilt the same way.

#[macro_use]
mod common;

use std::time::Duration;

use athena_store::jobs::JobState;
use athena_worker::{Outcome, Worker};
use common::{corpus, Backend, TestApp, User};
use serde_json::Value;

on_both_backends!(a_lost_index_is_rebuilt_at_start);

async fn search(t: &TestApp, user: &User, query: &str) -> Value {
    let r = t.get(user, "/api/v1/search").query(&[("q", query)]).send().await.unwrap();
    assert_eq!(r.status(), 200, "{query}");
    r.json::<Value>().await.unwrap()["data"].clone()
}

async fn search_health(t: &TestApp) -> Value {
    let health: Value = t.client.get(t.url("/health")).send().await.unwrap().json().await.unwrap();
    health["components"]["search"].clone()
}

/// Drops the test's own handles on the server's index (its `App`, the sync service's `App`), so a
/// restarted server can take tantivy's writer lock once the old one has stopped.
fn release_index(t: &mut TestApp) {
    t.app.search = None;
    t.sync = None;
}

async fn drain(t: &TestApp) -> Vec<athena_worker::RunReport> {
    let reports = Worker::new(t.app.clone()).drain().await.unwrap();
    for r in &reports {
        assert!(matches!(r.outcome, Outcome::Succeeded), "{r:?}");
    }
    reports
}

async fn a_lost_index_is_rebuilt_at_start(backend: Backend) {
    // The embedded engine's files are what this scenario loses, on both databases.
    let mut t = TestApp::spawn_with(backend, &[("ATHENA_SEARCH_ENGINE", "tantivy")]).await;
    let ann = t.login("ann@example.com").await;
    let (code, body) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    assert!(code == 200 || code == 201, "{code} {body}");
    let lunyu = body["data"]["id"].as_str().unwrap().to_string();
    // A book deleted to the trash is not indexed again.
    let (code, body) = t.upload(&ann, &corpus().join("zh/guwenguanzhi.epub")).await;
    assert!(code == 200 || code == 201, "{code} {body}");
    let guwen = body["data"]["id"].as_str().unwrap().to_string();
    assert_ne!(guwen, lunyu);
    // A note synced from a device: the rebuilt index must hold it again.
    let at = "2026-11-29T08:00:00Z";
    let ops = serde_json::json!({ "operations": [
        { "table": "notes", "op": "PUT", "id": uuid::Uuid::new_v4().to_string(), "data": { "book_id": lunyu, "device_id": "phone",
          "content": "温故而知新的读书笔记", "page_number": 4, "created_at": at, "updated_at": at } },
    ]});
    assert_eq!(t.post(&ann, "/api/v1/sync/upload").json(&ops).send().await.unwrap().status(), 200);
    drain(&t).await;
    assert_eq!(search(&t, &ann, "学而时习之").await["items"][0]["book_id"], lunyu.as_str());
    assert_eq!(search(&t, &ann, "读书笔记").await["items"][0]["kind"], "note");
    assert_eq!(search_health(&t).await["status"], "ok");
    let r = t.delete(&ann, &format!("/api/v1/books/{guwen}")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // The index's files are lost.
    let dir = t.dir.path().join("data").join("hot").join("index").join("tantivy");
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        removed += 1;
    }
    assert!(removed > 0, "the index had files in {}", dir.display());
    release_index(&mut t);
    t.restart(&[]).await;

    let health = search_health(&t).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(search(&t, &ann, "学而时习之").await["items"].as_array().unwrap().is_empty(), "the new index is empty");

    // The rebuild queues its jobs in the background; the worker runs them, then the index is ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut indexed = Vec::new();
    loop {
        indexed.extend(drain(&t).await.into_iter().filter(|r| r.kind == "book.index"));
        if search_health(&t).await["status"] == "ok" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "search still {} after the rebuild", search_health(&t).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(indexed.len(), 1, "one live book, one index job: {indexed:?}");
    let job = t.app.store.job(indexed[0].job_id).await.unwrap().unwrap();
    assert_eq!((job.book_id.as_ref().map(|b| b.as_str()), job.state), (Some(lunyu.as_str()), JobState::Succeeded));
    let hits = search(&t, &ann, "学而时习之").await;
    assert_eq!(hits["items"][0]["book_id"], lunyu.as_str(), "{hits}");
    assert_eq!(hits["items"][0]["kind"], "content", "{hits}");
    let hits = search(&t, &ann, "读书笔记").await;
    assert_eq!((hits["items"][0]["kind"].as_str(), hits["items"][0]["location"].as_str()), (Some("note"), Some("page:4")), "{hits}");
    // Once ready, a further restart leaves it ready and queues nothing.
    release_index(&mut t);
    t.restart(&[]).await;
    assert_eq!(search_health(&t).await["status"], "ok");
    assert!(drain(&t).await.is_empty());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_search_is_shared_by_replicas_and_rebuilt() {
    let mut t = TestApp::spawn(Backend::PostgresS3).await;
    let ann = t.login("ann@example.com").await;
    let (code, body) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    assert!(code == 200 || code == 201, "{code} {body}");
    let lunyu = body["data"]["id"].as_str().unwrap().to_string();
    drain(&t).await;
    let r = t.get(&ann, "/api/v1/search").query(&[("q", "學而時習之")]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-search-engine").and_then(|v| v.to_str().ok()), Some("postgres"));
    let hits = r.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(hits["items"][0]["book_id"], lunyu.as_str(), "{hits}");
    assert!(hits["items"][0]["snippet"].as_str().unwrap().contains("<mark>学而时习之</mark>"), "{hits}");
    assert_eq!(search_health(&t).await["status"], "ok");

    // A second process on the same database answers from the same index, having indexed nothing.
    let url = t.database_url().unwrap();
    let other = TestApp::spawn_with(Backend::PostgresS3, &[("DATABASE_URL", url.as_str())]).await;
    other.clock.advance(chrono::Duration::minutes(2));
    let ann_there = other.login("ann@example.com").await;
    assert_eq!(search(&other, &ann_there, "学而时习之").await["items"], hits["items"]);
    assert_eq!(search_health(&other).await["status"], "ok");
    other.stop().await;

    // The index is lost (emptied and marked unfinished): a restart rebuilds it from the books.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("TRUNCATE search_docs CASCADE").execute(&admin).await.unwrap();
    sqlx::query("UPDATE search_state SET rebuilding = 'lost'").execute(&admin).await.unwrap();
    admin.close().await;
    release_index(&mut t);
    t.restart(&[]).await;
    assert_eq!(search_health(&t).await["status"], "degraded");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        drain(&t).await;
        if search_health(&t).await["status"] == "ok" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "search still {} after the rebuild", search_health(&t).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(search(&t, &ann, "学而时习之").await["items"][0]["book_id"], lunyu.as_str());
    t.stop().await;
}
