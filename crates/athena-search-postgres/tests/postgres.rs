//! The PostgreSQL engine against the shared conformance suite and the corpus, plus what only a
//! database engine has: several replicas on one index, uncommitted writes held in a transaction,
//! long documents in chunks, hostile query text, calls from async code, an unreachable table.
//!
//! Each test gets its own schema, migrated by `athena-store-postgres` and dropped at the end. The
//! server comes from `ATHENA_TEST_DATABASE_URL` (default: the local `test` database); an
//! unreachable server fails the test rather than skipping it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use athena_search::{conformance, Doc, IndexHealth, Kind, Query, SearchError, SearchIndex, TantivyIndex};
use athena_search_postgres::{PgSearchIndex, PgSearchOptions, CHUNK_OVERLAP, CHUNK_STEP};
use athena_store::Store;
use sqlx::{Connection, Executor};

fn url() -> String {
    std::env::var("ATHENA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS, or keep shared/ next to the repository)")
}

/// Runs `f` to completion on a runtime of its own, on a thread of its own (callers may be inside
/// a test's runtime).
fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f))
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A schema of its own, migrated (or left empty), dropped when the value is dropped.
struct Schema {
    name: String,
}

impl Schema {
    fn new(migrated: bool) -> Schema {
        let name = format!("athena_search_test_{}", uuid::Uuid::new_v4().simple());
        let (url, schema) = (url(), name.clone());
        block_on(async move {
            let store = athena_store_postgres::PgStore::connect_in_schema(&url, &schema)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for this test: {e:?}"));
            if migrated {
                store.migrate().await.expect("migrate");
            }
            store.close().await;
        });
        Schema { name }
    }

    fn open(&self) -> PgSearchIndex {
        PgSearchIndex::connect(&url(), PgSearchOptions { schema: Some(self.name.clone()), ..Default::default() }).expect("connect")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (url(), self.name.clone());
        let dropped = std::panic::catch_unwind(|| {
            block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect for cleanup");
                conn.execute(format!("DROP SCHEMA \"{name}\" CASCADE").as_str()).await.expect("drop schema");
            })
        });
        if dropped.is_err() && !std::thread::panicking() {
            panic!("dropping the test schema failed");
        }
    }
}

fn note(id: &str, owner: &str, text: &str) -> Doc {
    Doc {
        id: id.into(),
        owner: Some(owner.into()),
        content_key: None,
        book_id: Some("b1".into()),
        kind: Kind::Note,
        location: None,
        title: None,
        text: text.into(),
    }
}

fn find(index: &dyn SearchIndex, text: &str) -> Vec<String> {
    let q = Query { text: text.into(), user_id: "u1".into(), limit: 10, ..Default::default() };
    let mut ids: Vec<String> = index.search(&q).unwrap_or_else(|e| panic!("{text:?}: {e}")).items.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

fn report(engine: &str, f: &conformance::Figures) {
    eprintln!(
        "{engine}: indexed {} sections, {} chars in {:.2?} ({:.0} chars/s); {} queries, median {:.2?}, p95 {:.2?}",
        f.sections,
        f.chars,
        f.index_time,
        f.chars_per_sec(),
        f.query_count,
        f.median_query,
        f.p95_query
    );
}

/// Query latencies over the suite's mix (as `conformance::measure_queries`) with p50 and p99.
fn latencies(index: &dyn SearchIndex, rounds: usize) -> (Duration, Duration) {
    let texts =
        ["学而时习之", "郑伯克段于鄢", "\"白日依山盡\"", "鄢", "天下", "whale", "\"white whale\"", "harpoon ship", "君子 小人", "Ishmael"];
    let mut times = Vec::new();
    for _ in 0..rounds {
        for text in texts {
            let q = Query {
                text: text.into(),
                user_id: "user-alice".into(),
                allowed_content: conformance::BOOKS.iter().map(|(_, k, _)| k.to_string()).collect(),
                limit: 20,
                ..Default::default()
            };
            let started = Instant::now();
            index.search(&q).expect("search");
            times.push(started.elapsed());
        }
    }
    times.sort();
    (times[times.len() / 2], times[(times.len() * 99 / 100).min(times.len() - 1)])
}

#[test]
fn conformance_on_the_corpus_shared_by_two_replicas() {
    let schema = Schema::new(true);
    let index = schema.open();
    assert_eq!(index.engine(), "postgres");
    assert!(matches!(index.health(), IndexHealth::Rebuilding { docs: 0, .. }), "{:?}", index.health());
    let figures = conformance::run_all(&index, &corpus());
    report("postgres", &figures);
    index.mark_ready().unwrap();
    let docs = match index.health() {
        IndexHealth::Ready { docs } => docs,
        other => panic!("{other:?}"),
    };
    assert!(docs > 500, "{docs} documents");

    // A second replica on the same database sees the same index and state, and its writes reach
    // the first one after its commit.
    let replica = schema.open();
    assert_eq!(replica.health(), IndexHealth::Ready { docs });
    let q = Query {
        text: "郑伯克段于鄢".into(),
        user_id: "someone".into(),
        allowed_content: vec!["c-guwen".into()],
        limit: 5,
        ..Default::default()
    };
    let (a, b) = (index.search(&q).unwrap(), replica.search(&q).unwrap());
    assert_eq!(a.items.first().and_then(|h| h.content_key.as_deref()), Some("c-guwen"));
    assert_eq!(a, b);
    replica.upsert(vec![note("from-replica", "u1", "written by the other replica")]).unwrap();
    assert!(find(&index, "replica").is_empty());
    replica.commit().unwrap();
    assert_eq!(find(&index, "replica"), vec!["from-replica"]);

    // The embedded engine on the same corpus in the same run, for comparison.
    let dir = tempfile_dir();
    let tantivy = TantivyIndex::open(&dir).unwrap();
    let tantivy_figures = conformance::run_all(&tantivy, &corpus());
    report("tantivy", &tantivy_figures);
    // The suite ends by deleting a book: index the corpus again in both, then compare latencies.
    conformance::index_corpus(&index, &corpus());
    conformance::index_corpus(&tantivy, &corpus());
    let (p50, p99) = latencies(&index, 20);
    let (t50, t99) = latencies(&tantivy, 20);
    eprintln!("query latency, 200 queries each: postgres p50 {p50:.2?} p99 {p99:.2?}; tantivy p50 {t50:.2?} p99 {t99:.2?}");
    drop(tantivy);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("athena-search-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn uncommitted_writes_are_invisible_and_lost_on_drop() {
    let schema = Schema::new(true);
    {
        let index = schema.open();
        index.upsert(vec![note("n1", "u1", "committed words")]).unwrap();
        index.commit().unwrap();
        index.upsert(vec![note("n2", "u1", "pending words")]).unwrap();
        index.delete("n1").unwrap();
        assert_eq!(find(&index, "words"), vec!["n1"]);
        // A refused document leaves the pending writes as they were.
        let orphan = Doc { owner: None, ..note("x", "u1", "x") };
        assert!(matches!(index.upsert(vec![orphan]), Err(SearchError::InvalidDoc { .. })));
    }
    let index = schema.open();
    assert_eq!(find(&index, "words"), vec!["n1"]);
    // Committing with nothing pending is fine; a later commit publishes everything pending.
    index.commit().unwrap();
    index.upsert(vec![note("n3", "u1", "more words")]).unwrap();
    index.delete("n1").unwrap();
    index.commit().unwrap();
    assert_eq!(find(&index, "words"), vec!["n3"]);
}

#[test]
fn long_documents_match_across_chunks_and_phrases_at_their_seams() {
    let schema = Schema::new(true);
    let index = schema.open();
    // Filler words, with marker words placed around the chunk seams.
    let units = CHUNK_STEP * 3 + 100;
    let mut words: Vec<String> = (0..units).map(|i| format!("f{i}")).collect();
    words[10] = "alpha".into();
    words[CHUNK_STEP * 2 + 50] = "omega".into();
    // A phrase that starts just before the second chunk's start and ends inside it.
    words[CHUNK_STEP - 2] = "seam".into();
    words[CHUNK_STEP - 1] = "crossing".into();
    words[CHUNK_STEP] = "phrase".into();
    // The same two words far apart, in different chunks.
    words[100] = "distant".into();
    words[CHUNK_STEP * 3 + 20] = "pair".into();
    // Chinese, traditional, across the start of the third chunk.
    words[CHUNK_STEP * 2 - 3] = "鄭伯克段於鄢".into();
    index.upsert(vec![note("long", "u1", &words.join(" ")), note("short", "u1", "alpha distant")]).unwrap();
    index.commit().unwrap();

    assert_eq!(find(&index, "alpha omega"), vec!["long"]);
    assert_eq!(find(&index, "\"seam crossing phrase\""), vec!["long"]);
    assert_eq!(find(&index, "\"crossing phrase\""), vec!["long"]);
    assert_eq!(find(&index, "distant pair"), vec!["long"]);
    assert_eq!(find(&index, "\"distant pair\""), Vec::<String>::new());
    assert_eq!(find(&index, "\"郑伯克段于鄢\""), vec!["long"]);
    assert_eq!(find(&index, "alpha distant"), vec!["long", "short"]);
    let q = Query { text: "omega".into(), user_id: "u1".into(), limit: 10, ..Default::default() };
    let hit = &index.search(&q).unwrap().items[0];
    assert!(hit.snippet.contains("<mark>omega</mark>"), "{}", hit.snippet);
    // The document really is in several chunks.
    let name = schema.name.clone();
    let rows: i64 = block_on(async move {
        let mut conn = sqlx::PgConnection::connect(&url()).await.unwrap();
        conn.execute(format!("SET search_path TO \"{name}\"").as_str()).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM search_chunks WHERE doc_id = 'long'").fetch_one(&mut conn).await.unwrap()
    });
    assert_eq!(rows as usize, (units - CHUNK_OVERLAP).div_ceil(CHUNK_STEP));
}

#[test]
fn hostile_queries_give_results_or_invalid_query() {
    let schema = Schema::new(true);
    let index = schema.open();
    let doc = note("n1", "u1", "O'Neil's \"quoted\" (paren) a\\b & | ! <-> :* AND OR NOT 學而 whale");
    index.upsert(vec![doc]).unwrap();
    index.commit().unwrap();
    let long = "x".repeat(10_000);
    let many_words = "whale ".repeat(85);
    let hostile = [
        "\"",
        "(",
        ")",
        "AND",
        "OR NOT",
        "*",
        ":*",
        "\\",
        "'",
        "''",
        "'; DROP TABLE search_docs; --",
        "a & b | !c",
        "<->",
        "<2>",
        "\u{0}",
        "whale\u{0}",
        "\u{1}\u{7f}\u{200b}",
        "\"\"\"",
        "((((",
        "$1",
        "%",
        "_",
        "學而'",
        "o'neil",
        "a\\b",
        &long,
        &many_words,
        "\u{feff}whale",
        "ｗｈａｌｅ",
        "🐋",
        "\"whale",
        "whale\"",
    ];
    for text in hostile {
        let q = Query { text: text.into(), user_id: "u1".into(), limit: 10, ..Default::default() };
        match index.search(&q) {
            Ok(page) => assert_eq!(page.total as usize, page.items.len(), "{text:?}"),
            Err(SearchError::InvalidQuery(_)) => {}
            Err(e) => panic!("{text:?}: {e}"),
        }
    }
    assert_eq!(find(&index, "o'neil's"), vec!["n1"]);
    assert_eq!(find(&index, "a\\b"), vec!["n1"]);
    assert_eq!(find(&index, "AND whale"), vec!["n1"]);
    assert_eq!(find(&index, "whale\u{0}"), vec!["n1"]);
    // Filters and visibility values with odd characters match nothing instead of failing.
    let q = Query {
        text: "whale".into(),
        user_id: "u1\u{0}".into(),
        allowed_content: vec!["'\u{0}".into()],
        book_ids: Some(vec!["\u{0}".into(), "b1".into()]),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(index.search(&q).unwrap().total, 0);
    // NUL in text is kept as a space; in an identifier it is refused.
    index.upsert(vec![note("n2", "u1", "nul\u{0}byte")]).unwrap();
    assert!(matches!(index.upsert(vec![note("n\u{0}", "u1", "x")]), Err(SearchError::InvalidDoc { .. })));
    index.commit().unwrap();
    assert_eq!(find(&index, "byte"), vec!["n2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_async_code_and_blocking_tasks() {
    let schema = Schema::new(true);
    let index = std::sync::Arc::new(schema.open());
    let writer = index.clone();
    tokio::task::spawn_blocking(move || {
        writer.upsert(vec![note("n1", "u1", "from a blocking task")]).unwrap();
        writer.commit().unwrap();
    })
    .await
    .unwrap();
    // Called straight from a runtime thread too (blocking it briefly), without a nested runtime.
    assert_eq!(find(&*index, "blocking"), vec!["n1"]);
    let searches: Vec<_> = (0..8)
        .map(|_| {
            let index = index.clone();
            tokio::task::spawn_blocking(move || find(&*index, "task"))
        })
        .collect();
    for s in searches {
        assert_eq!(s.await.unwrap(), vec!["n1"]);
    }
    // Dropped on a runtime thread: must not block or panic.
    drop(index);
}

#[test]
fn a_missing_table_is_reported_not_panicked() {
    let schema = Schema::new(false);
    let index = schema.open();
    assert!(matches!(index.health(), IndexHealth::Corrupt { .. }), "{:?}", index.health());
    let q = Query { text: "whale".into(), user_id: "u1".into(), limit: 10, ..Default::default() };
    assert!(matches!(index.search(&q), Err(SearchError::Engine(_))));
    assert!(matches!(index.upsert(vec![note("n1", "u1", "x")]), Err(SearchError::Engine(_))));
    assert!(matches!(index.commit(), Ok(()) | Err(SearchError::Engine(_))));
    let unreachable = PgSearchIndex::connect("postgres://postgres@127.0.0.1:1/none", PgSearchOptions::default());
    assert!(matches!(unreachable, Err(SearchError::Engine(_))));
}
