//! The shared store scenarios on a real SQLite file (WAL, several pooled connections).

use std::sync::Arc;

use athena_store::Store;
use athena_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::connect(&dir.path().join("athena.db")).await.expect("connect");
    store.migrate().await.expect("migrate");
    let store = Arc::new(store);
    athena_store::conformance::run_all(store.clone()).await;
    // The job and OCR tables are server-only: no capture trigger, nothing recorded for sync.
    let triggers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('jobs', 'ocr_results', 'ocr_pages', 'ocr_charges')",
    )
    .fetch_one(store.pool())
    .await
    .expect("triggers");
    assert_eq!(triggers, 0);
    let captured: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes WHERE table_name LIKE 'ocr%' OR table_name = 'jobs'")
        .fetch_one(store.pool())
        .await
        .expect("captured");
    assert_eq!(captured, 0);
    let books_captured: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes WHERE table_name = 'books'").fetch_one(store.pool()).await.expect("captured");
    assert!(books_captured > 0, "capture works, so the zero above means something");
    store.close().await;
}

#[tokio::test]
async fn conformance_in_memory() {
    let store = SqliteStore::in_memory().await.expect("in memory");
    store.migrate().await.expect("migrate");
    athena_store::conformance::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn file_settings_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("athena.db");
    let store = SqliteStore::connect(&path).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.expect("pragma");
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(store.pool()).await.expect("pragma");
    assert_eq!(fk, 1);
    store.close().await;
    // Migrations are recorded: reopening and migrating again is a no-op.
    let store = SqliteStore::connect(&path).await.expect("reopen");
    store.migrate().await.expect("migrate again");
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "sqlite");
}
