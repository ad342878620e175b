//! Writes from clients (`apply_client_write`): inserts, the three conflict policies, merges by a
//! uniqueness key with id mapping, the delete rules, ownership of references, idempotent retries,
//! and the record of refused operations.

use athena_domain::UserId;
use serde_json::{json, Value};

use super::{created, fresh_hash, new_book, now, secs, user};
use crate::{
    ClientOp, ClientValue as V, ClientWrite, ConflictPolicy, DeleteRule, Reference, RejectReason, Store, SyncTable, UploadRejection,
    WriteOutcome,
};

const BOOK: Reference = Reference { column: "book_id", table: SyncTable::Books };
const NOTE_COLUMNS: &[&str] =
    &["book_id", "device_id", "content", "page_number", "position_cfi", "color", "is_deleted", "deleted_at", "created_at", "updated_at"];

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn base(table: SyncTable, op: ClientOp, id: &str, values: Vec<(&'static str, V)>) -> ClientWrite {
    ClientWrite {
        table,
        op,
        id: id.to_string(),
        values,
        insert_defaults: Vec::new(),
        columns: &[],
        policy: ConflictPolicy::ColumnMerge,
        unique_key: None,
        delete: DeleteRule::Remove,
        references: &[],
        delete_cascade: &[],
        may_insert: true,
        conflict_copy_id: None,
        now: now(),
    }
}

fn note(op: ClientOp, id: &str, values: Vec<(&'static str, V)>) -> ClientWrite {
    let mut w = base(SyncTable::Notes, op, id, values);
    w.policy = ConflictPolicy::ConflictCopy;
    w.delete = DeleteRule::SoftFlag;
    w.references = &[BOOK];
    w.columns = NOTE_COLUMNS;
    w.insert_defaults = vec![("created_at", V::Timestamp(w.now)), ("updated_at", V::Timestamp(w.now))];
    w
}

fn progress(op: ClientOp, id: &str, values: Vec<(&'static str, V)>) -> ClientWrite {
    let mut w = base(SyncTable::ReadingProgress, op, id, values);
    w.policy = ConflictPolicy::LastWriterWins;
    w.unique_key = Some(&["book_id"]);
    w.references = &[BOOK];
    w
}

fn text(s: &str) -> V {
    V::Text(s.to_string())
}

async fn apply(s: &dyn Store, user: &UserId, w: ClientWrite) -> WriteOutcome {
    let what = format!("{:?} {} {}", w.op, w.table.name(), w.id);
    s.apply_client_write(user, w).await.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

async fn row(s: &dyn Store, user: &UserId, table: SyncTable, id: &str) -> serde_json::Map<String, Value> {
    s.client_row(user, table, id).await.expect("client_row").unwrap_or_else(|| panic!("{} {id} exists", table.name()))
}

async fn book_of(s: &dyn Store, user: &UserId) -> String {
    created(s, new_book(user, &fresh_hash(), now())).await.0.id.to_string()
}

/// Insert, idempotent re-put, patch, soft delete, and the row as clients see it.
pub async fn notes_lifecycle(s: &dyn Store) {
    let ann = user(s, "cw-ann").await;
    let book = book_of(s, &ann.id).await;
    let n = id();
    let t = now();
    let put = || {
        note(
            ClientOp::Put,
            &n,
            vec![("book_id", text(&book)), ("device_id", text("phone")), ("content", text("first")), ("updated_at", V::Timestamp(t))],
        )
    };
    assert_eq!(apply(s, &ann.id, put()).await, WriteOutcome::Inserted);
    assert_eq!(apply(s, &ann.id, put()).await, WriteOutcome::Updated, "a retried PUT changes nothing more");
    let r = row(s, &ann.id, SyncTable::Notes, &n).await;
    assert_eq!(r["content"], "first");
    assert_eq!(r["user_id"], json!(ann.id.to_string()));
    assert_eq!(r["is_deleted"], 0);
    assert!(r["created_at"].as_str().is_some_and(|c| c.ends_with('Z')), "{r:?}");

    let later = t + secs(5);
    let patch = note(ClientOp::Patch, &n, vec![("content", text("second")), ("updated_at", V::Timestamp(later))]);
    assert_eq!(apply(s, &ann.id, patch).await, WriteOutcome::Updated);
    let r = row(s, &ann.id, SyncTable::Notes, &n).await;
    assert_eq!((r["content"].as_str(), r["device_id"].as_str()), (Some("second"), Some("phone")), "PATCH touches only its columns");

    assert_eq!(apply(s, &ann.id, note(ClientOp::Delete, &n, vec![])).await, WriteOutcome::Deleted);
    let r = row(s, &ann.id, SyncTable::Notes, &n).await;
    assert_eq!(r["is_deleted"], 1);
    assert!(r["deleted_at"].is_string());
    assert_eq!(apply(s, &ann.id, note(ClientOp::Delete, &n, vec![])).await, WriteOutcome::Deleted, "deleting again is harmless");

    // PATCH of an unknown row, DELETE of an unknown row.
    let ghost = id();
    let patch = note(ClientOp::Patch, &ghost, vec![("content", text("x")), ("updated_at", V::Timestamp(t))]);
    assert!(matches!(apply(s, &ann.id, patch).await, WriteOutcome::Rejected { reason: RejectReason::NotFound, .. }));
    assert_eq!(apply(s, &ann.id, note(ClientOp::Delete, &ghost, vec![])).await, WriteOutcome::AlreadyGone);
}

/// Last writer wins by the client's time; a second device's new id merges into the one row.
pub async fn last_writer_wins_and_merge(s: &dyn Store) {
    let ann = user(s, "cw-lww").await;
    let book = book_of(s, &ann.id).await;
    let t = now();
    let p1 = id();
    let at = |p: f64, dt: i64, device: &str| {
        vec![("book_id", text(&book)), ("device_id", text(device)), ("progress", V::Real(p)), ("updated_at", V::Timestamp(t + secs(dt)))]
    };
    assert_eq!(apply(s, &ann.id, progress(ClientOp::Put, &p1, at(0.5, 10, "phone"))).await, WriteOutcome::Inserted);
    assert_eq!(apply(s, &ann.id, progress(ClientOp::Put, &p1, at(0.1, 0, "phone"))).await, WriteOutcome::Stale);
    assert_eq!(row(s, &ann.id, SyncTable::ReadingProgress, &p1).await["progress"], 0.5, "an older write never overwrites");

    let p2 = id();
    let merged = apply(s, &ann.id, progress(ClientOp::Put, &p2, at(0.7, 20, "tablet"))).await;
    assert_eq!(merged, WriteOutcome::Merged { into: p1.clone(), applied: true });
    let r = row(s, &ann.id, SyncTable::ReadingProgress, &p1).await;
    assert_eq!((r["progress"].as_f64(), r["device_id"].as_str()), (Some(0.7), Some("tablet")));
    assert!(s.client_row(&ann.id, SyncTable::ReadingProgress, &p2).await.expect("row").is_none(), "no second row");
    // Later writes under the tablet's id reach the one row; retries stay merged.
    let patch = progress(ClientOp::Patch, &p2, vec![("progress", V::Real(0.8)), ("updated_at", V::Timestamp(t + secs(30)))]);
    assert_eq!(apply(s, &ann.id, patch).await, WriteOutcome::Updated);
    assert_eq!(row(s, &ann.id, SyncTable::ReadingProgress, &p1).await["progress"], 0.8);
    let p3 = id();
    assert_eq!(
        apply(s, &ann.id, progress(ClientOp::Put, &p3, at(0.2, 1, "laptop"))).await,
        WriteOutcome::Merged { into: p1.clone(), applied: false },
        "an older write from a third device merges but does not win"
    );
    assert_eq!(row(s, &ann.id, SyncTable::ReadingProgress, &p1).await["progress"], 0.8);
    // Removal; the mapped id deletes the same row.
    assert_eq!(apply(s, &ann.id, progress(ClientOp::Delete, &p2, vec![])).await, WriteOutcome::Deleted);
    assert!(s.client_row(&ann.id, SyncTable::ReadingProgress, &p1).await.expect("row").is_none());
    assert_eq!(apply(s, &ann.id, progress(ClientOp::Delete, &p1, vec![])).await, WriteOutcome::AlreadyGone);

    // One row per user when the key is empty (user settings).
    let settings = |id: &str, dt: i64, json: &str| {
        let mut w = base(
            SyncTable::UserSettings,
            ClientOp::Put,
            id,
            vec![("settings_json", text(json)), ("updated_at", V::Timestamp(t + secs(dt)))],
        );
        w.policy = ConflictPolicy::LastWriterWins;
        w.unique_key = Some(&[]);
        w
    };
    let (u1, u2) = (id(), id());
    assert_eq!(apply(s, &ann.id, settings(&u1, 0, "{\"daily_goal_minutes\":30}")).await, WriteOutcome::Inserted);
    assert_eq!(
        apply(s, &ann.id, settings(&u2, 5, "{\"daily_goal_minutes\":45}")).await,
        WriteOutcome::Merged { into: u1.clone(), applied: true }
    );
    assert_eq!(row(s, &ann.id, SyncTable::UserSettings, &u1).await["settings_json"], "{\"daily_goal_minutes\":45}");
}

/// An older edit from another device becomes a conflict copy, once; the same device's overwrites.
pub async fn conflict_copies(s: &dyn Store) {
    let ann = user(s, "cw-copy").await;
    let book = book_of(s, &ann.id).await;
    let t = now();
    let n = id();
    let put = note(
        ClientOp::Put,
        &n,
        vec![("book_id", text(&book)), ("device_id", text("phone")), ("content", text("phone text")), ("updated_at", V::Timestamp(t))],
    );
    assert_eq!(apply(s, &ann.id, put).await, WriteOutcome::Inserted);
    let copy = id();
    let stale = || {
        let mut w = note(
            ClientOp::Patch,
            &n,
            vec![("device_id", text("tablet")), ("content", text("tablet text")), ("updated_at", V::Timestamp(t - secs(60)))],
        );
        w.conflict_copy_id = Some(copy.clone());
        w
    };
    assert_eq!(apply(s, &ann.id, stale()).await, WriteOutcome::ConflictCopy { copy_id: copy.clone() });
    assert_eq!(apply(s, &ann.id, stale()).await, WriteOutcome::ConflictCopy { copy_id: copy.clone() }, "a retry finds its copy");
    assert_eq!(row(s, &ann.id, SyncTable::Notes, &n).await["content"], "phone text", "the newer edit keeps the row");
    let c = row(s, &ann.id, SyncTable::Notes, &copy).await;
    assert_eq!(c["conflict_of"], json!(n));
    assert_eq!((c["content"].as_str(), c["device_id"].as_str()), (Some("tablet text"), Some("tablet")));
    assert_eq!(c["book_id"], json!(book), "the copy keeps the row's other columns");
    assert_eq!(c["user_id"], json!(ann.id.to_string()));

    // The same device's older stamp (its own clock moved) still overwrites its own row.
    let own = note(
        ClientOp::Patch,
        &n,
        vec![("device_id", text("phone")), ("content", text("phone again")), ("updated_at", V::Timestamp(t - secs(1)))],
    );
    assert_eq!(apply(s, &ann.id, own).await, WriteOutcome::Updated);
    // A newer edit from another device wins the row.
    let newer = note(
        ClientOp::Patch,
        &n,
        vec![("device_id", text("tablet")), ("content", text("tablet wins")), ("updated_at", V::Timestamp(t + secs(60)))],
    );
    assert_eq!(apply(s, &ann.id, newer).await, WriteOutcome::Updated);
    assert_eq!(row(s, &ann.id, SyncTable::Notes, &n).await["content"], "tablet wins");
}

/// Column merge and versions on shelves; shelf items one per (shelf, book); cascading delete.
pub async fn column_merge_and_shelves(s: &dyn Store) {
    let ann = user(s, "cw-shelf").await;
    let book = book_of(s, &ann.id).await;
    let shelf = id();
    let shelf_write = |op, values| {
        let mut w = base(SyncTable::Shelves, op, &shelf, values);
        w.delete = DeleteRule::SoftFlag;
        w.delete_cascade = &[Reference { column: "shelf_id", table: SyncTable::ShelfBooks }];
        w.insert_defaults = vec![("created_at", V::Timestamp(w.now)), ("updated_at", V::Timestamp(w.now))];
        w
    };
    let put = shelf_write(ClientOp::Put, vec![("name", text("Poetry")), ("description", text("verse")), ("sort_order", V::Int(3))]);
    assert_eq!(apply(s, &ann.id, put).await, WriteOutcome::Inserted);
    assert_eq!(apply(s, &ann.id, shelf_write(ClientOp::Patch, vec![("name", text("Poems"))])).await, WriteOutcome::Updated);
    let r = row(s, &ann.id, SyncTable::Shelves, &shelf).await;
    assert_eq!((r["name"].as_str(), r["description"].as_str(), r["sort_order"].as_i64()), (Some("Poems"), Some("verse"), Some(3)));
    assert_eq!(r["version"], 2, "each change bumps the version");
    let shelf_id: athena_domain::ShelfId = shelf.parse().expect("shelf id");
    assert_eq!(s.shelf(&ann.id, &shelf_id).await.expect("REST sees it").name, "Poems");

    let item = |item_id: &str, order: i64| {
        let mut w = base(
            SyncTable::ShelfBooks,
            ClientOp::Put,
            item_id,
            vec![("shelf_id", text(&shelf)), ("book_id", text(&book)), ("sort_order", V::Int(order)), ("added_at", V::Timestamp(now()))],
        );
        w.unique_key = Some(&["shelf_id", "book_id"]);
        w.references = &[Reference { column: "shelf_id", table: SyncTable::Shelves }, BOOK];
        w
    };
    let (i1, i2) = (id(), id());
    assert_eq!(apply(s, &ann.id, item(&i1, 1)).await, WriteOutcome::Inserted);
    assert_eq!(apply(s, &ann.id, item(&i2, 7)).await, WriteOutcome::Merged { into: i1.clone(), applied: true });
    assert_eq!(row(s, &ann.id, SyncTable::ShelfBooks, &i1).await["sort_order"], 7);
    assert_eq!(s.list_shelf_items(&ann.id, &shelf_id).await.expect("items").len(), 1);

    assert_eq!(apply(s, &ann.id, shelf_write(ClientOp::Delete, vec![])).await, WriteOutcome::Deleted);
    let r = row(s, &ann.id, SyncTable::Shelves, &shelf).await;
    assert_eq!((r["is_deleted"].as_i64(), r["version"].as_i64()), (Some(1), Some(3)));
    assert!(s.client_row(&ann.id, SyncTable::ShelfBooks, &i1).await.expect("row").is_none(), "a deleted shelf's items go");
}

/// Books: never created by sync; title edits bump the version; delete is the trash.
pub async fn books_by_sync(s: &dyn Store) {
    let ann = user(s, "cw-books").await;
    let book = book_of(s, &ann.id).await;
    let write = |op, id: &str, values| {
        let mut w = base(SyncTable::Books, op, id, values);
        w.may_insert = false;
        w.delete = DeleteRule::SoftDeletedAt;
        w
    };
    let created = apply(s, &ann.id, write(ClientOp::Put, &id(), vec![("title", text("New"))])).await;
    assert!(matches!(created, WriteOutcome::Rejected { reason: RejectReason::NotFound, .. }), "{created:?}");
    let book_id: athena_domain::BookId = book.parse().expect("book id");
    let before = s.book(&ann.id, &book_id, false).await.expect("book");
    assert_eq!(
        apply(s, &ann.id, write(ClientOp::Patch, &book, vec![("title", text("Renamed")), ("author", V::Null)])).await,
        WriteOutcome::Updated
    );
    let after = s.book(&ann.id, &book_id, false).await.expect("book");
    assert_eq!((after.title.as_str(), after.author.as_deref(), after.version), ("Renamed", None, before.version + 1));
    assert_eq!(apply(s, &ann.id, write(ClientOp::Delete, &book, vec![])).await, WriteOutcome::Deleted);
    assert!(s.book(&ann.id, &book_id, true).await.expect("in the trash").deleted_at.is_some());
    super::assert_not_found(s.book(&ann.id, &book_id, false).await, "soft-deleted book");
}

/// Rows of another user: referenced, patched, re-used ids, deleted — never touched.
pub async fn other_users_rows(s: &dyn Store) {
    let ann = user(s, "cw-iso-ann").await;
    let bob = user(s, "cw-iso-bob").await;
    let bobs_book = book_of(s, &bob.id).await;
    let t = now();
    let n = id();
    let on_bobs_book =
        note(ClientOp::Put, &n, vec![("book_id", text(&bobs_book)), ("content", text("x")), ("updated_at", V::Timestamp(t))]);
    assert!(matches!(apply(s, &ann.id, on_bobs_book).await, WriteOutcome::Rejected { reason: RejectReason::NotFound, .. }));
    assert!(s.client_row(&ann.id, SyncTable::Notes, &n).await.expect("row").is_none(), "a refusal leaves nothing");

    let bobs_note = id();
    let put =
        note(ClientOp::Put, &bobs_note, vec![("book_id", text(&bobs_book)), ("content", text("bob's")), ("updated_at", V::Timestamp(t))]);
    assert_eq!(apply(s, &bob.id, put).await, WriteOutcome::Inserted);
    let patch = note(ClientOp::Patch, &bobs_note, vec![("content", text("ann's")), ("updated_at", V::Timestamp(t + secs(9)))]);
    assert!(matches!(apply(s, &ann.id, patch).await, WriteOutcome::Rejected { reason: RejectReason::NotFound, .. }));
    let annbook = book_of(s, &ann.id).await;
    let reuse =
        note(ClientOp::Put, &bobs_note, vec![("book_id", text(&annbook)), ("content", text("ann's")), ("updated_at", V::Timestamp(t))]);
    assert!(matches!(apply(s, &ann.id, reuse).await, WriteOutcome::Rejected { reason: RejectReason::Invalid, .. }));
    assert_eq!(apply(s, &ann.id, note(ClientOp::Delete, &bobs_note, vec![])).await, WriteOutcome::AlreadyGone);
    let r = row(s, &bob.id, SyncTable::Notes, &bobs_note).await;
    assert_eq!((r["content"].as_str(), r["is_deleted"].as_i64()), (Some("bob's"), Some(0)), "bob's note is untouched");
    assert!(s.client_row(&ann.id, SyncTable::Notes, &bobs_note).await.expect("row").is_none(), "ann cannot read it");
}

/// Refused operations are kept, newest first, per user.
pub async fn rejections_are_recorded(s: &dyn Store) {
    let ann = user(s, "cw-rej").await;
    let t = now();
    for (i, code) in ["validation_error", "not_found"].into_iter().enumerate() {
        s.record_upload_rejection(UploadRejection {
            user_id: ann.id.clone(),
            table: "notes".into(),
            row_id: format!("row-{i}"),
            op: "PUT".into(),
            code: code.into(),
            message: "why".into(),
            payload: Some("{\"content\":\"x\"}".into()),
            created_at: t + secs(i as i64),
        })
        .await
        .expect("record");
    }
    let found = s.upload_rejections(&ann.id, 10).await.expect("list");
    assert_eq!(found.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["not_found", "validation_error"]);
    assert_eq!(found[1].payload.as_deref(), Some("{\"content\":\"x\"}"));
    assert_eq!(found[1].created_at, t);
    let other = user(s, "cw-rej-other").await;
    assert!(s.upload_rejections(&other.id, 10).await.expect("list").is_empty());
}
