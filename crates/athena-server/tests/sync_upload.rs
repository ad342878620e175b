//! `POST /api/v1/sync/upload` end to end: clients' CRUD queues replayed under the conflict rules of
//! `DATA-MODEL.md`, each scenario on embedded (SQLite + folder) and PostgreSQL + SeaweedFS S3.
//! Effects are checked in the database through `t.app.store` and through REST.

#[macro_use]
mod common;

use athena_domain::UserId;
use athena_store::SyncTable;
use common::{corpus, Backend, TestApp, User};
use serde_json::{json, Map, Value};

on_both_backends!(
    writes_reach_every_table,
    progress_is_last_writer_wins_and_merges_devices,
    stale_note_edits_become_one_conflict_copy,
    shelves_merge_by_column,
    other_users_rows_and_ids_are_not_trusted,
    bad_operations_are_refused_one_by_one,
    malformed_and_oversized_requests,
    retrying_a_batch_is_harmless,
    over_quota_accounts_are_read_only,
    uploads_can_be_disabled,
);

/// A fresh row id, as a client makes one.
fn uuid() -> String {
    athena_domain::BookId::new().to_string()
}

async fn sync(t: &TestApp, user: &User, operations: Value) -> (u16, Value) {
    let r = t.post(user, "/api/v1/sync/upload").json(&json!({ "operations": operations })).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Uploads succeed as a whole: 200, every operation applied.
async fn sync_ok(t: &TestApp, user: &User, operations: Value) -> Value {
    let n = operations.as_array().unwrap().len();
    let (status, body) = sync(t, user, operations).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "the usual envelope: {body}");
    assert_eq!(body["data"]["errors"], json!([]), "{body}");
    assert_eq!(body["data"]["status"], "ok");
    assert_eq!(body["data"]["processed"], n);
    body
}

fn put(table: &str, id: &str, data: Value) -> Value {
    json!({"table": table, "op": "PUT", "id": id, "data": data})
}
fn patch(table: &str, id: &str, data: Value) -> Value {
    json!({"table": table, "op": "PATCH", "id": id, "data": data})
}
fn delete(table: &str, id: &str) -> Value {
    json!({"table": table, "op": "DELETE", "id": id})
}

fn user_id(u: &User) -> UserId {
    u.id.parse().unwrap()
}

async fn row(t: &TestApp, u: &User, table: SyncTable, id: &str) -> Option<Map<String, Value>> {
    t.app.store.client_row(&user_id(u), table, id).await.unwrap()
}

async fn must_row(t: &TestApp, u: &User, table: SyncTable, id: &str) -> Map<String, Value> {
    row(t, u, table, id).await.unwrap_or_else(|| panic!("{} {id} exists", table.name()))
}

async fn a_book(t: &TestApp, u: &User, file: &str) -> String {
    let (status, body) = t.upload(u, &corpus().join(file)).await;
    assert!(status == 201 || status == 200, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn writes_reach_every_table(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let [note, hl, mark, shelf, item, prog, sess, us, rs] = std::array::from_fn(|_| uuid());
    let at = "2024-05-01T10:00:00.000Z";
    sync_ok(
        &t,
        &ann,
        json!([
            put("notes", &note, json!({"book_id": book, "device_id": "phone", "content": "学而时习之", "page_number": 3, "is_deleted": 0, "created_at": at, "updated_at": at})),
            put("highlights", &hl, json!({"book_id": book, "device_id": "phone", "text": "不亦说乎", "color": "#ff0", "updated_at": at})),
            put("bookmarks", &mark, json!({"book_id": book, "device_id": "phone", "title": "Chapter 1", "position_cfi": "epubcfi(/6/4)", "is_deleted": false})),
            put("shelves", &shelf, json!({"name": "Classics", "sort_order": 1})),
            put("shelf_books", &item, json!({"shelf_id": shelf, "book_id": book, "sort_order": 0})),
            put("reading_progress", &prog, json!({"book_id": book, "device_id": "phone", "progress": 0.25, "last_location": "{\"current\":3,\"total\":12}", "updated_at": at})),
            put("reading_sessions", &sess, json!({"book_id": book, "device_id": "phone", "is_active": 1, "total_ms": 60000})),
            put("user_settings", &us, json!({"device_id": "phone", "settings_json": {"daily_goal_minutes": 30}, "updated_at": at})),
            put("reading_settings", &rs, json!({"device_id": "phone", "font_size": 18.5, "hyphenation": true, "updated_at": at})),
            patch("books", &book, json!({"title": "论语 (annotated)", "author": "Confucius"})),
        ]),
    )
    .await;

    let n = must_row(&t, &ann, SyncTable::Notes, &note).await;
    assert_eq!(
        (n["content"].as_str(), n["page_number"].as_i64(), n["user_id"].as_str()),
        (Some("学而时习之"), Some(3), Some(ann.id.as_str()))
    );
    assert_eq!(n["updated_at"], "2024-05-01T10:00:00.000000Z");
    assert_eq!(must_row(&t, &ann, SyncTable::Highlights, &hl).await["color"], "#ff0");
    let hl_row = must_row(&t, &ann, SyncTable::Highlights, &hl).await;
    assert!(hl_row["created_at"].is_string(), "server fills created_at on insert");
    assert_eq!(must_row(&t, &ann, SyncTable::Bookmarks, &mark).await["is_deleted"], 0);
    let p = must_row(&t, &ann, SyncTable::ReadingProgress, &prog).await;
    assert_eq!((p["progress"].as_f64(), p["last_location"].as_str()), (Some(0.25), Some("{\"current\":3,\"total\":12}")));
    assert_eq!(must_row(&t, &ann, SyncTable::ReadingSessions, &sess).await["is_active"], 1);
    assert_eq!(must_row(&t, &ann, SyncTable::UserSettings, &us).await["settings_json"], "{\"daily_goal_minutes\":30}");
    let r = must_row(&t, &ann, SyncTable::ReadingSettings, &rs).await;
    assert_eq!((r["font_size"].as_f64(), r["hyphenation"].as_i64(), r["book_id"].is_null()), (Some(18.5), Some(1), true));
    // REST sees the book edit and the shelf with its item.
    let b: Value = t.get(&ann, &format!("/api/v1/books/{book}")).send().await.unwrap().json().await.unwrap();
    assert_eq!((b["data"]["title"].as_str(), b["data"]["author"].as_str()), (Some("论语 (annotated)"), Some("Confucius")));
    let items: Value = t.get(&ann, &format!("/api/v1/shelves/{shelf}/items")).send().await.unwrap().json().await.unwrap();
    assert_eq!(items["data"]["items"][0]["book_id"], json!(book));

    // Updates and every delete rule.
    let later = "2024-05-01T11:00:00Z";
    sync_ok(
        &t,
        &ann,
        json!([
            patch("notes", &note, json!({"content": "edited", "updated_at": later})),
            delete("bookmarks", &mark),
            delete("reading_progress", &prog),
            delete("shelf_books", &item),
            delete("reading_sessions", &sess),
            delete("user_settings", &us),
            delete("highlights", &hl),
            delete("books", &book),
        ]),
    )
    .await;
    let n = must_row(&t, &ann, SyncTable::Notes, &note).await;
    assert_eq!((n["content"].as_str(), n["device_id"].as_str()), (Some("edited"), Some("phone")), "PATCH keeps other columns");
    let m = must_row(&t, &ann, SyncTable::Bookmarks, &mark).await;
    assert_eq!(m["is_deleted"], 1, "bookmarks are soft-deleted");
    assert!(m["deleted_at"].is_string());
    assert_eq!(must_row(&t, &ann, SyncTable::Highlights, &hl).await["is_deleted"], 1);
    for (table, id) in [
        (SyncTable::ReadingProgress, &prog),
        (SyncTable::ShelfBooks, &item),
        (SyncTable::ReadingSessions, &sess),
        (SyncTable::UserSettings, &us),
    ] {
        assert!(row(&t, &ann, table, id).await.is_none(), "{} rows are removed", table.name());
    }
    assert_eq!(t.get(&ann, &format!("/api/v1/books/{book}")).send().await.unwrap().status(), 404, "the book is in the trash");
    let trash: Value = t.get(&ann, "/api/v1/books/deleted").send().await.unwrap().json().await.unwrap();
    assert_eq!(trash["data"]["items"][0]["id"], json!(book));
    t.stop().await;
}

async fn progress_is_last_writer_wins_and_merges_devices(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let phone = uuid();
    let progress = |p: f64, at: &str, device: &str| json!({"book_id": book, "device_id": device, "progress": p, "updated_at": at});
    sync_ok(&t, &ann, json!([put("reading_progress", &phone, progress(0.5, "2024-05-01T10:00:00Z", "phone"))])).await;
    // An older write (the phone's queue replayed late) never overwrites the newer one.
    sync_ok(&t, &ann, json!([put("reading_progress", &phone, progress(0.1, "2024-05-01T09:00:00Z", "phone"))])).await;
    sync_ok(&t, &ann, json!([patch("reading_progress", &phone, json!({"progress": 0.2, "updated_at": "2024-05-01T09:30:00+00:00"}))]))
        .await;
    assert_eq!(must_row(&t, &ann, SyncTable::ReadingProgress, &phone).await["progress"], 0.5);

    // The tablet creates its own row for the same book: merged into the phone's row, not refused.
    let tablet = uuid();
    sync_ok(&t, &ann, json!([put("reading_progress", &tablet, progress(0.75, "2024-05-01T12:00:00Z", "tablet"))])).await;
    let p = must_row(&t, &ann, SyncTable::ReadingProgress, &phone).await;
    assert_eq!((p["progress"].as_f64(), p["device_id"].as_str()), (Some(0.75), Some("tablet")));
    assert!(row(&t, &ann, SyncTable::ReadingProgress, &tablet).await.is_none(), "one row per (user, book)");
    // The tablet keeps writing under its id: those writes reach the one row.
    sync_ok(&t, &ann, json!([patch("reading_progress", &tablet, json!({"progress": 0.8, "updated_at": "2024-05-01T12:05:00Z"}))])).await;
    assert_eq!(must_row(&t, &ann, SyncTable::ReadingProgress, &phone).await["progress"], 0.8);
    // And the phone's older write after that still loses.
    sync_ok(&t, &ann, json!([patch("reading_progress", &phone, json!({"progress": 0.6, "updated_at": "2024-05-01T12:01:00Z"}))])).await;
    assert_eq!(must_row(&t, &ann, SyncTable::ReadingProgress, &phone).await["progress"], 0.8);
    t.stop().await;
}

async fn stale_note_edits_become_one_conflict_copy(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let note = uuid();
    sync_ok(
        &t,
        &ann,
        json!([put("notes", &note, json!({"book_id": book, "device_id": "phone", "content": "v1", "updated_at": "2024-05-01T10:00:00Z"}))]),
    )
    .await;
    sync_ok(
        &t,
        &ann,
        json!([patch("notes", &note, json!({"device_id": "phone", "content": "phone v2", "updated_at": "2024-05-01T12:00:00Z"}))]),
    )
    .await;
    // The tablet edited the note offline at 11:00 and uploads now: kept as a copy.
    let stale =
        json!([patch("notes", &note, json!({"device_id": "tablet", "content": "tablet edit", "updated_at": "2024-05-01T11:00:00Z"}))]);
    sync_ok(&t, &ann, stale.clone()).await;
    let at = "2024-05-01T11:00:00Z".parse().unwrap();
    let copy = athena_app::conflict_copy_id(&note, "tablet", at);
    let original = must_row(&t, &ann, SyncTable::Notes, &note).await;
    assert_eq!(original["content"], "phone v2", "the newer edit wins the row");
    let c = must_row(&t, &ann, SyncTable::Notes, &copy).await;
    assert_eq!((c["conflict_of"].as_str(), c["content"].as_str()), (Some(note.as_str()), Some("tablet edit")));
    assert_eq!((c["book_id"].as_str(), c["device_id"].as_str(), c["is_deleted"].as_i64()), (Some(book.as_str()), Some("tablet"), Some(0)));
    // The upload is retried (the response was lost): still one copy, unchanged.
    sync_ok(&t, &ann, stale).await;
    assert_eq!(must_row(&t, &ann, SyncTable::Notes, &copy).await, c);
    assert_eq!(must_row(&t, &ann, SyncTable::Notes, &note).await, original);
    // Highlights follow the same rule.
    let hl = uuid();
    sync_ok(
        &t,
        &ann,
        json!([put("highlights", &hl, json!({"book_id": book, "device_id": "phone", "text": "a", "updated_at": "2024-05-02T10:00:00Z"}))]),
    )
    .await;
    sync_ok(&t, &ann, json!([patch("highlights", &hl, json!({"device_id": "web", "color": "red", "updated_at": "2024-05-02T09:00:00Z"}))]))
        .await;
    let hl_copy = athena_app::conflict_copy_id(&hl, "web", "2024-05-02T09:00:00Z".parse().unwrap());
    let hc = must_row(&t, &ann, SyncTable::Highlights, &hl_copy).await;
    assert_eq!((hc["conflict_of"].as_str(), hc["color"].as_str(), hc["text"].as_str()), (Some(hl.as_str()), Some("red"), Some("a")));
    assert!(must_row(&t, &ann, SyncTable::Highlights, &hl).await["color"].is_null());
    t.stop().await;
}

async fn shelves_merge_by_column(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let shelf = uuid();
    sync_ok(&t, &ann, json!([put("shelves", &shelf, json!({"name": "Poetry", "description": "verse", "sort_order": 1}))])).await;
    // Two devices each change one column; both changes survive.
    sync_ok(&t, &ann, json!([patch("shelves", &shelf, json!({"name": "Poems"}))])).await;
    sync_ok(&t, &ann, json!([patch("shelves", &shelf, json!({"sort_order": 5}))])).await;
    let r: Value = t.get(&ann, &format!("/api/v1/shelves/{shelf}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (r["data"]["name"].as_str(), r["data"]["description"].as_str(), r["data"]["sort_order"].as_i64()),
        (Some("Poems"), Some("verse"), Some(5))
    );
    // A shelf item from a second device for the same (shelf, book) merges into the first.
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let (i1, i2) = (uuid(), uuid());
    sync_ok(&t, &ann, json!([put("shelf_books", &i1, json!({"shelf_id": shelf, "book_id": book, "sort_order": 1}))])).await;
    sync_ok(&t, &ann, json!([put("shelf_books", &i2, json!({"shelf_id": shelf, "book_id": book, "sort_order": 9}))])).await;
    let items: Value = t.get(&ann, &format!("/api/v1/shelves/{shelf}/items")).send().await.unwrap().json().await.unwrap();
    assert_eq!(items["data"]["items"].as_array().unwrap().len(), 1);
    assert_eq!((items["data"]["items"][0]["id"].as_str(), items["data"]["items"][0]["sort_order"].as_i64()), (Some(i1.as_str()), Some(9)));
    // Deleting the shelf: soft, and its items go.
    sync_ok(&t, &ann, json!([delete("shelves", &shelf)])).await;
    assert_eq!(t.get(&ann, &format!("/api/v1/shelves/{shelf}")).send().await.unwrap().status(), 404);
    assert_eq!(must_row(&t, &ann, SyncTable::Shelves, &shelf).await["is_deleted"], 1);
    assert!(row(&t, &ann, SyncTable::ShelfBooks, &i1).await.is_none());
    t.stop().await;
}

async fn other_users_rows_and_ids_are_not_trusted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let bob = t.login("bob@example.com").await;
    let bobs_book = a_book(&t, &bob, "zh/lunyu.epub").await;
    let anns_book = a_book(&t, &ann, "epub/wasteland.epub").await;
    let (n1, n2, s1) = (uuid(), uuid(), uuid());
    let (status, body) = sync(
        &t,
        &ann,
        json!([
            put("notes", &n1, json!({"book_id": bobs_book, "content": "on bob's book", "updated_at": "2024-05-01T10:00:00Z"})),
            // `user_id` (and `id`) in data are ignored: the row is the caller's.
            put(
                "notes",
                &n2,
                json!({"book_id": anns_book, "user_id": bob.id, "id": uuid(), "content": "mine", "updated_at": "2024-05-01T10:00:00Z"})
            ),
            put("shelf_books", &s1, json!({"shelf_id": uuid(), "book_id": anns_book})),
            patch("books", &bobs_book, json!({"title": "stolen"})),
            delete("books", &bobs_book),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "partial");
    assert_eq!(body["data"]["processed"], 2, "the note on her own book and the no-op delete: {body}");
    let errors = body["data"]["errors"].as_array().unwrap();
    let refused: Vec<(&str, &str)> = errors.iter().map(|e| (e["id"].as_str().unwrap(), e["code"].as_str().unwrap())).collect();
    assert_eq!(refused, [(n1.as_str(), "not_found"), (s1.as_str(), "not_found"), (bobs_book.as_str(), "not_found")]);
    assert!(row(&t, &ann, SyncTable::Notes, &n1).await.is_none());
    let mine = must_row(&t, &ann, SyncTable::Notes, &n2).await;
    assert_eq!(mine["user_id"], json!(ann.id));
    assert!(row(&t, &bob, SyncTable::Notes, &n2).await.is_none());
    let b: Value = t.get(&bob, &format!("/api/v1/books/{bobs_book}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["data"]["title"], "论语", "bob's book is untouched and not deleted");
    // Bob cannot take over ann's note by re-using its id.
    let (_, body) =
        sync(&t, &bob, json!([put("notes", &n2, json!({"book_id": bobs_book, "content": "bob", "updated_at": "2030-01-01T00:00:00Z"}))]))
            .await;
    assert_eq!(body["data"]["errors"][0]["code"], "validation_error", "{body}");
    assert_eq!(must_row(&t, &ann, SyncTable::Notes, &n2).await["content"], "mine");
    t.stop().await;
}

async fn bad_operations_are_refused_one_by_one(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let good = uuid();
    let ids: [String; 7] = std::array::from_fn(|_| uuid());
    let (status, body) = sync(
        &t,
        &ann,
        json!([
            put("secrets", &ids[0], json!({"x": 1})),
            put(
                "notes",
                &ids[1],
                json!({"book_id": book, "content": "x", "updated_at": "2024-05-01T10:00:00Z", "sql": "DROP TABLE notes"})
            ),
            json!({"table": "notes", "op": "MERGE", "id": ids[2]}),
            put("notes", "not-a-uuid", json!({"book_id": book, "content": "x", "updated_at": "2024-05-01T10:00:00Z"})),
            patch("books", &book, json!({"file_size": 1})),
            put("reading_progress", &ids[3], json!({"book_id": book, "progress": "half", "updated_at": "2024-05-01T10:00:00Z"})),
            put("notes", &good, json!({"book_id": book, "content": "good", "updated_at": "2024-05-01T10:00:00Z"})),
            put("notes", &ids[4], json!({"book_id": book, "content": "x", "updated_at": "last tuesday"})),
            put("books", &ids[5], json!({"title": "no creating books"})),
            put("notes", &ids[6], json!({"book_id": book, "content": "x".repeat(100_001), "updated_at": "2024-05-01T10:00:00Z"})),
        ]),
    )
    .await;
    assert_eq!(status, 200, "one bad operation never fails the others: {body}");
    assert_eq!(body["data"]["processed"], 1);
    let errors = body["data"]["errors"].as_array().unwrap();
    let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
    let expected = ["validation_error"; 7].into_iter().chain(["not_found", "validation_error"]).collect::<Vec<_>>();
    assert_eq!(codes, expected, "{body}");
    assert!(errors[0]["message"].as_str().unwrap().contains("unknown table"));
    assert!(errors[1]["message"].as_str().unwrap().contains("unknown column"));
    assert_eq!(errors[3]["id"], "not-a-uuid");
    assert!(errors[4]["message"].as_str().unwrap().contains("cannot be written"));
    assert_eq!(must_row(&t, &ann, SyncTable::Notes, &good).await["content"], "good");
    // Every refusal is kept server-side with its payload.
    let kept = t.app.store.upload_rejections(&user_id(&ann), 100).await.unwrap();
    assert_eq!(kept.len(), 9);
    let unknown = kept.iter().find(|r| r.row_id == ids[1]).expect("recorded");
    assert_eq!((unknown.table.as_str(), unknown.op.as_str(), unknown.code.as_str()), ("notes", "PUT", "validation_error"));
    assert!(unknown.payload.as_deref().unwrap().contains("DROP TABLE"));
    t.stop().await;
}

async fn malformed_and_oversized_requests(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let url = t.url("/api/v1/sync/upload");
    let raw = |body: &'static str| t.client.post(&url).bearer_auth(&ann.token).header("content-type", "application/json").body(body);
    for garbage in [
        "not json",
        "{\"operations\": [{\"table\": \"notes\", \"op\": \"PUT\"",
        "{\"operations\": {}}",
        "[]",
        "{\"operations\": [{\"op\": \"PUT\"}]}",
    ] {
        let r = raw(garbage).send().await.unwrap();
        assert_eq!(r.status(), 422, "{garbage}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "validation_error");
    }
    let r = t.client.post(&url).bearer_auth(&ann.token).body("{\"operations\": []}").send().await.unwrap();
    assert_eq!(r.status(), 422, "JSON only");
    assert_eq!(t.client.post(&url).json(&json!({"operations": []})).send().await.unwrap().status(), 401);
    sync_ok(&t, &ann, json!([])).await;

    // 10,000 operations are fine (and bigger than other routes' 256 KiB limit); 10,001 are refused.
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let ops: Vec<Value> = (0..10_000).map(|_| delete("notes", &uuid())).collect();
    sync_ok(&t, &ann, Value::Array(ops.clone())).await;
    let mut too_many = ops;
    too_many.push(put("notes", &uuid(), json!({"book_id": book, "content": "x", "updated_at": "2024-05-01T10:00:00Z"})));
    let (status, body) = sync(&t, &ann, Value::Array(too_many)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("at most 10000 operations"), "{body}");
    // Over 16 MiB: 413.
    let huge = json!([put("notes", &uuid(), json!({"content": "x".repeat(17 * 1024 * 1024)}))]);
    let (status, body) = sync(&t, &ann, huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    t.stop().await;
}

async fn retrying_a_batch_is_harmless(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let [note, prog, prog2, shelf, item, item2, mark] = std::array::from_fn(|_| uuid());
    let batch = json!([
        put("notes", &note, json!({"book_id": book, "device_id": "phone", "content": "v1", "updated_at": "2024-05-01T10:00:00Z"})),
        patch("notes", &note, json!({"content": "v2", "updated_at": "2024-05-01T10:01:00Z"})),
        put("reading_progress", &prog, json!({"book_id": book, "progress": 0.3, "updated_at": "2024-05-01T10:00:00Z"})),
        put("reading_progress", &prog2, json!({"book_id": book, "progress": 0.4, "updated_at": "2024-05-01T10:02:00Z"})),
        put("shelves", &shelf, json!({"name": "B", "sort_order": 0})),
        patch("shelves", &shelf, json!({"description": "d"})),
        put("shelf_books", &item, json!({"shelf_id": shelf, "book_id": book})),
        put("shelf_books", &item2, json!({"shelf_id": shelf, "book_id": book, "sort_order": 4})),
        put("bookmarks", &mark, json!({"book_id": book, "title": "here"})),
        delete("bookmarks", &mark),
        patch("books", &book, json!({"title": "Renamed"})),
    ]);
    sync_ok(&t, &ann, batch.clone()).await;
    let snapshot = || async {
        let mut rows = Vec::new();
        for (table, id) in [
            (SyncTable::Notes, &note),
            (SyncTable::ReadingProgress, &prog),
            (SyncTable::Shelves, &shelf),
            (SyncTable::ShelfBooks, &item),
            (SyncTable::Bookmarks, &mark),
            (SyncTable::Books, &book),
        ] {
            rows.push(must_row(&t, &ann, table, id).await);
        }
        rows
    };
    let first = snapshot().await;
    assert_eq!(first[1]["progress"], 0.4);
    assert_eq!((first[2]["name"].as_str(), first[2]["version"].as_i64()), (Some("B"), Some(2)));
    sync_ok(&t, &ann, batch).await;
    assert_eq!(snapshot().await, first, "the same batch again changes nothing (not even versions)");
    assert!(row(&t, &ann, SyncTable::ReadingProgress, &prog2).await.is_none());
    assert!(row(&t, &ann, SyncTable::ShelfBooks, &item2).await.is_none());
    t.stop().await;
}

async fn over_quota_accounts_are_read_only(backend: Backend) {
    let t = TestApp::spawn_with(backend, &[("ATHENA_QUOTA_BOOKS", "1")]).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let note = uuid();
    let (status, body) = sync(
        &t,
        &ann,
        json!([
            put("notes", &note, json!({"book_id": book, "content": "x", "updated_at": "2024-05-01T10:00:00Z"})),
            patch("books", &book, json!({"title": "Renamed"})),
        ]),
    )
    .await;
    assert_eq!(status, 200, "refusals are per operation, so the client's queue moves on: {body}");
    assert_eq!(body["data"]["processed"], 0);
    let codes: Vec<&str> = body["data"]["errors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["readonly_mode_quota_exceeded", "readonly_mode_quota_exceeded"]);
    assert!(row(&t, &ann, SyncTable::Notes, &note).await.is_none());
    let b: Value = t.get(&ann, &format!("/api/v1/books/{book}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(b["data"]["title"], "论语", "reading still works; nothing changed");
    assert_eq!(t.app.store.upload_rejections(&user_id(&ann), 10).await.unwrap().len(), 2);
    t.stop().await;
}

async fn uploads_can_be_disabled(backend: Backend) {
    let t = TestApp::spawn_with(backend, &[("POWERSYNC_UPLOAD_ENABLED", "false")]).await;
    let ann = t.login("ann@example.com").await;
    let (status, body) = sync(&t, &ann, json!([delete("notes", &uuid())])).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(body["message"].as_str().unwrap().contains("disabled"), "{body}");
    t.stop().await;
}

/// A locked database mid-batch is not a per-operation refusal but a non-2xx answer, so the
/// client's SDK keeps the batch and sends it again; the retry then goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_asks_for_a_retry() {
    use sqlx::Connection;
    let t = TestApp::spawn(Backend::Embedded).await;
    let ann = t.login("ann@example.com").await;
    let book = a_book(&t, &ann, "zh/lunyu.epub").await;
    let note = uuid();
    let batch = json!([put("notes", &note, json!({"book_id": book, "content": "x", "updated_at": "2024-05-01T10:00:00Z"}))]);
    // Another writer holds SQLite's write lock for longer than the store's busy timeout.
    let path = athena_server::backends::sqlite_path(&t.app.config);
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let (status, body) = sync(&t, &ann, batch.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "error");
    assert!(row(&t, &ann, SyncTable::Notes, &note).await.is_none());
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    sync_ok(&t, &ann, batch).await;
    assert_eq!(must_row(&t, &ann, SyncTable::Notes, &note).await["content"], "x");
    assert!(t.app.store.upload_rejections(&user_id(&ann), 10).await.unwrap().is_empty(), "a retryable failure is no rejection");
    t.stop().await;
}
