//! Semantic and hybrid search end to end with the real embedding model: books are embedded by the
//! worker's `book.embed` jobs, notes by `annotations.embed`; questions that share no word with the
//! answer find it, across Chinese and English; every user sees only their own books and notes.

#[macro_use]
mod common;

use athena_worker::{Outcome, Worker};
use common::{corpus, Backend, TestApp, User};
use serde_json::Value;

on_both_backends!(semantic_search_finds_meaning_not_words);

fn embed_model() -> String {
    let path = common::model_dir().join("e5-small/e5-small-q4.bin");
    assert!(path.exists(), "embedding model missing at {}: run scripts/fetch-models.sh", path.display());
    path.display().to_string()
}

async fn upload_id(t: &TestApp, user: &User, path: &std::path::Path) -> String {
    let (code, body) = t.upload(user, path).await;
    assert!(code == 200 || code == 201, "{}: {code} {body}", path.display());
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn drain(t: &TestApp) -> Vec<String> {
    let reports = Worker::new(t.app.clone()).drain().await.unwrap();
    for r in &reports {
        assert!(matches!(r.outcome, Outcome::Succeeded), "{r:?}");
    }
    reports.into_iter().map(|r| r.kind).collect()
}

async fn search(t: &TestApp, user: &User, mode: &str, q: &str, kind: Option<&str>) -> (String, Value) {
    let mut query = vec![("q", q), ("mode", mode)];
    if let Some(kind) = kind {
        query.push(("kind", kind));
    }
    let r = t.get(user, "/api/v1/search").query(&query).send().await.unwrap();
    assert_eq!(r.status(), 200, "{mode} {q}");
    let engine = r.headers()["x-search-engine"].to_str().unwrap().to_string();
    (engine, r.json::<Value>().await.unwrap()["data"].clone())
}

fn first_book(hits: &Value) -> &str {
    hits["items"][0]["book_id"].as_str().unwrap_or("")
}

async fn semantic_search_finds_meaning_not_words(backend: Backend) {
    let model = embed_model();
    let t = TestApp::spawn_with(backend, &[("ATHENA_SEMANTIC", "on"), ("ATHENA_EMBED_MODEL", &model)]).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let lunyu = upload_id(&t, &ann, &corpus().join("zh/lunyu.epub")).await;
    let waste = upload_id(&t, &ann, &corpus().join("epub/wasteland.epub")).await;
    let kinds = drain(&t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "book.embed").count(), 2, "{kinds:?}");
    let book: Value = t.get(&ann, &format!("/api/v1/books/{lunyu}")).send().await.unwrap().json().await.unwrap();
    assert!(book["data"]["meta"]["semantic"]["chunks"].as_u64().unwrap_or(0) >= 10, "{book}");

    // A question sharing no word with its answer (卫灵公篇: 在陈绝粮，从者病莫能兴) finds the chapter among 20.
    let question = "老师一行人在路上缺了吃的，随从都饿病了";
    let (engine, hits) = search(&t, &ann, "semantic", question, Some("content")).await;
    assert_eq!(engine, "semantic");
    let top: Vec<&str> = hits["items"].as_array().unwrap().iter().take(5).filter_map(|h| h["title"].as_str()).collect();
    assert!(top.contains(&"卫灵公篇"), "{top:?}");
    assert!(hits["items"][0]["location"].as_str().unwrap().starts_with("epubcfi("), "{hits}");
    // Keyword search cannot answer it; hybrid keeps the semantic answer.
    let (_, hits) = search(&t, &ann, "keyword", question, Some("content")).await;
    assert!(hits["items"].as_array().unwrap().iter().all(|h| h["title"] != "卫灵公篇"), "{hits}");
    let (engine, hits) = search(&t, &ann, "hybrid", question, Some("content")).await;
    assert!(engine == "tantivy" || engine == "postgres", "hybrid names the keyword engine: {engine}");
    let top: Vec<&str> = hits["items"].as_array().unwrap().iter().take(5).filter_map(|h| h["title"].as_str()).collect();
    assert!(top.contains(&"卫灵公篇"), "{top:?}");
    // A question in the other script still reaches the book in it (ranked within its script).
    let (_, hits) = search(&t, &ann, "semantic", "一首关于战后荒芜城市和死亡的现代诗", Some("content")).await;
    let top: Vec<&str> = hits["items"].as_array().unwrap().iter().take(3).filter_map(|h| h["book_id"].as_str()).collect();
    assert!(top.contains(&waste.as_str()), "{hits}");
    // Hybrid still honours exact words, with their marks.
    let (_, hits) = search(&t, &ann, "hybrid", "学而时习之", None).await;
    assert_eq!(first_book(&hits), lunyu, "{hits}");
    assert!(hits["items"][0]["snippet"].as_str().unwrap().contains("<mark>"), "{hits}");

    // Pages walk the ranking without repeats; a cursor of another query is refused.
    let page1: Value = t
        .get(&ann, "/api/v1/search")
        .query(&[("q", "poetry"), ("mode", "semantic"), ("limit", "3")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = page1["data"]["next_cursor"].as_str().expect("more than 3 sections").to_string();
    let page2: Value = t
        .get(&ann, "/api/v1/search")
        .query(&[("q", "poetry"), ("mode", "semantic"), ("limit", "3"), ("cursor", &cursor)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let locations = |p: &Value| -> Vec<String> {
        p["data"]["items"].as_array().unwrap().iter().map(|h| format!("{}{}", h["book_id"], h["location"])).collect()
    };
    assert!(locations(&page1).iter().all(|l| !locations(&page2).contains(l)), "{page1} {page2}");
    let r = t.get(&ann, "/api/v1/search").query(&[("q", "other"), ("mode", "semantic"), ("cursor", &cursor)]).send().await.unwrap();
    assert_eq!(r.status(), 422);

    // Notes arriving through sync are embedded by the worker and found by meaning, in either language,
    // by their owner only.
    let at = "2026-11-29T08:00:00Z";
    let notes = [
        (lunyu.as_str(), "我的想法：孔子认为治理国家要靠品德，而不是刑罚。"),
        (waste.as_str(), "The whale hunt in this chapter is described in brutal, bloody detail."),
        (lunyu.as_str(), "今天读到一首思念家乡的诗，很感动。"),
        (waste.as_str(), "Recipe idea: clam chowder with salt pork and ship biscuits."),
    ];
    let mut ids = Vec::new();
    let mut ops = Vec::new();
    for (i, (book, content)) in notes.iter().enumerate() {
        let id = uuid::Uuid::new_v4().to_string();
        ops.push(serde_json::json!({ "table": "notes", "op": "PUT", "id": id, "data": { "book_id": book, "device_id": "phone",
            "content": content, "page_number": i + 1, "created_at": at, "updated_at": at } }));
        ids.push(id);
    }
    let r = t.post(&ann, "/api/v1/sync/upload").json(&serde_json::json!({ "operations": ops })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(drain(&t).await.contains(&"annotations.embed".to_string()));
    // Each question's note is the best of its script's two, whatever the question's language.
    for (question, expected, rival) in [
        ("ruling a country through virtue instead of punishment", 0, 2),
        ("鲸鱼捕猎场面的血腥描写", 1, 3),
        ("a poem about being homesick", 2, 0),
        ("海鲜汤的做法", 3, 1),
    ] {
        let (_, hits) = search(&t, &ann, "semantic", question, Some("note")).await;
        let order: Vec<String> = hits["items"].as_array().unwrap().iter().map(|h| h["location"].as_str().unwrap().to_string()).collect();
        assert_eq!(order.len(), 4, "{hits}");
        let at = |i: usize| order.iter().position(|l| *l == format!("page:{}", i + 1)).unwrap();
        assert!(at(expected) < at(rival) && at(expected) < 3, "{question}: {order:?}");
        assert_eq!(hits["items"][0]["kind"], "note");
    }
    let note = ids[0].clone();

    // Bob owns nothing yet: no hit from Ann's books or notes, whatever he asks.
    for mode in ["semantic", "hybrid"] {
        let (_, hits) = search(&t, &bob, mode, "What did Confucius teach about the gentleman?", None).await;
        assert!(hits["items"].as_array().unwrap().is_empty(), "{mode}: {hits}");
        assert_eq!(hits["total"], 0);
    }
    // Once he owns the same content he finds its text (embedded once, shared), not Ann's note.
    let bobs = upload_id(&t, &bob, &corpus().join("zh/lunyu.epub")).await;
    let kinds = drain(&t).await;
    assert!(kinds.contains(&"book.embed".to_string()), "{kinds:?}");
    let (_, hits) = search(&t, &bob, "semantic", question, None).await;
    assert_eq!(first_book(&hits), bobs, "{hits}");
    assert!(hits["items"].as_array().unwrap().iter().all(|h| h["kind"] != "note"), "{hits}");

    // A deleted note and a trashed book vanish at once.
    let del = serde_json::json!({ "operations": [ { "table": "notes", "op": "DELETE", "id": note } ] });
    assert_eq!(t.post(&ann, "/api/v1/sync/upload").json(&del).send().await.unwrap().status(), 200);
    let (_, hits) = search(&t, &ann, "semantic", "ruling a country through virtue instead of punishment", Some("note")).await;
    let left: Vec<&str> = hits["items"].as_array().unwrap().iter().filter_map(|h| h["location"].as_str()).collect();
    assert_eq!(left.len(), 3, "{hits}");
    assert!(!left.contains(&"page:1"), "{hits}");
    assert!(t.delete(&ann, &format!("/api/v1/books/{waste}")).send().await.unwrap().status().is_success());
    let (_, hits) = search(&t, &ann, "semantic", "一首关于战后荒芜城市和死亡的现代诗", None).await;
    assert!(hits["items"].as_array().unwrap().iter().all(|h| h["book_id"] != waste.as_str()), "{hits}");
    let (_, hits) = search(&t, &ann, "hybrid", "April is the cruellest month", None).await;
    assert!(hits["items"].as_array().unwrap().iter().all(|h| h["book_id"] != waste.as_str()), "{hits}");

    // Bad requests are 422, never a 500.
    for (q, mode) in [("", "semantic"), ("x", "vector"), (&"长".repeat(2_000) as &str, "semantic"), ("\"(AND*\\", "hybrid")] {
        let r = t.get(&ann, "/api/v1/search").query(&[("q", q), ("mode", mode)]).send().await.unwrap();
        assert!(r.status() == 200 || r.status() == 422, "{mode} {:?}: {}", q.chars().take(10).collect::<String>(), r.status());
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_mode_without_a_model_is_unavailable() {
    let t = TestApp::spawn(Backend::Embedded).await;
    let ann = t.login("ann@example.com").await;
    let r = t.get(&ann, "/api/v1/search").query(&[("q", "anything"), ("mode", "semantic")]).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = t.get(&ann, "/api/v1/search").query(&[("q", "anything")]).send().await.unwrap();
    assert_eq!(r.status(), 200, "keyword search does not need the model");
    t.stop().await;
}
