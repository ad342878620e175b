//! Semantic search quality: recall@10 of keyword, semantic and hybrid ranking over a labelled set of
//! questions (`data/semantic_queries.json`) whose answers lie in known sections of `../shared/corpus` books —
//! paraphrases sharing no content word with the answer, cross-language questions, and keyword questions for
//! comparison. The books are extracted with the worker's code, indexed by the embedded keyword engine, cut into
//! chunks and embedded with the production model and encoding; ranking and fusion are the server's.
//!
//! Also reported: embedding throughput (chunks and characters per second) and query embedding latency.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context};
use athena_search::semantic::{chunk_book_text, dot_encoded, encode_vector, fuse_rrf};
use athena_search::{Kind, Query, SearchIndex};
use serde::Deserialize;

pub struct Options {
    pub corpus: PathBuf,
    pub model: PathBuf,
    pub queries: PathBuf,
}

#[derive(Deserialize)]
struct Labelled {
    books: Vec<String>,
    queries: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    kind: String,
    q: String,
    book: String,
    /// Section titles that hold the answer; empty: any section of the book.
    sections: Vec<String>,
    answer: Option<String>,
}

/// A place a hit points at: the book and the section title.
type Place = (String, Option<String>);

const STOP_EN: &[&str] = &[
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "by", "with", "and", "or", "is", "was", "be", "his", "her", "he", "she", "it",
    "its", "that", "this", "what", "why", "doe", "do", "than", "ani", "other", "more", "their", "they", "them", "up", "out", "as", "from",
    "into", "under", "over", "me", "my", "i", "you", "we", "so", "then", "there", "which", "who", "how", "are", "were", "not", "no", "all",
    "about",
];
const STOP_ZH: &[&str] = &["什么", "关系", "一个", "没有", "只会", "还", "一回"];

fn content_words(text: &str) -> BTreeSet<String> {
    let analysis = athena_search::analysis::analyze(text);
    let mut words: BTreeSet<String> = analysis
        .units
        .iter()
        .filter(|u| u.kind == athena_search::analysis::UnitKind::Word && !STOP_EN.contains(&u.text.as_str()))
        .map(|u| u.text.clone())
        .collect();
    words.extend(analysis.word_terms().into_iter().map(|t| t.text).filter(|w| !STOP_ZH.contains(&w.as_str())));
    words
}

#[derive(serde::Serialize, Deserialize)]
struct Chunk {
    place: Place,
    location: Option<String>,
    /// Chinese/Japanese text or not (`athena_search::semantic::is_cjk_text`): the group its score is normalised in.
    cjk: bool,
    vector: Vec<u8>,
}

pub fn run(scratch: &Path, opts: &Options) -> anyhow::Result<serde_json::Value> {
    let labelled: Labelled = serde_json::from_slice(&std::fs::read(&opts.queries).with_context(|| opts.queries.display().to_string())?)?;
    let dir = scratch.join("semantic");
    let _ = std::fs::remove_dir_all(dir.join("index"));
    std::fs::create_dir_all(&dir)?;

    // Extract each book as the worker does, and index its sections for keyword search.
    let index = athena_search::TantivyIndex::open(dir.join("index"))?;
    let mut section_text: HashMap<Place, String> = HashMap::new();
    let mut text_files = Vec::new();
    for book in &labelled.books {
        let out = dir.join(format!("{}.jsonl", book.replace('/', "_")));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
        athena_formats::extract_epub_text(&opts.corpus.join(book), &athena_formats::Limits::default(), &mut |s| {
            let line = serde_json::json!({ "index": s.index, "location": s.location, "title": s.title, "text": s.text });
            section_text.entry((book.clone(), s.title.clone())).or_default().push_str(&s.text);
            serde_json::to_writer(&mut w, &line).map_err(|e| athena_formats::FormatError::Io(std::io::Error::other(e)))?;
            w.write_all(b"\n").map_err(athena_formats::FormatError::Io)?;
            Ok(())
        })
        .with_context(|| format!("extracting {book}"))?;
        w.flush()?;
        drop(w);
        athena_search::index_book_text(&index, book, None, std::io::BufReader::new(std::fs::File::open(&out)?))?;
        text_files.push((book.clone(), out));
    }
    index.commit()?;

    // Check the labels: every answer section exists, every quoted answer is in it, and paraphrases share no word.
    let mut label_errors = Vec::new();
    for q in &labelled.queries {
        for s in &q.sections {
            if !section_text.contains_key(&(q.book.clone(), Some(s.clone()))) {
                label_errors.push(format!("{}: no section {s:?} in {}", q.q, q.book));
            }
        }
        if let Some(answer) = &q.answer {
            // Whitespace differs between a quote and the extracted lines (poems break lines): compare without it.
            let bare =
                |t: &str| -> String { athena_search::analysis::fold(t).as_string().chars().filter(|c| !c.is_whitespace()).collect() };
            let folded = bare(answer);
            let holder = section_text
                .iter()
                .filter(|((b, t), _)| b == &q.book && (q.sections.is_empty() || t.as_ref().is_some_and(|t| q.sections.contains(t))))
                .any(|(_, text)| bare(text).contains(&folded));
            if !holder {
                label_errors.push(format!("{}: answer not found in its section", q.q));
            }
            if q.kind == "paraphrase" {
                let shared: Vec<String> = content_words(&q.q).intersection(&content_words(answer)).cloned().collect();
                if !shared.is_empty() {
                    label_errors.push(format!("{}: shares {shared:?} with its answer", q.q));
                }
            }
        }
    }
    ensure!(label_errors.is_empty(), "labelled set is wrong:\n{}", label_errors.join("\n"));

    // Embed every chunk of every book with the production model (kept between runs: minutes of CPU).
    let load_started = Instant::now();
    let model = athena_embed::Embedder::load(&opts.model)?;
    let load_secs = load_started.elapsed().as_secs_f64();
    let cache = dir.join(format!("vectors-{}-{}.json", model.model_id().replace(':', "_"), labelled.books.join("+").replace('/', "_")));
    let started = Instant::now();
    let (mut chunks, mut chars, mut embedded) = (Vec::<Chunk>::new(), 0usize, false);
    if let Ok(bytes) = std::fs::read(&cache) {
        (chunks, chars) = serde_json::from_slice(&bytes)?;
        eprintln!("semantic: {} chunk vectors from {}", chunks.len(), cache.display());
    } else {
        embedded = true;
        for (book, path) in &text_files {
            chunk_book_text(std::io::BufReader::new(std::fs::File::open(path)?), 32, |batch| {
                let texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
                chars += texts.iter().map(|t| t.chars().count()).sum::<usize>();
                let vectors = model.embed_passages(&texts).map_err(|e| athena_search::SearchError::Engine(e.to_string()))?;
                for (c, v) in batch.iter().zip(vectors) {
                    chunks.push(Chunk {
                        place: (book.clone(), c.title.clone()),
                        location: c.location.clone(),
                        cjk: athena_search::semantic::is_cjk_text(&c.text),
                        vector: encode_vector(&v),
                    });
                }
                Ok(())
            })?;
            eprintln!("semantic: embedded {book} ({} chunks so far, {:.0} s)", chunks.len(), started.elapsed().as_secs_f64());
        }
        std::fs::write(&cache, serde_json::to_vec(&(&chunks, chars))?)?;
    }
    let embed_secs = started.elapsed().as_secs_f64();

    // Rank each question three ways.
    let all: Vec<String> = labelled.books.clone();
    let mut rows = Vec::new();
    let mut query_ms = Vec::new();
    for q in &labelled.queries {
        let keyword: Vec<Place> = index
            .search(&Query {
                text: q.q.clone(),
                kinds: vec![Kind::BookText],
                book_ids: None,
                allowed_content: all.clone(),
                user_id: "bench".into(),
                limit: athena_search::MAX_LIMIT,
                cursor: None,
            })
            .map(|p| p.items.into_iter().map(|h| (h.content_key.unwrap_or_default(), h.title)).collect())
            .unwrap_or_default();
        let t = Instant::now();
        let v = model.embed_query(&q.q)?;
        query_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Best chunk per section, as the server ranks: by raw cosine, and merged by script (the server's order).
        let mut best: HashMap<(String, Option<String>), (f32, bool, Place)> = HashMap::new();
        for c in &chunks {
            let Some(score) = dot_encoded(&c.vector, &v) else { continue };
            let slot = best.entry((c.place.0.clone(), c.location.clone())).or_insert((score, c.cjk, c.place.clone()));
            if score > slot.0 {
                *slot = (score, c.cjk, c.place.clone());
            }
        }
        let sections: Vec<(f32, bool, Place)> = best.into_values().collect();
        let mut by_score = sections.clone();
        by_score.sort_by(|a, b| b.0.total_cmp(&a.0));
        let raw: Vec<Place> = by_score.into_iter().take(200).map(|(_, _, p)| p).collect();
        let semantic: Vec<Place> = athena_search::semantic::interleave_by_script(athena_search::semantic::is_cjk_text(&q.q), sections)
            .into_iter()
            .take(200)
            .map(|(_, p)| p)
            .collect();
        let hybrid: Vec<Place> = fuse_rrf(&[keyword.clone(), semantic.clone()]).into_iter().map(|(p, _)| p).collect();
        let hit = |ranked: &[Place]| {
            ranked
                .iter()
                .take(10)
                .any(|(b, t)| b == &q.book && (q.sections.is_empty() || t.as_ref().is_some_and(|t| q.sections.contains(t))))
        };
        let found = [hit(&keyword), hit(&semantic), hit(&hybrid), hit(&raw)];
        rows.push((q.kind.clone(), found));
        eprintln!(
            "semantic: [{}] keyword={} semantic={} hybrid={} raw-cosine={}  {}",
            q.kind, found[0] as u8, found[1] as u8, found[2] as u8, found[3] as u8, q.q
        );
    }
    let recall = |kind: Option<&str>, col: usize| {
        let sel: Vec<_> = rows.iter().filter(|r| kind.is_none_or(|k| r.0 == k)).collect();
        let hits = sel.iter().filter(|r| r.1[col]).count();
        serde_json::json!({ "queries": sel.len(), "recall_at_10": hits as f64 / sel.len().max(1) as f64 })
    };
    let mut by_kind = serde_json::Map::new();
    for kind in [None, Some("paraphrase"), Some("crosslang"), Some("keyword")] {
        by_kind.insert(
            kind.unwrap_or("all").to_string(),
            serde_json::json!({
                "keyword": recall(kind, 0),
                "semantic_raw_cosine": recall(kind, 3),
                "semantic": recall(kind, 1),
                "hybrid": recall(kind, 2),
            }),
        );
    }
    query_ms.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "bench": "semantic",
        "model": model.model_id(),
        "books": labelled.books,
        "chunks": chunks.len(),
        "chars": chars,
        "model_load_s": load_secs,
        "embed_s": embed_secs,
        "embedded_this_run": embedded,
        "chunks_per_s": chunks.len() as f64 / embed_secs,
        "chars_per_s": chars as f64 / embed_secs,
        "query_embed_ms_p50": query_ms[query_ms.len() / 2],
        "recall": by_kind,
    }))
}
