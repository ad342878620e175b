//! End-to-end scenarios through the real HTTP surface, each run twice: embedded (SQLite + local
//! folder) and PostgreSQL + SeaweedFS S3.

#[macro_use]
mod common;

use std::path::PathBuf;

use common::{corpus, sha256_hex, Backend, TestApp};
use serde_json::{json, Value};

on_both_backends!(
    library_lifecycle_with_every_corpus_book,
    two_step_upload_with_signed_url,
    global_dedup_requires_proof_of_possession,
    users_never_see_each_other,
    bad_corpus_files_fail_cleanly,
    auth_tokens_and_sessions,
    validation_errors_are_422_with_fields,
    content_ranges_and_cover,
    oversized_uploads_are_refused,
    housekeeping_sweeps_expired_uploads_and_trash,
    operations_surface,
    pdfs_get_page_counts_and_text_layer_detection,
    hostile_filenames_never_reach_object_keys,
);

fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn truth() -> Value {
    serde_json::from_slice(&std::fs::read(corpus().join("truth.json")).unwrap()).unwrap()
}

async fn library_lifecycle_with_every_corpus_book(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let truth = truth();
    let mut ids = Vec::new();
    for path in files_in("epub").into_iter().chain(files_in("zh")) {
        let (status, body) = t.upload(&ann, &path).await;
        assert_eq!(status, 201, "{}: {body}", path.display());
        let book = &body["data"];
        assert_eq!(book["file_type"], "epub");
        assert_eq!(book["file_size"].as_u64().unwrap(), std::fs::metadata(&path).unwrap().len());
        assert_eq!(book["content_sha256"], sha256_hex(&std::fs::read(&path).unwrap()));
        let rel = format!("zh/{}", path.file_name().unwrap().to_string_lossy());
        if let Some(expected) = truth.get(&rel) {
            assert_eq!(book["title"], expected["title"], "{rel}");
            if let Some(author) = expected.get("author") {
                assert_eq!(&book["author"], author, "{rel}");
            }
            assert!(book["cover_url"].is_string(), "{rel} has a cover");
        }
        assert!(!book["title"].as_str().unwrap().is_empty());
        ids.push(book["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 14);

    // Uploading the same file again returns the same book (200, not a new one).
    let (status, body) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    assert_eq!(status, 200);
    assert!(ids.contains(&body["data"]["id"].as_str().unwrap().to_string()));

    // List with a cursor: every book exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r: Value = t.get(&ann, &format!("/api/v1/books?limit=5&cursor={cursor}")).send().await.unwrap().json().await.unwrap();
        for item in r["data"]["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match r["data"]["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 14, "no duplicates across pages");
    assert_eq!(seen.len(), 14);

    // Rename with If-Match.
    let id = &ids[0];
    let r = t.get(&ann, &format!("/api/v1/books/{id}")).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = t.patch(&ann, &format!("/api/v1/books/{id}/metadata")).json(&json!({"title": "Renamed"})).send().await.unwrap();
    assert_eq!(r.status(), 428, "If-Match is required");
    let r = t
        .patch(&ann, &format!("/api/v1/books/{id}/metadata"))
        .header("If-Match", "nonsense")
        .json(&json!({"title": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = t
        .patch(&ann, &format!("/api/v1/books/{id}/metadata"))
        .header("If-Match", &etag)
        .json(&json!({"title": "Renamed", "author": "Someone", "confirmed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["title"], "Renamed");
    assert_eq!(body["data"]["metadata_confirmed"], true);
    let r = t
        .patch(&ann, &format!("/api/v1/books/{id}/metadata"))
        .header("If-Match", &etag)
        .json(&json!({"title": "Stale"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "stale ETag");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "version_conflict");
    assert_eq!(body["detail"], "version_conflict");

    // Shelves.
    let r = t.post(&ann, "/api/v1/shelves").json(&json!({"name": "Classics"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let shelf: Value = r.json().await.unwrap();
    let shelf_id = shelf["data"]["id"].as_str().unwrap().to_string();
    for book in &ids[..3] {
        let r = t.post(&ann, &format!("/api/v1/shelves/{shelf_id}/items")).json(&json!({"book_id": book})).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    // Adding twice is idempotent.
    let r = t.post(&ann, &format!("/api/v1/shelves/{shelf_id}/items")).json(&json!({"book_id": ids[0]})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let items: Value = t.get(&ann, &format!("/api/v1/shelves/{shelf_id}/items")).send().await.unwrap().json().await.unwrap();
    assert_eq!(items["data"]["items"].as_array().unwrap().len(), 3);
    let r = t.delete(&ann, &format!("/api/v1/shelves/{shelf_id}/items/{}", ids[1])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let items: Value = t.get(&ann, &format!("/api/v1/shelves/{shelf_id}/items")).send().await.unwrap().json().await.unwrap();
    assert_eq!(items["data"]["items"].as_array().unwrap().len(), 2);
    let r = t.get(&ann, &format!("/api/v1/shelves/{shelf_id}")).send().await.unwrap();
    let shelf_etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = t
        .patch(&ann, &format!("/api/v1/shelves/{shelf_id}"))
        .header("If-Match", &shelf_etag)
        .json(&json!({"name": "经典"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let shelves: Value = t.get(&ann, "/api/v1/shelves").send().await.unwrap().json().await.unwrap();
    assert_eq!(shelves["data"]["items"][0]["name"], "经典");

    // Delete → trash → restore → permanent delete.
    let r = t.delete(&ann, &format!("/api/v1/books/{}", ids[2])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.get(&ann, &format!("/api/v1/books/{}", ids[2])).send().await.unwrap();
    assert_eq!(r.status(), 404, "a deleted book is gone from the library");
    let trash: Value = t.get(&ann, "/api/v1/books/deleted").send().await.unwrap().json().await.unwrap();
    assert_eq!(trash["data"]["items"].as_array().unwrap().len(), 1);
    let r = t.post(&ann, &format!("/api/v1/books/{}/restore", ids[2])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.get(&ann, &format!("/api/v1/books/{}", ids[2])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.delete(&ann, &format!("/api/v1/books/{}/permanent", ids[3])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.get(&ann, &format!("/api/v1/books/{}/content", ids[3])).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let list: Value = t.get(&ann, "/api/v1/books?limit=100").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"]["items"].as_array().unwrap().len(), 13);
    t.stop().await;
}

async fn two_step_upload_with_signed_url(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let path = corpus().join("zh/tangshi300.epub");
    let bytes = std::fs::read(&path).unwrap();
    let sha = sha256_hex(&bytes);
    let r: Value = t
        .post(&ann, "/api/v1/books/upload_init")
        .json(&json!({"filename": "../../唐詩.epub", "content_type": "application/epub+zip", "content_sha256": sha, "size": bytes.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = &r["data"];
    assert_eq!(data["dedup_hit"], Value::Null, "{r}");
    let key = data["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("users/{}/", ann.id)) && !key.contains(".."), "{key}");
    let url = data["upload_url"].as_str().unwrap();
    // A tampered signature is refused (embedded mode signs URLs to Athena itself).
    if matches!(backend, Backend::Embedded) {
        let tampered = url.replace("signature=", "signature=00");
        let r = t.client.put(&tampered).body(bytes.clone()).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let mut put = t.client.put(url).body(bytes.clone());
    for (k, v) in data["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    let r = put.send().await.unwrap();
    assert!(r.status().is_success(), "PUT to signed URL: {}", r.status());
    let r = t
        .post(&ann, "/api/v1/books/upload_complete")
        .header("Idempotency-Key", "k-1")
        .json(&json!({"key": key, "content_sha256": "0".repeat(64)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let book: Value = r.json().await.unwrap();
    assert_eq!(book["data"]["content_sha256"], sha, "the server hashes the stored bytes itself");
    assert_eq!(book["data"]["title"], "唐詩三百首");
    // The same Idempotency-Key replays the first answer.
    let r = t.post(&ann, "/api/v1/books/upload_complete").header("Idempotency-Key", "k-1").json(&json!({"key": key})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["data"]["id"], book["data"]["id"]);
    // Now upload_init with the hash says "own".
    let r: Value = t
        .post(&ann, "/api/v1/books/upload_init")
        .json(&json!({"filename": "x.epub", "content_sha256": sha}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["dedup_hit"], "own");
    assert_eq!(r["data"]["existing_book_id"], book["data"]["id"]);
    // Missing key / filename have their own codes.
    let r = t.post(&ann, "/api/v1/books/upload_complete").json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "missing_key");
    let r = t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": ""})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "missing_filename");
    t.stop().await;
}

async fn global_dedup_requires_proof_of_possession(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let eve = t.login("eve@example.com").await;
    let path = corpus().join("zh/lunyu.epub");
    let bytes = std::fs::read(&path).unwrap();
    let sha = sha256_hex(&bytes);
    let (status, ann_book) = t.upload(&ann, &path).await;
    assert_eq!(status, 201);

    // Bob has the file: he answers the challenge and gets an instant upload.
    let r: Value = t
        .post(&bob, "/api/v1/books/upload_init")
        .json(&json!({"filename": "l.epub", "content_sha256": sha}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["dedup_hit"], "global");
    let canonical = r["data"]["canonical_book_id"].as_str().unwrap().to_string();
    let mut proof_bytes = Vec::new();
    for range in r["data"]["challenge"]["ranges"].as_array().unwrap() {
        let (s, e) = (range[0].as_u64().unwrap() as usize, range[1].as_u64().unwrap() as usize);
        proof_bytes.extend_from_slice(&bytes[s..e]);
    }
    let proof = sha256_hex(&proof_bytes);
    let r = t
        .post(&bob, "/api/v1/books/dedup_reference")
        .json(&json!({"content_sha256": sha, "canonical_book_id": canonical, "proof": proof}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bob_book: Value = r.json().await.unwrap();
    let bob_id = bob_book["data"]["id"].as_str().unwrap();
    let content = t.get(&bob, &format!("/api/v1/books/{bob_id}/content")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&content), sha, "instant upload serves the right bytes");

    // Eve only knows the hash: a guessed proof gets nothing, and the challenge is single-use.
    let r: Value = t
        .post(&eve, "/api/v1/books/upload_init")
        .json(&json!({"filename": "l.epub", "content_sha256": sha}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["dedup_hit"], "global");
    for _ in 0..2 {
        let r = t
            .post(&eve, "/api/v1/books/dedup_reference")
            .json(&json!({"content_sha256": sha, "canonical_book_id": canonical, "proof": sha256_hex(b"guess")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let eve_list: Value = t.get(&eve, "/api/v1/books").send().await.unwrap().json().await.unwrap();
    assert!(eve_list["data"]["items"].as_array().unwrap().is_empty());

    // Eve uploads different bytes while claiming Ann's hash: the server hashes what was stored.
    let r: Value =
        t.post(&eve, "/api/v1/books/upload_init").json(&json!({"filename": "fake.epub"})).send().await.unwrap().json().await.unwrap();
    let key = r["data"]["key"].as_str().unwrap().to_string();
    let fake = std::fs::read(corpus().join("epub/wasteland.epub")).unwrap();
    let mut put = t.client.put(r["data"]["upload_url"].as_str().unwrap()).body(fake.clone());
    for (k, v) in r["data"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());
    let r: Value = t
        .post(&eve, "/api/v1/books/upload_complete")
        .json(&json!({"key": key, "content_sha256": sha}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["content_sha256"], sha256_hex(&fake));
    // Ann and Bob still read the right bytes.
    let ann_id = ann_book["data"]["id"].as_str().unwrap();
    let content = t.get(&ann, &format!("/api/v1/books/{ann_id}/content")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&content), sha);

    // Reference counting: Ann deletes for good, Bob still reads; Bob deletes, the bytes go.
    assert_eq!(t.delete(&ann, &format!("/api/v1/books/{ann_id}/permanent")).send().await.unwrap().status(), 200);
    let content = t.get(&bob, &format!("/api/v1/books/{bob_id}/content")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&content), sha);
    let key = bob_book["data"]["storage_key"].as_str().unwrap().parse().unwrap();
    assert!(t.app.blobs.stat(&key).await.unwrap().is_some());
    assert_eq!(t.delete(&bob, &format!("/api/v1/books/{bob_id}/permanent")).send().await.unwrap().status(), 200);
    assert!(t.app.blobs.stat(&key).await.unwrap().is_none(), "storage freed with the last reference");
    t.stop().await;
}

async fn users_never_see_each_other(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let (_, book) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    let id = book["data"]["id"].as_str().unwrap();
    let shelf: Value = t.post(&ann, "/api/v1/shelves").json(&json!({"name": "Mine"})).send().await.unwrap().json().await.unwrap();
    let shelf_id = shelf["data"]["id"].as_str().unwrap();
    t.post(&ann, &format!("/api/v1/shelves/{shelf_id}/items")).json(&json!({"book_id": id})).send().await.unwrap();

    for (method, path) in [
        ("GET", format!("/api/v1/books/{id}")),
        ("GET", format!("/api/v1/books/{id}/content")),
        ("GET", format!("/api/v1/books/{id}/cover")),
        ("DELETE", format!("/api/v1/books/{id}")),
        ("DELETE", format!("/api/v1/books/{id}/permanent")),
        ("POST", format!("/api/v1/books/{id}/restore")),
        ("GET", format!("/api/v1/shelves/{shelf_id}")),
        ("GET", format!("/api/v1/shelves/{shelf_id}/items")),
        ("DELETE", format!("/api/v1/shelves/{shelf_id}")),
        ("DELETE", format!("/api/v1/shelves/{shelf_id}/items/{id}")),
    ] {
        let req = match method {
            "GET" => t.get(&bob, &path),
            "POST" => t.post(&bob, &path),
            _ => t.delete(&bob, &path),
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    }
    let r = t
        .patch(&bob, &format!("/api/v1/books/{id}/metadata"))
        .header("If-Match", "W/\"1\"")
        .json(&json!({"title": "pwned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = t
        .patch(&bob, &format!("/api/v1/shelves/{shelf_id}"))
        .header("If-Match", "W/\"1\"")
        .json(&json!({"name": "pwned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Bob cannot put Ann's book on his own shelf either.
    let bob_shelf: Value = t.post(&bob, "/api/v1/shelves").json(&json!({"name": "Bob"})).send().await.unwrap().json().await.unwrap();
    let r = t
        .post(&bob, &format!("/api/v1/shelves/{}/items", bob_shelf["data"]["id"].as_str().unwrap()))
        .json(&json!({"book_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nothing changed for Ann.
    let r: Value = t.get(&ann, &format!("/api/v1/books/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["data"]["title"], "论语");
    assert_eq!(r["data"]["deleted_at"], Value::Null);
    let items: Value = t.get(&ann, &format!("/api/v1/shelves/{shelf_id}/items")).send().await.unwrap().json().await.unwrap();
    assert_eq!(items["data"]["items"].as_array().unwrap().len(), 1);
    let bob_books: Value = t.get(&bob, "/api/v1/books").send().await.unwrap().json().await.unwrap();
    assert!(bob_books["data"]["items"].as_array().unwrap().is_empty());
    t.stop().await;
}

async fn bad_corpus_files_fail_cleanly(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let expected = [
        ("broken-xref.pdf", 415, Some("corrupt_file")),
        ("empty.epub", 415, Some("empty_file")),
        ("image-bomb-cover.epub", 201, None),
        ("looks-like-epub.txt.epub", 201, None),
        ("not-a-pdf.pdf", 415, Some("unrecognized_format")),
        ("path-traversal.epub", 415, Some("unsafe_archive")),
        ("random-bytes.epub", 415, Some("unrecognized_format")),
        ("truncated.epub", 415, Some("corrupt_file")),
        ("xml-bomb.epub", 415, Some("xml_bomb")),
        ("zip-bomb.epub", 415, Some("archive_bomb")),
    ];
    let files = files_in("bad");
    assert_eq!(files.len(), expected.len(), "every bad file has an expectation");
    for (name, status, reason) in expected {
        let (got, body) = t.upload(&ann, &corpus().join("bad").join(name)).await;
        assert_eq!(got, status, "{name}: {body}");
        match reason {
            Some(reason) => {
                assert_eq!(body["code"], "unsupported_format", "{name}");
                assert_eq!(body["details"]["reason"], reason, "{name}");
            }
            None => assert_eq!(body["status"], "success"),
        }
    }
    // The text file named .epub is a TXT book waiting for conversion; the huge cover was dropped.
    let list: Value = t.get(&ann, "/api/v1/books").send().await.unwrap().json().await.unwrap();
    let items = list["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let txt = items.iter().find(|b| b["file_type"] == "txt").expect("txt book");
    assert_eq!(txt["conversion_status"], "pending");
    let bomb = items.iter().find(|b| b["file_type"] == "epub").unwrap();
    assert_eq!(bomb["cover_url"], Value::Null);
    // Nothing was written outside the data dir, and no spool files are left.
    assert!(!std::path::Path::new("/tmp/athena-pwned.txt").exists());
    let spool = t.dir.path().join("data/hot/tmp/uploads");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "spool is empty");
    // The server keeps serving.
    let r = t.client.get(t.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t.stop().await;
}

async fn auth_tokens_and_sessions(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    // Wrong code → 401; a second send within 60 s → 429.
    let r = t.client.post(t.url("/api/v1/auth/email/send-code")).json(&json!({"email": "cat@example.com"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let code = r.json::<Value>().await.unwrap()["data"]["dev_code"].as_str().unwrap().to_string();
    let r = t.client.post(t.url("/api/v1/auth/email/send-code")).json(&json!({"email": "CAT@example.com"})).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let r = t
            .client
            .post(t.url("/api/v1/auth/email/verify-code"))
            .json(&json!({"email": "cat@example.com", "code": wrong}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_code");
    }
    // Five wrong guesses burn the code: even the right one fails now.
    let r = t
        .client
        .post(t.url("/api/v1/auth/email/verify-code"))
        .json(&json!({"email": "cat@example.com", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let ann = t.login("ann@example.com").await;
    let me: Value = t.get(&ann, "/api/v1/auth/me").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["data"]["email"], "ann@example.com");
    // The access token carries exactly the contract's claims.
    let payload = ann.token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["sub"], ann.id);
    assert_eq!(claims["user_id"], ann.id);
    assert_eq!(claims["sid"], ann.session);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);

    // Tampered, wrong-algorithm, wrong-audience and expired tokens → 401.
    let parts: Vec<&str> = ann.token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64_url_encode(br#"{"sub":"x","user_id":"x","sid":"x","iat":1,"exp":99999999999,"aud":"authenticated"}"#),
        parts[2]
    );
    let none_alg = format!("{}.{}.", base64_url_encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let secret = t.app.config.jwt_secret.as_ref().unwrap().expose().to_string();
    let now = chrono::Utc::now().timestamp();
    let sign = |header: &str, claims: Value| {
        use hmac::Mac;
        let h = base64_url_encode(header.as_bytes());
        let c = base64_url_encode(claims.to_string().as_bytes());
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", base64_url_encode(&mac.finalize().into_bytes()))
    };
    let base_claims = json!({"sub": ann.id, "user_id": ann.id, "sid": ann.session, "iat": now, "exp": now + 600, "aud": "authenticated"});
    let mut wrong_aud = base_claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut expired = base_claims.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let valid_forged_by_us = sign(r#"{"alg":"HS256","typ":"JWT"}"#, base_claims.clone());
    let hs512 = sign(r#"{"alg":"HS512","typ":"JWT"}"#, base_claims.clone());
    for (what, token) in [
        ("tampered", tampered),
        ("alg none", none_alg),
        ("wrong audience", sign(r#"{"alg":"HS256","typ":"JWT"}"#, wrong_aud)),
        ("expired", sign(r#"{"alg":"HS256","typ":"JWT"}"#, expired)),
        ("wrong algorithm", hs512),
        ("garbage", "not-a-token".to_string()),
    ] {
        let r = t.client.get(t.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_token", "{what}");
    }
    // Sanity: the signing helper itself makes tokens the server accepts.
    let r = t.client.get(t.url("/api/v1/auth/me")).bearer_auth(&valid_forged_by_us).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.client.get(t.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");

    // Refresh rotates: the old refresh token stops working.
    let r = t.client.post(t.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": ann.refresh})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let new: Value = r.json().await.unwrap();
    let r = t.client.post(t.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": ann.refresh})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_refresh");
    let new_access = new["data"]["tokens"]["access_token"].as_str().unwrap();

    // Sessions list; logging out a session ends its access at once.
    t.clock.advance(chrono::Duration::seconds(61));
    let second = t.login("ann@example.com").await;
    let sessions: Value = t.get(&second, "/api/v1/auth/sessions").send().await.unwrap().json().await.unwrap();
    assert_eq!(sessions["data"].as_array().unwrap().len(), 2);
    let r = t.post(&second, "/api/v1/auth/logout").json(&json!({"session_id": ann.session})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.client.get(t.url("/api/v1/auth/me")).bearer_auth(new_access).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = t.post(&second, "/api/v1/auth/logout").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = t.get(&second, "/api/v1/auth/me").send().await.unwrap();
    assert_eq!(r.status(), 401);
    t.stop().await;
}

async fn validation_errors_are_422_with_fields(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let cases: Vec<(&str, &str, reqwest::RequestBuilder, &str)> = vec![
        (
            "malformed JSON",
            "body",
            t.client.post(t.url("/api/v1/auth/email/send-code")).header("content-type", "application/json").body("{\"email\":"),
            "validation_error",
        ),
        ("wrong type", "email", t.client.post(t.url("/api/v1/auth/email/send-code")).json(&json!({"email": 42})), "validation_error"),
        ("not an email", "email", t.client.post(t.url("/api/v1/auth/email/send-code")).json(&json!({"email": "nope"})), "validation_error"),
        (
            "unknown field",
            "body",
            t.client.post(t.url("/api/v1/auth/email/send-code")).json(&json!({"email": "a@b.co", "admin": true})),
            "validation_error",
        ),
        ("missing field", "body", t.post(&ann, "/api/v1/shelves").json(&json!({})), "validation_error"),
        ("empty name", "name", t.post(&ann, "/api/v1/shelves").json(&json!({"name": "  "})), "validation_error"),
        (
            "bad hash",
            "content_sha256",
            t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": "a.epub", "content_sha256": "xyz"})),
            "validation_error",
        ),
        ("limit", "limit", t.get(&ann, "/api/v1/books?limit=100000"), "validation_error"),
        ("cursor", "cursor", t.get(&ann, "/api/v1/books?cursor=%00%01"), "validation_error"),
        ("not JSON", "body", t.post(&ann, "/api/v1/shelves").body("name=x"), "validation_error"),
    ];
    for (what, field, req, code) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 422, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "error", "{what}");
        assert_eq!(body["code"], code, "{what}");
        assert_eq!(body["detail"], code, "{what}");
        if field != "body" {
            assert_eq!(body["details"]["field"], field, "{what}: {body}");
        }
        let text = body.to_string();
        assert!(!text.contains("sqlx") && !text.contains("SELECT") && !text.contains("panicked"), "{what}: {text}");
    }
    // Unknown ids are 404, unknown routes 404 with the envelope.
    let r = t.get(&ann, "/api/v1/books/not-a-uuid").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = t.get(&ann, "/api/v1/nope").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    // An oversized JSON body is 413.
    let big = json!({"name": "x".repeat(400_000)});
    let r = t.post(&ann, "/api/v1/shelves").json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    t.stop().await;
}

async fn content_ranges_and_cover(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let path = corpus().join("zh/guwenguanzhi.epub");
    let bytes = std::fs::read(&path).unwrap();
    let (_, book) = t.upload(&ann, &path).await;
    let id = book["data"]["id"].as_str().unwrap();
    let r = t.get(&ann, &format!("/api/v1/books/{id}/content")).header("Range", "bytes=100-199").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 100-199/{}", bytes.len()));
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let r = t.get(&ann, &format!("/api/v1/books/{id}/content")).header("Range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[bytes.len() - 10..]);
    let r =
        t.get(&ann, &format!("/api/v1/books/{id}/content")).header("Range", format!("bytes={}-", bytes.len() + 5)).send().await.unwrap();
    assert_eq!(r.status(), 416);
    let r = t.get(&ann, &format!("/api/v1/books/{id}/content")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/epub+zip");
    assert_eq!(r.bytes().await.unwrap().len(), bytes.len());
    // Media URLs work with ?token= for <img> and readers.
    let r = t.client.get(t.url(&format!("/api/v1/books/{id}/cover?token={}", ann.token))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    t.stop().await;
}

async fn oversized_uploads_are_refused(backend: Backend) {
    let t = TestApp::spawn_with(backend, &[("ATHENA_MAX_UPLOAD_BYTES", "150000"), ("ATHENA_QUOTA_BOOKS", "2")]).await;
    let ann = t.login("ann@example.com").await;
    let (status, body) = t.upload_bytes(&ann, "big.txt", vec![b'a'; 300_000]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    let r = t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": "big.epub", "size": 200_000})).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // A presigned PUT cannot enforce the size; upload_complete does, and deletes the bytes.
    if matches!(backend, Backend::PostgresS3) {
        let r: Value =
            t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": "big.epub"})).send().await.unwrap().json().await.unwrap();
        let key = r["data"]["key"].as_str().unwrap().to_string();
        let mut put = t.client.put(r["data"]["upload_url"].as_str().unwrap()).body(vec![0u8; 200_000]);
        for (k, v) in r["data"]["headers"].as_object().unwrap() {
            put = put.header(k, v.as_str().unwrap());
        }
        assert!(put.send().await.unwrap().status().is_success());
        let r = t.post(&ann, "/api/v1/books/upload_complete").json(&json!({"key": key})).send().await.unwrap();
        assert_eq!(r.status(), 413);
        assert!(t.app.blobs.stat(&key.parse().unwrap()).await.unwrap().is_none());
    }
    // Quota: two books make the account read-only for uploads.
    assert_eq!(t.upload(&ann, &corpus().join("zh/lunyu.epub")).await.0, 201);
    assert_eq!(t.upload(&ann, &corpus().join("epub/wasteland.epub")).await.0, 201);
    let (status, body) = t.upload(&ann, &corpus().join("zh/tangshi300.epub")).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "upload_forbidden_quota_exceeded");
    t.stop().await;
}

async fn housekeeping_sweeps_expired_uploads_and_trash(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    // An upload that was started and never completed.
    let r: Value =
        t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": "abandoned.epub"})).send().await.unwrap().json().await.unwrap();
    let key: athena_domain::ObjectKey = r["data"]["key"].as_str().unwrap().parse().unwrap();
    let mut put = t.client.put(r["data"]["upload_url"].as_str().unwrap()).body(vec![7u8; 10_000]);
    for (k, v) in r["data"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());
    assert!(t.app.blobs.stat(&key).await.unwrap().is_some());
    // A completed upload whose pending row outlived it must keep its bytes.
    let (_, kept) = t.upload(&ann, &corpus().join("zh/lunyu.epub")).await;
    // A book in the trash.
    let (_, trashed) = t.upload(&ann, &corpus().join("epub/wasteland.epub")).await;
    let trashed_id = trashed["data"]["id"].as_str().unwrap();
    let trashed_key: athena_domain::ObjectKey = trashed["data"]["storage_key"].as_str().unwrap().parse().unwrap();
    t.delete(&ann, &format!("/api/v1/books/{trashed_id}")).send().await.unwrap();

    // Nothing is due yet.
    let report = t.app.sweep().await.unwrap();
    assert_eq!((report.pending_uploads_removed, report.books_purged), (0, 0));
    assert!(t.app.blobs.stat(&key).await.unwrap().is_some());

    t.clock.advance(chrono::Duration::hours(25));
    let report = t.app.sweep().await.unwrap();
    assert_eq!(report.pending_uploads_removed, 1);
    assert!(t.app.blobs.stat(&key).await.unwrap().is_none(), "abandoned upload deleted after 24 h");
    let r = t.post(&ann, "/api/v1/books/upload_complete").json(&json!({"key": key.to_string()})).send().await.unwrap();
    assert_eq!(r.status(), 404, "an expired upload cannot be completed");

    t.clock.advance(chrono::Duration::days(30));
    let report = t.app.sweep().await.unwrap();
    assert_eq!(report.books_purged, 1);
    let trash: Value = t.get(&ann, "/api/v1/books/deleted").send().await.unwrap().json().await.unwrap();
    assert!(trash["data"]["items"].as_array().unwrap().is_empty());
    assert!(t.app.blobs.stat(&trashed_key).await.unwrap().is_none(), "purged book's bytes freed");
    let kept_id = kept["data"]["id"].as_str().unwrap();
    let content = t.get(&ann, &format!("/api/v1/books/{kept_id}/content")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&content), sha256_hex(&std::fs::read(corpus().join("zh/lunyu.epub")).unwrap()));
    t.stop().await;
}

async fn operations_surface(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let r = t.client.get(t.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let expected_db = if matches!(backend, Backend::Embedded) { "sqlite" } else { "postgres" };
    let expected_storage = if matches!(backend, Backend::Embedded) { "fs" } else { "s3" };
    assert_eq!(health["components"]["database"]["detail"], expected_db);
    assert_eq!(health["components"]["storage"]["detail"], expected_storage);

    t.get(&ann, "/api/v1/books").send().await.unwrap();
    let metrics = t.client.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("athena_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/books\""), "per-route labels");
    assert!(metrics.contains("athena_http_request_duration_seconds_bucket"), "latency histogram");
    assert!(metrics.contains("athena_db_pool_connections"), "pool gauge");

    // Every route of the router is in the OpenAPI document.
    let doc: Value = t.client.get(t.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/email/send-code", "post"),
        ("/api/v1/auth/email/verify-code", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/sessions", "get"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/books", "get"),
        ("/api/v1/books", "post"),
        ("/api/v1/books/deleted", "get"),
        ("/api/v1/books/upload_init", "post"),
        ("/api/v1/books/upload/{key}", "put"),
        ("/api/v1/books/upload_complete", "post"),
        ("/api/v1/books/dedup_reference", "post"),
        ("/api/v1/books/{id}", "get"),
        ("/api/v1/books/{id}", "delete"),
        ("/api/v1/books/{id}/metadata", "patch"),
        ("/api/v1/books/{id}/restore", "post"),
        ("/api/v1/books/{id}/permanent", "delete"),
        ("/api/v1/books/{id}/content", "get"),
        ("/api/v1/books/{id}/cover", "get"),
        ("/api/v1/shelves", "post"),
        ("/api/v1/shelves", "get"),
        ("/api/v1/shelves/{id}", "get"),
        ("/api/v1/shelves/{id}", "patch"),
        ("/api/v1/shelves/{id}", "delete"),
        ("/api/v1/shelves/{id}/items", "post"),
        ("/api/v1/shelves/{id}/items", "get"),
        ("/api/v1/shelves/{id}/items/{book_id}", "delete"),
        ("/health", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing from /openapi.json");
    }
    // Swagger UI is served from the binary (works offline).
    let r = t.client.get(t.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let r = t.client.get(t.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.bytes().await.unwrap().len() > 1000, "{asset} is the real asset");
    }
    // The placeholder page says the web app is not there yet.
    let page = t.client.get(t.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("not built yet"));
    t.stop().await;
}

async fn pdfs_get_page_counts_and_text_layer_detection(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    for (name, pages, digital) in
        [("text-layer-zh.pdf", None, true), ("scanned-shijing.pdf", Some(6), false), ("scanned-en.pdf", Some(1), false)]
    {
        let (status, body) = t.upload(&ann, &corpus().join("pdf").join(name)).await;
        assert_eq!(status, 201, "{name}: {body}");
        let book = &body["data"];
        assert_eq!(book["file_type"], "pdf", "{name}");
        assert_eq!(book["is_digitalized"], digital, "{name}");
        let confidence = book["initial_digitalization_confidence"].as_f64().unwrap();
        assert!(if digital { confidence >= 0.5 } else { confidence < 0.5 }, "{name}: {confidence}");
        if let Some(pages) = pages {
            assert_eq!(book["page_count"], pages, "{name}");
        }
        assert!(book["page_count"].as_i64().unwrap() >= 1);
        assert_eq!(book["conversion_status"], Value::Null, "PDFs are read directly");
    }
    t.stop().await;
}

async fn hostile_filenames_never_reach_object_keys(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let long = format!("{}.epub", "长".repeat(1995));
    // A NUL is refused outright rather than sanitised.
    let r = t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": "a\u{0}b.epub"})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    for name in ["../../x.epub", "/etc/passwd", "tab\tname.epub", "C:\\Windows\\system32\\x.epub", long.as_str(), "..", "%2e%2e%2fx.epub"] {
        let r: Value =
            t.post(&ann, "/api/v1/books/upload_init").json(&json!({"filename": name})).send().await.unwrap().json().await.unwrap();
        let key = r["data"]["key"].as_str().unwrap_or_else(|| panic!("{name:?}: {r}"));
        let prefix = format!("users/{}/", ann.id);
        assert!(key.starts_with(&prefix), "{key}");
        let rest = &key[prefix.len()..];
        let segments: Vec<&str> = rest.split('/').collect();
        assert_eq!(segments.len(), 2, "one upload id and one file name: {key}");
        assert!(segments[1].len() <= 120 && !segments[1].starts_with('.'), "{key}");
        assert!(key.parse::<athena_domain::ObjectKey>().is_ok(), "{key}");
    }
    // A one-step upload with a hostile name lands under the user's prefix too.
    let (status, body) = t.upload_bytes(&ann, "../../../../tmp/evil.txt", b"hello world, a tiny text book".to_vec()).await;
    assert_eq!(status, 201, "{body}");
    let key = body["data"]["storage_key"].as_str().unwrap();
    assert!(key.starts_with(&format!("users/{}/", ann.id)) && !key.contains(".."), "{key}");
    assert!(!std::path::Path::new("/tmp/evil.txt").exists());
    t.stop().await;
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn base64_url_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
