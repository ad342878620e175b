//! The scenario suite every [`SearchIndex`] engine must pass, on the real corpus.
//!
//! An engine's integration test calls [`run_all`] on a fresh, empty index with the path of the
//! shared corpus (`shared/corpus`). The suite indexes four books (Chinese simplified and
//! traditional, English) the way the worker stores them, adds notes for two users, and checks
//! matching, folding, phrases, isolation, paging and deletion. A failed check panics with what
//! differed. It returns the figures it measured so engines can be compared.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{index_book_text, Doc, Hit, Kind, Page, Query, SearchError, SearchIndex};

/// The books the suite indexes: corpus path, content key, book id.
pub const BOOKS: [(&str, &str, &str); 4] = [
    ("zh/lunyu.epub", "c-lunyu", "b-lunyu"),
    ("zh/guwenguanzhi.epub", "c-guwen", "b-guwen"),
    ("zh/tangshi300.epub", "c-tangshi", "b-tangshi"),
    ("epub/moby-dick.epub", "c-moby", "b-moby"),
];
const ALICE: &str = "user-alice";
const BOB: &str = "user-bob";

#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub sections: u64,
    pub chars: u64,
    /// Indexing and committing the four books (extraction not included).
    pub index_time: Duration,
    pub query_count: usize,
    pub median_query: Duration,
    pub p95_query: Duration,
}

impl Figures {
    pub fn chars_per_sec(&self) -> f64 {
        self.chars as f64 / self.index_time.as_secs_f64().max(1e-9)
    }
}

/// Runs every scenario in order on one empty index.
pub fn run_all(index: &dyn SearchIndex, corpus: &Path) -> Figures {
    let mut figures = index_corpus(index, corpus);
    truth_phrases(index, corpus);
    simplified_queries(index, corpus);
    short_and_unknown_strings(index);
    english_stemming(index);
    add_notes(index);
    exact_phrases(index);
    user_isolation(index);
    kind_and_book_filters(index);
    pagination(index);
    let (median, p95, n) = measure_queries(index);
    (figures.median_query, figures.p95_query, figures.query_count) = (median, p95, n);
    deletion(index);
    figures
}

fn all_content() -> Vec<String> {
    BOOKS.iter().map(|(_, key, _)| key.to_string()).collect()
}

fn query(user: &str, text: &str) -> Query {
    Query { text: text.into(), user_id: user.into(), allowed_content: all_content(), limit: 10, ..Default::default() }
}

fn search(index: &dyn SearchIndex, q: &Query) -> Page<Hit> {
    index.search(q).unwrap_or_else(|e| panic!("search {:?} failed: {e}", q.text))
}

fn ids(page: &Page<Hit>) -> Vec<String> {
    page.items.iter().map(|h| h.id.clone()).collect()
}

/// Extracts the four books to JSON lines exactly as the worker's `book.extract` stores them, and
/// indexes them with [`index_book_text`].
pub fn index_corpus(index: &dyn SearchIndex, corpus: &Path) -> Figures {
    let mut figures = Figures::default();
    for (rel, key, book) in BOOKS {
        let mut jsonl = Vec::new();
        athena_formats::extract_epub_text(&corpus.join(rel), &athena_formats::Limits::default(), &mut |s| {
            let line = serde_json::json!({
                "index": s.index, "location": s.location, "title": s.title, "href": s.href, "page": null, "text": s.text,
            });
            jsonl.extend_from_slice(line.to_string().as_bytes());
            jsonl.push(b'\n');
            Ok(())
        })
        .unwrap_or_else(|e| panic!("extracting {rel}: {e}"));
        let started = Instant::now();
        let stats = index_book_text(index, key, Some(book), jsonl.as_slice()).unwrap_or_else(|e| panic!("indexing {rel}: {e}"));
        index.commit().expect("commit");
        figures.index_time += started.elapsed();
        assert!(stats.sections > 0 && stats.chars > 1000, "{rel} produced too little text: {stats:?}");
        figures.sections += stats.sections;
        figures.chars += stats.chars;
    }
    let bad = index_book_text(index, "c-bad", None, &b"{\"index\":0,\"text\":\"ok\"}\nnot json\n"[..]);
    assert!(matches!(bad, Err(SearchError::BadText { line: 2, .. })), "a malformed line must fail with its number: {bad:?}");
    figures
}

fn truth(corpus: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(corpus.join("truth.json")).expect("truth.json");
    serde_json::from_str(&raw).expect("truth.json is JSON")
}

fn key_of(rel: &str) -> &'static str {
    BOOKS.iter().find(|(r, _, _)| *r == rel).map(|(_, k, _)| *k).expect("a suite book")
}

/// Asserts the query finds `key`'s text first with `marked` (original script) marked as a whole.
fn assert_found(index: &dyn SearchIndex, text: &str, key: &str, marked: &str) {
    let page = search(index, &Query { kinds: vec![Kind::BookText], ..query(ALICE, text) });
    let first = page.items.first().unwrap_or_else(|| panic!("{text:?} found nothing"));
    assert_eq!(first.content_key.as_deref(), Some(key), "{text:?}: best hit {first:?}");
    assert_eq!(first.kind, Kind::BookText);
    assert!(first.location.as_deref().is_some_and(|l| l.starts_with("epubcfi(")), "{text:?}: location {first:?}");
    let mark = format!("<mark>{marked}</mark>");
    assert!(first.snippet.contains(&mark), "{text:?}: snippet {:?} lacks {mark}", first.snippet);
}

/// Every phrase of truth.json is found in its book, unquoted and quoted.
pub fn truth_phrases(index: &dyn SearchIndex, corpus: &Path) {
    let truth = truth(corpus);
    let mut checked = 0;
    for (rel, _, _) in BOOKS {
        for phrase in truth[rel]["phrases"].as_array().into_iter().flatten() {
            let phrase = phrase.as_str().expect("phrase");
            assert_found(index, phrase, key_of(rel), phrase);
            assert_found(index, &format!("\"{phrase}\""), key_of(rel), phrase);
            checked += 1;
        }
    }
    assert!(checked >= 5, "truth.json lists too few phrases");
}

/// Simplified queries find the traditional book, and the snippet shows the traditional text.
pub fn simplified_queries(index: &dyn SearchIndex, corpus: &Path) {
    let truth = truth(corpus);
    let rel = "zh/guwenguanzhi.epub";
    let phrases = truth[rel]["phrases"].as_array().expect("phrases");
    let queries = truth[rel]["simplified_queries"].as_array().expect("simplified_queries");
    for (q, original) in queries.iter().zip(phrases) {
        let (q, original) = (q.as_str().expect("query"), original.as_str().expect("phrase"));
        assert_ne!(q, original);
        assert_found(index, q, key_of(rel), original);
        assert_found(index, &format!("\"{q}\""), key_of(rel), original);
    }
    // And the other way: a traditional query finds the simplified book.
    assert_found(index, "學而時習之", key_of("zh/lunyu.epub"), "学而时习之");
}

/// One character, a two-character word and an out-of-vocabulary string that cuts across words.
pub fn short_and_unknown_strings(index: &dyn SearchIndex) {
    assert_found(index, "鄢", key_of("zh/guwenguanzhi.epub"), "鄢");
    assert_found(index, "巧言", key_of("zh/lunyu.epub"), "巧言");
    assert_found(index, "伯克段於", key_of("zh/guwenguanzhi.epub"), "伯克段於");
    assert_found(index, "依山", key_of("zh/tangshi300.epub"), "依山");
    // Full-width Latin folds to the book's half-width text.
    let page = search(index, &query(ALICE, "ＷＨＡＬＥ"));
    assert!(page.items.iter().any(|h| h.content_key.as_deref() == Some("c-moby")), "full-width query found nothing");
    // Unquoted, the characters may be apart; quoted, they must appear as typed.
    assert!(search(index, &query(ALICE, "鄢鄢鄢鄢")).total > 0);
    let none = search(index, &query(ALICE, "\"鄢鄢鄢鄢\""));
    assert_eq!(none.total, 0, "a string absent from every book matched: {:?}", ids(&none));
}

/// English words match their other forms.
pub fn english_stemming(index: &dyn SearchIndex) {
    let page = search(index, &Query { limit: 20, ..query(ALICE, "Whales") });
    assert!(page.total > 20, "whales: {} hits", page.total);
    assert!(page.items.iter().all(|h| h.content_key.as_deref() == Some("c-moby")), "whales outside Moby-Dick");
    let singular = page.items.iter().any(|h| h.snippet.to_lowercase().contains("<mark>whale</mark>"));
    assert!(singular, "no snippet marks the singular form: {:?}", page.items.iter().map(|h| &h.snippet).collect::<Vec<_>>());
    assert_found(index, "harpooneers", "c-moby", "harpooneer");
}

fn note(id: &str, owner: &str, book: &str, text: &str) -> Doc {
    Doc {
        id: id.into(),
        owner: Some(owner.into()),
        content_key: None,
        book_id: Some(book.into()),
        kind: if id.starts_with("hl") { Kind::Highlight } else { Kind::Note },
        location: Some("epubcfi(/6/4!/4)".into()),
        title: None,
        text: text.into(),
    }
}

pub fn add_notes(index: &dyn SearchIndex) {
    index
        .upsert(vec![
            note("note-a1", ALICE, "b-moby", "The white whale swam away from the Pequod."),
            note("note-a2", ALICE, "b-moby", "A whale as white as snow, said Ishmael."),
            note("note-a3", ALICE, "b-lunyu", "天下太平，读书为乐。"),
            note("note-a4", ALICE, "b-lunyu", "太平无事，天下读书。"),
            note("hl-a5", ALICE, "b-lunyu", "xylophone secret of alice"),
            note("note-b1", BOB, "b-bob-moby", "xylophone secret of bob, white whale"),
        ])
        .expect("upsert notes");
    // Visibility rules are enforced on write.
    let orphan = Doc { owner: None, ..note("note-x", ALICE, "b", "x") };
    assert!(matches!(index.upsert(vec![orphan]), Err(SearchError::InvalidDoc { .. })), "a note without owner was accepted");
    index.commit().expect("commit");
    // Upserting an id again replaces the document.
    index.upsert(vec![note("hl-a5", ALICE, "b-lunyu", "xylophone secret of alice, edited")]).expect("upsert");
    index.commit().expect("commit");
    let page = search(index, &query(ALICE, "xylophone"));
    assert_eq!(ids(&page), vec!["hl-a5"]);
    assert!(page.items[0].snippet.contains("edited"), "{:?}", page.items[0]);
    assert_eq!(page.items[0].kind, Kind::Highlight);
}

/// Quotes match adjacent words only; without quotes the words may be anywhere.
pub fn exact_phrases(index: &dyn SearchIndex) {
    let notes = |text: &str| {
        let mut got = ids(&search(index, &Query { kinds: vec![Kind::Note], ..query(ALICE, text) }));
        got.sort();
        got
    };
    assert_eq!(notes("\"white whale\""), vec!["note-a1"]);
    assert_eq!(notes("white whale"), vec!["note-a1", "note-a2"]);
    assert_eq!(notes("\"whale white\""), Vec::<String>::new());
    assert_eq!(notes("\"天下太平\""), vec!["note-a3"]);
    assert_eq!(notes("\"太平天下\""), Vec::<String>::new());
    assert_eq!(notes("读书 太平"), vec!["note-a3", "note-a4"]);
    let quoted = search(index, &Query { kinds: vec![Kind::Note], ..query(ALICE, "\"white whale\"") });
    assert!(quoted.items[0].snippet.contains("<mark>white</mark> <mark>whale</mark>"), "{:?}", quoted.items[0].snippet);
}

/// Shared text only for its content's owners; notes only for their owner.
pub fn user_isolation(index: &dyn SearchIndex) {
    let bob = |text: &str, allowed: &[&str]| {
        let q = Query { allowed_content: allowed.iter().map(|s| s.to_string()).collect(), ..query(BOB, text) };
        search(index, &q)
    };
    let only_lunyu = search(index, &Query { kinds: vec![Kind::BookText], allowed_content: vec!["c-lunyu".into()], ..query(BOB, "whales") });
    assert_eq!(only_lunyu.total, 0, "bob saw text he does not own: {:?}", ids(&only_lunyu));
    assert_eq!(bob("鄭伯克段於鄢", &["c-lunyu", "c-tangshi"]).total, 0);
    assert_eq!(bob("学而时习之", &["c-lunyu"]).items.first().and_then(|h| h.content_key.clone()).as_deref(), Some("c-lunyu"));
    // Naming a book does not widen what the user may see.
    let by_book = Query { book_ids: Some(vec!["b-moby".into()]), allowed_content: vec![], ..query(BOB, "whale") };
    assert!(search(index, &Query { book_ids: None, ..by_book.clone() }).items.iter().all(|h| h.id == "note-b1"));
    assert_eq!(search(index, &by_book).total, 0);
    assert_eq!(ids(&bob("xylophone", &[])), vec!["note-b1"]);
    assert_eq!(ids(&search(index, &query(ALICE, "xylophone"))), vec!["hl-a5"]);
    let alice_phrase = search(index, &Query { kinds: vec![Kind::Note], ..query(ALICE, "\"white whale\"") });
    assert!(!ids(&alice_phrase).contains(&"note-b1".to_string()));
    // A user id that is a prefix of another's, and an empty one.
    assert_eq!(search(index, &Query { allowed_content: vec![], ..query("user-ali", "xylophone") }).total, 0);
    assert!(matches!(index.search(&query("", "whale")), Err(SearchError::InvalidQuery(_))));
}

pub fn kind_and_book_filters(index: &dyn SearchIndex) {
    let q = Query { kinds: vec![Kind::Highlight], ..query(ALICE, "secret") };
    assert_eq!(ids(&search(index, &q)), vec!["hl-a5"]);
    let q = Query { kinds: vec![Kind::BookText, Kind::Note], ..query(ALICE, "white whale") };
    let page = search(index, &Query { limit: 100, ..q });
    assert!(page.items.iter().all(|h| matches!(h.kind, Kind::BookText | Kind::Note)));
    assert!(page.items.iter().any(|h| h.kind == Kind::Note) && page.items.iter().any(|h| h.kind == Kind::BookText));
    let q = Query { book_ids: Some(vec!["b-lunyu".into()]), ..query(ALICE, "天下") };
    let page = search(index, &Query { limit: 100, ..q });
    assert!(page.total > 2, "天下 in lunyu: {}", page.total);
    assert!(page.items.iter().all(|h| h.book_id.as_deref() == Some("b-lunyu")));
    let none = Query { book_ids: Some(vec![]), ..query(ALICE, "天下") };
    assert_eq!(search(index, &none).total, 0);
}

/// Pages are disjoint, cover the total, and a cursor only works for its own query.
pub fn pagination(index: &dyn SearchIndex) {
    let base = Query { limit: 7, ..query(ALICE, "whale") };
    let mut seen = HashSet::new();
    let mut q = base.clone();
    let mut pages = 0;
    let total = loop {
        let page = search(index, &q);
        assert!(page.items.len() <= 7);
        for hit in &page.items {
            assert!(seen.insert(hit.id.clone()), "{} appeared on two pages", hit.id);
        }
        pages += 1;
        match page.next_cursor {
            Some(c) if pages < 50 => q.cursor = Some(c),
            Some(_) => panic!("more than 50 pages"),
            None => break page.total,
        }
    };
    assert!(pages >= 3, "whale fits in {pages} pages of 7");
    assert_eq!(seen.len() as u64, total, "pages did not cover the {total} hits");
    let first = search(index, &base);
    let stolen = Query { cursor: first.next_cursor.clone(), ..query(BOB, "whale") };
    assert!(matches!(index.search(&stolen), Err(SearchError::InvalidCursor)));
    let garbage = Query { cursor: Some("not-a-cursor".into()), ..base };
    assert!(matches!(index.search(&garbage), Err(SearchError::InvalidCursor)));
}

/// Latency of a mix of queries, run a few times each: (median, p95, count).
pub fn measure_queries(index: &dyn SearchIndex) -> (Duration, Duration, usize) {
    let texts =
        ["学而时习之", "郑伯克段于鄢", "\"白日依山盡\"", "鄢", "天下", "whale", "\"white whale\"", "harpoon ship", "君子 小人", "Ishmael"];
    let mut times = Vec::new();
    for _ in 0..5 {
        for text in texts {
            let started = Instant::now();
            search(index, &Query { limit: 20, ..query(ALICE, text) });
            times.push(started.elapsed());
        }
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 95 / 100], times.len())
}

/// Deleting by content, by book and by id removes the hits after a commit.
pub fn deletion(index: &dyn SearchIndex) {
    index.delete_by_content("c-moby").expect("delete by content");
    index.delete_by_book("b-lunyu").expect("delete by book");
    index.delete("note-a1").expect("delete");
    index.commit().expect("commit");
    let whales = search(index, &Query { kinds: vec![Kind::BookText], ..query(ALICE, "whale") });
    assert_eq!(whales.total, 0, "deleted content still found: {:?}", ids(&whales));
    let mut notes = ids(&search(index, &query(ALICE, "white whale")));
    notes.sort();
    assert_eq!(notes, vec!["note-a2"]);
    assert_eq!(search(index, &query(ALICE, "xylophone")).total, 0, "a note of a deleted book remained");
    // Shared text of the book survives the owner's book deletion.
    assert_found(index, "学而时习之", "c-lunyu", "学而时习之");
}
