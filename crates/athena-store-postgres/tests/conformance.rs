//! The shared store scenarios on a real PostgreSQL, each test in a fresh schema dropped at the end.
//! The server comes from `ATHENA_TEST_DATABASE_URL` (default: local `test` database); an
//! unreachable server fails the test rather than skipping it.

use std::future::Future;
use std::sync::Arc;

use athena_store::Store;
use athena_store_postgres::PgStore;
use sqlx::{Connection, Executor};

fn url() -> String {
    std::env::var("ATHENA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Runs `test` on a migrated store in a new schema, then drops the schema even if `test` panicked.
async fn in_fresh_schema<F, Fut>(test: F)
where
    F: FnOnce(PgStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = url();
    let schema = format!("athena_test_{}", uuid::Uuid::new_v4().simple());
    let store =
        PgStore::connect_in_schema(&url, &schema).await.unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for this test: {e:?}"));
    store.migrate().await.expect("migrate");
    let pool = store.pool().clone();
    let outcome = tokio::spawn(test(store)).await;
    pool.close().await;

    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect for cleanup");
    conn.execute(format!("DROP SCHEMA \"{schema}\" CASCADE").as_str()).await.expect("drop schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    in_fresh_schema(|store| async move {
        let store = Arc::new(store);
        athena_store::conformance::run_all(store.clone()).await;
        // The job and OCR tables are server-only: no capture trigger, nothing recorded for sync.
        let triggers: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = current_schema()
               AND event_object_table IN ('jobs', 'ocr_results', 'ocr_pages', 'ocr_charges')",
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
        let books_captured: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_changes WHERE table_name = 'books'")
            .fetch_one(store.pool())
            .await
            .expect("captured");
        assert!(books_captured > 0, "capture works, so the zero above means something");
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_isolated_and_migrations_are_recorded() {
    in_fresh_schema(|store| async move {
        assert_eq!(store.backend(), "postgres");
        store.migrate().await.expect("migrate again");
        let path: String = sqlx::query_scalar("SHOW search_path").fetch_one(store.pool()).await.expect("search_path");
        assert!(path.contains("athena_test_"), "search_path {path}");
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(store.pool()).await.expect("migrations");
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).expect("migrations dir").count();
        assert_eq!(applied, i64::try_from(files).expect("count"), "every migration file is applied");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()
               AND table_name IN ('books', 'reading_progress', 'reading_sessions', 'notes', 'highlights', 'bookmarks',
                                  'shelves', 'shelf_books', 'user_settings', 'reading_settings')",
        )
        .fetch_one(store.pool())
        .await
        .expect("tables");
        assert_eq!(tables, 10, "all synced tables exist");
    })
    .await;
}

#[tokio::test]
async fn bad_schema_names_are_refused() {
    assert!(PgStore::connect_in_schema(&url(), "x\"; DROP TABLE users; --").await.is_err());
}
