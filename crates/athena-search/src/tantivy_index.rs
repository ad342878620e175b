//! The embedded engine: a tantivy index in one folder (the hot dir's `index/`).
//!
//! One `TantivyIndex` per folder per process: it holds tantivy's writer lock, and a second open
//! fails with `Unavailable`. Visibility is one indexed key per document, `scope`: `u:{owner}` for
//! per-user documents, `c:{content_key}` for shared ones, so the user filter is a single term set.
//! Writes go through one writer behind a mutex; searches use the last committed state.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query as TQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TantivyDocument, TextFieldIndexing, TextOptions, Value, STORED, STRING};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use crate::analysis::{AthenaTokenizer, Stream};
use crate::query::{parse_query, Phrase};
use crate::{
    cursor, highlight, validate_doc, Doc, Hit, IndexHealth, Kind, Page, Query, Result, SearchError, SearchIndex, MAX_LIMIT, SNIPPET_CHARS,
};

/// Bump when analysis or the schema changes: an index built by another version must be rebuilt.
const FORMAT_VERSION: u32 = 1;
/// Written next to tantivy's files; holds `FORMAT_VERSION`.
const VERSION_FILE: &str = "athena-search.version";
/// Present while a rebuild is under way, so a crash mid-rebuild is still reported after restart.
const REBUILDING_FILE: &str = "athena-search.rebuilding";
/// Indexing memory per writer thread.
const WRITER_BYTES_PER_THREAD: usize = 32 << 20;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    kind: Field,
    scope: Field,
    shared: Field,
    content_key: Field,
    book_id: Field,
    location: Field,
    title: Field,
    text: Field,
    words: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let grams = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default().set_tokenizer("athena_grams").set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    // Ranking only: no positions, not stored.
    let words = TextOptions::default()
        .set_indexing_options(TextFieldIndexing::default().set_tokenizer("athena_words").set_index_option(IndexRecordOption::WithFreqs));
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        scope: b.add_text_field("scope", STRING),
        shared: b.add_text_field("shared", STRING),
        content_key: b.add_text_field("content_key", STRING | STORED),
        book_id: b.add_text_field("book_id", STRING | STORED),
        location: b.add_text_field("location", STORED),
        title: b.add_text_field("title", STORED),
        text: b.add_text_field("text", grams),
        words: b.add_text_field("words", words),
    };
    (b.build(), fields)
}

struct Engine {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Why the index is being rebuilt, while it is.
    rebuilding: Option<String>,
}

enum State {
    Open(Box<Engine>),
    Corrupt(String),
}

/// The tantivy engine. See the module documentation.
pub struct TantivyIndex {
    dir: PathBuf,
    state: RwLock<State>,
}

impl std::fmt::Debug for TantivyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivyIndex").field("dir", &self.dir).field("health", &self.health()).finish()
    }
}

fn engine_err(e: impl std::fmt::Display) -> SearchError {
    SearchError::Engine(e.to_string())
}

impl TantivyIndex {
    /// Opens the index in `dir`, creating it when the folder is empty or missing (health
    /// `Rebuilding`: the caller indexes the library, then calls `mark_ready`). An index that
    /// cannot be read opens as `Corrupt`; `reset` replaces it. Fails only on IO errors creating the
    /// folder and when another writer holds the index.
    pub fn open(dir: impl AsRef<Path>) -> Result<TantivyIndex> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let state = match load(&dir) {
            Ok(engine) => State::Open(Box::new(engine)),
            Err(Load::Corrupt(reason)) => {
                tracing::error!(dir = %dir.display(), %reason, "search index is corrupt; it must be reset and rebuilt");
                State::Corrupt(reason)
            }
            Err(Load::Fatal(e)) => return Err(e),
        };
        Ok(TantivyIndex { dir, state: RwLock::new(state) })
    }

    /// Deletes everything in the folder and starts an empty index (health `Rebuilding`).
    pub fn reset(&self) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Release the writer lock before removing the files under it.
        *state = State::Corrupt("resetting".into());
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        match load(&self.dir) {
            Ok(engine) => {
                *state = State::Open(Box::new(engine));
                Ok(())
            }
            Err(Load::Corrupt(reason)) => {
                *state = State::Corrupt(reason.clone());
                Err(SearchError::Unavailable(reason))
            }
            Err(Load::Fatal(e)) => Err(e),
        }
    }

    /// Records that the rebuild finished: health becomes `Ready`.
    pub fn mark_ready(&self) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            State::Open(engine) => {
                match fs::remove_file(self.dir.join(REBUILDING_FILE)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                engine.rebuilding = None;
                Ok(())
            }
            State::Corrupt(reason) => Err(SearchError::Unavailable(reason.clone())),
        }
    }

    /// Reads every file and checks its checksum: thorough but proportional to the index size,
    /// so it is not done at open. A failure marks the index corrupt.
    pub fn verify(&self) -> Result<()> {
        let failed = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let State::Open(engine) = &*state else { return Err(SearchError::Unavailable("index is corrupt".into())) };
            let index = engine.reader.searcher().index().clone();
            match index.validate_checksum() {
                Ok(bad) if bad.is_empty() => return Ok(()),
                Ok(bad) => format!("checksum mismatch in {bad:?}"),
                Err(e) => format!("verifying checksums: {e}"),
            }
        };
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = State::Corrupt(failed.clone());
        Err(SearchError::Unavailable(failed))
    }

    fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> Result<T>) -> Result<T> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Open(engine) => f(engine),
            State::Corrupt(reason) => Err(SearchError::Unavailable(reason.clone())),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&IndexWriter, &Fields) -> Result<T>) -> Result<T> {
        self.with_engine(|engine| {
            let writer = engine.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&writer, &engine.fields)
        })
    }
}

enum Load {
    /// The folder holds something that is not a readable index of this version.
    Corrupt(String),
    Fatal(SearchError),
}

fn register_tokenizers(index: &Index) {
    index.tokenizers().register("athena_grams", TextAnalyzer::from(AthenaTokenizer::new(Stream::Grams)));
    index.tokenizers().register("athena_words", TextAnalyzer::from(AthenaTokenizer::new(Stream::Words)));
}

fn load(dir: &Path) -> Result<Engine, Load> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| Load::Corrupt(format!("{what}: {e}"));
    let (schema, fields) = schema();
    let has_meta = dir.join("meta.json").is_file();
    let empty = fs::read_dir(dir).map_err(|e| Load::Fatal(e.into()))?.next().is_none();
    let index = if has_meta {
        let index = Index::open_in_dir(dir).map_err(|e| corrupt("opening the index", &e))?;
        if index.schema() != schema {
            return Err(Load::Corrupt("the index was built with another schema".into()));
        }
        let version = fs::read_to_string(dir.join(VERSION_FILE)).unwrap_or_default();
        if version.trim() != FORMAT_VERSION.to_string() {
            return Err(Load::Corrupt(format!("the index has format version {:?}, this build uses {FORMAT_VERSION}", version.trim())));
        }
        index
    } else if empty {
        let index = Index::create_in_dir(dir, schema).map_err(|e| Load::Fatal(engine_err(e)))?;
        fs::write(dir.join(VERSION_FILE), FORMAT_VERSION.to_string()).map_err(|e| Load::Fatal(e.into()))?;
        fs::write(dir.join(REBUILDING_FILE), "new index").map_err(|e| Load::Fatal(e.into()))?;
        index
    } else {
        return Err(Load::Corrupt("the folder has files but no meta.json".into()));
    };
    register_tokenizers(&index);
    let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| corrupt("opening segments", &e))?;
    check_segments(&reader, &fields).map_err(|e| corrupt("reading segments", &e))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let writer = index.writer_with_num_threads(threads, threads * WRITER_BYTES_PER_THREAD).map_err(|e| match e {
        tantivy::TantivyError::LockFailure(..) => {
            Load::Fatal(SearchError::Unavailable(format!("another writer holds the index in {}", dir.display())))
        }
        e => corrupt("opening the writer", &e),
    })?;
    let rebuilding = fs::read_to_string(dir.join(REBUILDING_FILE)).ok();
    Ok(Engine { reader, writer: Mutex::new(writer), fields, rebuilding })
}

/// Touches every segment's term dictionaries, postings and store, so truncated or damaged files
/// are found at open rather than by the first unlucky query.
fn check_segments(reader: &IndexReader, fields: &Fields) -> tantivy::Result<()> {
    let searcher = reader.searcher();
    for segment in searcher.segment_readers() {
        for field in [fields.id, fields.scope, fields.text, fields.words] {
            let inverted = segment.inverted_index(field)?;
            let mut terms = inverted.terms().stream()?;
            if terms.advance() {
                let info = terms.value().clone();
                inverted.read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
            }
        }
        let store = segment.get_store_reader(1)?;
        if segment.max_doc() > 0 {
            store.get::<TantivyDocument>(segment.max_doc() - 1)?;
        }
    }
    Ok(())
}

fn str_term(field: Field, s: &str) -> Term {
    Term::from_field_text(field, s)
}

fn scope_of(doc: &Doc) -> String {
    match (&doc.owner, &doc.content_key) {
        (Some(owner), _) => format!("u:{owner}"),
        (None, Some(key)) => format!("c:{key}"),
        // `validate_doc` refuses this.
        (None, None) => String::new(),
    }
}

fn phrase_query(field: Field, phrase: &Phrase) -> Box<dyn TQuery> {
    match phrase.as_slice() {
        [(_, term)] => Box::new(TermQuery::new(str_term(field, term), IndexRecordOption::WithFreqs)),
        _ => Box::new(PhraseQuery::new_with_offset(phrase.iter().map(|(p, t)| (*p, str_term(field, t))).collect())),
    }
}

fn filter(query: Box<dyn TQuery>) -> (Occur, Box<dyn TQuery>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
}

impl SearchIndex for TantivyIndex {
    fn upsert(&self, docs: Vec<Doc>) -> Result<()> {
        docs.iter().try_for_each(validate_doc)?;
        self.write(|writer, f| {
            for doc in docs {
                let mut d = TantivyDocument::default();
                d.add_text(f.id, &doc.id);
                d.add_text(f.kind, doc.kind.as_str());
                d.add_text(f.scope, scope_of(&doc));
                d.add_text(f.shared, if doc.owner.is_none() { "1" } else { "0" });
                for (field, value) in
                    [(f.content_key, &doc.content_key), (f.book_id, &doc.book_id), (f.location, &doc.location), (f.title, &doc.title)]
                {
                    if let Some(v) = value {
                        d.add_text(field, v);
                    }
                }
                d.add_text(f.text, &doc.text);
                d.add_text(f.words, &doc.text);
                writer.delete_term(str_term(f.id, &doc.id));
                writer.add_document(d).map_err(engine_err)?;
            }
            Ok(())
        })
    }

    fn delete_by_book(&self, book_id: &str) -> Result<()> {
        self.write(|writer, f| {
            let q = BooleanQuery::new(vec![
                (Occur::Must, Box::new(TermQuery::new(str_term(f.book_id, book_id), IndexRecordOption::Basic))),
                (Occur::Must, Box::new(TermQuery::new(str_term(f.shared, "0"), IndexRecordOption::Basic))),
            ]);
            writer.delete_query(Box::new(q)).map_err(engine_err)?;
            Ok(())
        })
    }

    fn delete_by_content(&self, content_key: &str) -> Result<()> {
        self.write(|writer, f| {
            writer.delete_term(str_term(f.scope, &format!("c:{content_key}")));
            Ok(())
        })
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.write(|writer, f| {
            writer.delete_term(str_term(f.id, id));
            Ok(())
        })
    }

    fn search(&self, q: &Query) -> Result<Page<Hit>> {
        if q.user_id.is_empty() {
            return Err(SearchError::InvalidQuery("a search needs a user".into()));
        }
        let parsed = parse_query(&q.text)?;
        let offset = cursor::decode(q)?;
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let empty = Page { items: Vec::new(), total: 0, next_cursor: None };
        if parsed.is_empty() || q.book_ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(empty);
        }
        self.with_engine(|engine| {
            let f = &engine.fields;
            let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
            for phrase in &parsed.required {
                clauses.push((Occur::Must, phrase_query(f.text, phrase)));
            }
            for phrase in parsed.boost_phrases.iter().filter(|p| p.len() > 1) {
                clauses.push((Occur::Should, Box::new(BoostQuery::new(phrase_query(f.text, phrase), 2.0))));
            }
            for word in &parsed.boost_words {
                clauses.push((Occur::Should, Box::new(TermQuery::new(str_term(f.words, word), IndexRecordOption::WithFreqs))));
            }
            let scopes = std::iter::once(format!("u:{}", q.user_id)).chain(q.allowed_content.iter().map(|k| format!("c:{k}")));
            clauses.push(filter(Box::new(TermSetQuery::new(scopes.map(|s| str_term(f.scope, &s))))));
            if !q.kinds.is_empty() {
                clauses.push(filter(Box::new(TermSetQuery::new(q.kinds.iter().map(|k| str_term(f.kind, k.as_str()))))));
            }
            if let Some(ids) = &q.book_ids {
                clauses.push(filter(Box::new(TermSetQuery::new(ids.iter().map(|id| str_term(f.book_id, id))))));
            }
            let query = BooleanQuery::new(clauses);
            let searcher = engine.reader.searcher();
            let (top, total) =
                searcher.search(&query, &(TopDocs::with_limit(limit).and_offset(offset).order_by_score(), Count)).map_err(engine_err)?;
            let mut items = Vec::with_capacity(top.len());
            for (score, address) in top {
                let doc: TantivyDocument = searcher.doc(address).map_err(engine_err)?;
                let get = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).map(str::to_string);
                let text = get(f.text).unwrap_or_default();
                items.push(Hit {
                    id: get(f.id).unwrap_or_default(),
                    kind: get(f.kind).as_deref().and_then(Kind::parse).unwrap_or(Kind::BookText),
                    book_id: get(f.book_id),
                    content_key: get(f.content_key),
                    location: get(f.location),
                    title: get(f.title),
                    score,
                    snippet: highlight(&text, &parsed.highlight, SNIPPET_CHARS),
                });
            }
            let next = offset + items.len();
            let next_cursor = (next < total && next <= cursor::MAX_OFFSET && !items.is_empty()).then(|| cursor::encode(next, q));
            Ok(Page { items, total: total as u64, next_cursor })
        })
    }

    fn commit(&self) -> Result<()> {
        self.with_engine(|engine| {
            engine.writer.lock().unwrap_or_else(|e| e.into_inner()).commit().map_err(engine_err)?;
            engine.reader.reload().map_err(engine_err)
        })
    }

    fn health(&self) -> IndexHealth {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Open(engine) => {
                let docs = engine.reader.searcher().num_docs();
                match &engine.rebuilding {
                    Some(reason) => IndexHealth::Rebuilding { docs, reason: reason.clone() },
                    None => IndexHealth::Ready { docs },
                }
            }
            State::Corrupt(reason) => IndexHealth::Corrupt { reason: reason.clone() },
        }
    }

    fn mark_ready(&self) -> Result<()> {
        TantivyIndex::mark_ready(self)
    }

    fn engine(&self) -> &'static str {
        "tantivy"
    }
}
