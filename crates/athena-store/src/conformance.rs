//! The scenario suite every [`crate::Store`] (and [`crate::jobs::JobStore`]) backend must pass.
//!
//! Backends call [`run_all`] from an integration test on a freshly migrated, empty store. Each
//! scenario makes its own users, so scenarios never see each other's rows; assertions are on
//! values (counts, versions, keys), not just on `Ok`. A failed check panics with what differed.

mod books;
mod client_writes;
mod jobs;
mod shelves;
mod uploads;
mod users;
mod vectors;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use athena_domain::{BookFormat, BookId, ContentHash, Email, ObjectKey, Role, UserId};
use chrono::{DateTime, Utc};

use crate::jobs::JobStore;
use crate::{Book, BookInsert, NewBook, NewUser, Store, StoreError, StoreResult, User};

/// Runs every scenario, in order, on one store (its [`Store`] and its [`JobStore`] side).
pub async fn run_all<S: Store + JobStore>(store: Arc<S>) {
    let s: &dyn Store = store.as_ref();
    let j: &dyn JobStore = store.as_ref();
    basics(s).await;
    users::users(s).await;
    users::login_codes(s).await;
    users::rate_events(s).await;
    users::sessions(s).await;
    users::concurrent_rotation(s).await;
    books::own_dedup(s).await;
    books::shared_content(s).await;
    books::concurrent_shared_inserts(s).await;
    books::list_pagination(s).await;
    books::update_and_soft_delete(s).await;
    uploads::purge_listing(s).await;
    uploads::pending_uploads(s).await;
    uploads::dedup_challenges(s).await;
    shelves::shelves(s).await;
    shelves::shelf_items(s).await;
    shelves::isolation(s).await;
    shelves::idempotency_keys(s).await;
    client_writes::notes_lifecycle(s).await;
    client_writes::last_writer_wins_and_merge(s).await;
    client_writes::conflict_copies(s).await;
    client_writes::column_merge_and_shelves(s).await;
    client_writes::books_by_sync(s).await;
    client_writes::other_users_rows(s).await;
    client_writes::rejections_are_recorded(s).await;
    jobs::lifecycle(j).await;
    jobs::ordering(j).await;
    jobs::dedup(j).await;
    jobs::concurrent_claims(j).await;
    jobs::lease_expiry(j).await;
    jobs::failures_and_retry(j).await;
    jobs::cancellation(j).await;
    jobs::retry_with_taken_key(j).await;
    jobs::stats(j).await;
    jobs::purge(j).await;
    jobs::book_jobs(s, j).await;
    jobs::book_processing(s, j).await;
    jobs::ocr(s, j).await;
    vectors::content_vectors(s).await;
    vectors::annotation_vectors(s).await;
}

/// Backend identity, health, pool figures, and that migrating twice is harmless.
pub async fn basics(s: &dyn Store) {
    assert!(matches!(s.backend(), "sqlite" | "postgres"), "backend {}", s.backend());
    s.migrate().await.expect("second migrate");
    s.ping().await.expect("ping");
    let stats = s.pool_stats();
    assert!(stats.max >= 1 && stats.size <= stats.max && stats.idle <= stats.size, "{stats:?}");
}

// ---------- helpers shared by the scenario modules ----------

/// Now, cut to whole milliseconds so that every backend stores and returns it unchanged.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("valid time")
}

pub(crate) fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

pub(crate) fn email(tag: &str) -> Email {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple()).parse().expect("email")
}

pub(crate) async fn user(s: &dyn Store, tag: &str) -> User {
    s.create_user(NewUser { id: UserId::new(), email: email(tag), display_name: tag.to_string(), role: Role::User, now: now() })
        .await
        .expect("create user")
}

/// A hash no other scenario (or earlier run) uses.
pub(crate) fn fresh_hash() -> ContentHash {
    ContentHash::of_bytes(uuid::Uuid::new_v4().as_bytes())
}

pub(crate) fn upload_key(user: &UserId, name: &str) -> ObjectKey {
    ObjectKey::for_upload(user, &uuid::Uuid::new_v4(), name)
}

pub(crate) fn new_book(user: &UserId, sha: &ContentHash, at: DateTime<Utc>) -> NewBook {
    NewBook {
        id: BookId::new(),
        user_id: user.clone(),
        title: "Walden".to_string(),
        author: Some("Thoreau".to_string()),
        language: Some("en".to_string()),
        format: BookFormat::Epub,
        size: 1234,
        sha256: sha.clone(),
        storage_key: upload_key(user, "walden.epub"),
        cover_key: None,
        page_count: Some(321),
        is_digitalized: Some(true),
        digitalization_confidence: Some(0.75),
        meta: serde_json::json!({"publisher": "Ticknor", "toc": [{"title": "Economy"}]}),
        conversion_status: None,
        jobs: Vec::new(),
        now: at,
    }
}

/// Inserts a book that must be new, returning it and whether its content was new.
pub(crate) async fn created(s: &dyn Store, new: NewBook) -> (Book, bool) {
    match s.insert_book(new).await.expect("insert book") {
        BookInsert::Created { book, content_is_new } => (book, content_is_new),
        BookInsert::Existing(b) => panic!("expected a new book, got existing {:?}", b.id),
    }
}

pub(crate) fn assert_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

pub(crate) fn assert_version_conflict<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::VersionConflict) => {}
        other => panic!("{what}: expected VersionConflict, got {other:?}"),
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls all futures concurrently on the current task and returns their outputs in order
/// (this crate stays free of any async runtime).
pub(crate) async fn join_all<T>(futures: Vec<BoxFuture<'_, T>>) -> Vec<T> {
    let mut pending: Vec<Option<BoxFuture<'_, T>>> = futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(f) = slot {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *out = Some(v);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().map(|v| v.expect("every future finished")).collect()
}
