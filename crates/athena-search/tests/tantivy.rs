//! The embedded engine against the conformance suite and the shared corpus, plus what only an
//! on-disk engine has: reopening, the writer lock, corruption at open, reset and rebuild.

use std::fs;
use std::path::{Path, PathBuf};

use athena_search::{conformance, Doc, IndexHealth, Kind, Query, SearchError, SearchIndex, TantivyIndex};

fn corpus() -> PathBuf {
    std::env::var_os("ATHENA_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"), PathBuf::from("/work/shared/corpus")])
        .find(|d| d.join("truth.json").is_file())
        .expect("the shared corpus (set ATHENA_CORPUS, or keep shared/ next to the repository)")
}

fn note(id: &str, text: &str) -> Doc {
    Doc {
        id: id.into(),
        owner: Some("u1".into()),
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
    index.search(&q).expect("search").items.into_iter().map(|h| h.id).collect()
}

#[test]
fn conformance_on_the_corpus_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    {
        let index = TantivyIndex::open(&path).unwrap();
        assert!(matches!(index.health(), IndexHealth::Rebuilding { docs: 0, .. }), "{:?}", index.health());
        let figures = conformance::run_all(&index, &corpus());
        eprintln!(
            "tantivy: indexed {} sections, {} chars in {:.2?} ({:.0} chars/s); {} queries, median {:.2?}, p95 {:.2?}",
            figures.sections,
            figures.chars,
            figures.index_time,
            figures.chars_per_sec(),
            figures.query_count,
            figures.median_query,
            figures.p95_query
        );
        index.mark_ready().unwrap();
        assert!(matches!(index.health(), IndexHealth::Ready { docs } if docs > 500), "{:?}", index.health());
        // One writer per folder: a second open is refused, not treated as corruption.
        assert!(matches!(TantivyIndex::open(&path), Err(SearchError::Unavailable(_))));
    }
    let reopened = TantivyIndex::open(&path).unwrap();
    assert!(reopened.health().is_ready(), "{:?}", reopened.health());
    let q = Query {
        text: "郑伯克段于鄢".into(),
        user_id: "someone".into(),
        allowed_content: vec!["c-guwen".into()],
        limit: 5,
        ..Default::default()
    };
    let page = reopened.search(&q).unwrap();
    assert_eq!(page.items.first().and_then(|h| h.content_key.as_deref()), Some("c-guwen"));
    reopened.verify().unwrap();
}

#[test]
fn uncommitted_writes_are_invisible_and_lost_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = TantivyIndex::open(dir.path()).unwrap();
        index.upsert(vec![note("n1", "committed words")]).unwrap();
        index.commit().unwrap();
        index.upsert(vec![note("n2", "pending words")]).unwrap();
        assert_eq!(find(&index, "words"), vec!["n1"]);
    }
    let index = TantivyIndex::open(dir.path()).unwrap();
    assert_eq!(find(&index, "words"), vec!["n1"]);
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| ["idx", "term", "store", "pos"].contains(&e.to_str().unwrap())))
        .collect();
    files.sort();
    files
}

fn small_index(dir: &Path) {
    let index = TantivyIndex::open(dir).unwrap();
    let docs = (0..50).map(|i| note(&format!("n{i}"), &format!("第{i}条笔记 note number {i} 鄭伯克段於鄢"))).collect();
    index.upsert(docs).unwrap();
    index.commit().unwrap();
}

#[test]
fn truncated_segment_files_are_corrupt_at_open_and_reset_rebuilds() {
    for ext in ["idx", "term", "store", "pos"] {
        let dir = tempfile::tempdir().unwrap();
        small_index(dir.path());
        let victim = segment_files(dir.path()).into_iter().find(|p| p.extension().unwrap() == ext).expect("segment file");
        let len = fs::metadata(&victim).unwrap().len();
        fs::OpenOptions::new().write(true).open(&victim).unwrap().set_len(len / 2).unwrap();

        let index = TantivyIndex::open(dir.path()).unwrap();
        assert!(matches!(index.health(), IndexHealth::Corrupt { .. }), "truncated .{ext}: {:?}", index.health());
        let q = Query { text: "note".into(), user_id: "u1".into(), limit: 5, ..Default::default() };
        assert!(matches!(index.search(&q), Err(SearchError::Unavailable(_))));
        assert!(matches!(index.upsert(vec![note("x", "x")]), Err(SearchError::Unavailable(_))));

        index.reset().unwrap();
        assert!(matches!(index.health(), IndexHealth::Rebuilding { docs: 0, .. }), "{:?}", index.health());
        index.upsert(vec![note("again", "rebuilt note")]).unwrap();
        index.commit().unwrap();
        assert_eq!(find(&index, "rebuilt"), vec!["again"]);
        index.mark_ready().unwrap();
        drop(index);
        assert!(TantivyIndex::open(dir.path()).unwrap().health().is_ready());
    }
}

#[test]
fn damaged_meta_missing_meta_and_old_versions_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    small_index(dir.path());
    fs::write(dir.path().join("meta.json"), b"{\"segments\": [tru").unwrap();
    assert!(matches!(TantivyIndex::open(dir.path()).unwrap().health(), IndexHealth::Corrupt { .. }));

    let dir = tempfile::tempdir().unwrap();
    small_index(dir.path());
    fs::remove_file(dir.path().join("meta.json")).unwrap();
    assert!(matches!(TantivyIndex::open(dir.path()).unwrap().health(), IndexHealth::Corrupt { .. }));

    let dir = tempfile::tempdir().unwrap();
    small_index(dir.path());
    fs::write(dir.path().join("athena-search.version"), "0").unwrap();
    let health = TantivyIndex::open(dir.path()).unwrap().health();
    assert!(matches!(&health, IndexHealth::Corrupt { reason } if reason.contains("version")), "{health:?}");
}

#[test]
fn flipped_bytes_are_found_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    small_index(dir.path());
    let store = segment_files(dir.path()).into_iter().find(|p| p.extension().unwrap() == "store").unwrap();
    let mut bytes = fs::read(&store).unwrap();
    bytes[4] ^= 0xff;
    fs::write(&store, bytes).unwrap();
    let index = TantivyIndex::open(dir.path()).unwrap();
    assert!(matches!(index.verify(), Err(SearchError::Unavailable(_))));
    assert!(matches!(index.health(), IndexHealth::Corrupt { .. }));
}
