//! The search index is derived data: when its files are lost, a restart queues `book.index` for
//! every live book, reports search `degraded` until those jobs ran, then `ok` again.

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
    let mut t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let (code, body) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    assert!(code == 200 || code == 201, "{code} {body}");
    let lunyu = body["data"]["id"].as_str().unwrap().to_string();
    // A book deleted to the trash is not indexed again.
    let (code, body) = t.upload(&ann, &corpus().join("zh/guwenguanzhi.epub")).await;
    assert!(code == 200 || code == 201, "{code} {body}");
    let guwen = body["data"]["id"].as_str().unwrap().to_string();
    assert_ne!(guwen, lunyu);
    drain(&t).await;
    assert_eq!(search(&t, &ann, "学而时习之").await["items"][0]["book_id"], lunyu.as_str());
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
    // Once ready, a further restart leaves it ready and queues nothing.
    release_index(&mut t);
    t.restart(&[]).await;
    assert_eq!(search_health(&t).await["status"], "ok");
    assert!(drain(&t).await.is_empty());
    t.stop().await;
}
