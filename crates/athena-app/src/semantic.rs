//! Semantic search: a user's question compared by meaning with the chunks of their books' text and
//! with their notes and highlights, through a local embedding model ([`TextEmbedder`]).
//!
//! Vectors live in the store (content chunks shared per content hash like the text, annotations
//! per user), so every API replica answers the same. Scoring is exhaustive: a personal library
//! has thousands to a few hundred thousand chunks, which a dot product over compact vectors
//! covers in milliseconds; chunk sets are cached in memory per content hash because they never
//! change once written (a re-embedding writes a new `embedded_at`). Hits are ranked per script and
//! merged two of the question's script for one of the other (`interleave_by_script`): the model rates
//! any text in the question's language above every text in another, which would hide a Chinese
//! question's answer in an English book.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use athena_domain::{ContentHash, UserId};
use athena_search::semantic::{dot_encoded, encode_vector, interleave_by_script, is_cjk_text, TextEmbedder};
use athena_search::{Doc, Kind};
use athena_store::vectors::{AnnotationVector, ChunkVector};
use athena_store::{Book, SyncTable};
use chrono::{DateTime, Utc};

use crate::{App, AppError, AppResult};

/// Most semantic results one query ranks; pages walk within them.
pub const MAX_SEMANTIC_RESULTS: usize = 200;
/// Memory the chunk-vector cache may hold before it starts over.
const CACHE_BYTES: usize = 256 << 20;

/// The embedding model and the cache of chunk vectors read from the store.
pub struct Semantic {
    pub embedder: Arc<dyn TextEmbedder>,
    cache: Mutex<ChunkCache>,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic").finish_non_exhaustive()
    }
}

/// A content's chunk vectors under one model, as of `embedded_at`, and each chunk's script.
struct CachedSet {
    embedded_at: DateTime<Utc>,
    chunks: Vec<ChunkVector>,
    cjk: Vec<bool>,
}

#[derive(Default)]
struct ChunkCache {
    /// By (content hash, model).
    sets: HashMap<(String, String), Arc<CachedSet>>,
    bytes: usize,
}

impl Semantic {
    pub fn new(embedder: Arc<dyn TextEmbedder>) -> Self {
        Self { embedder, cache: Mutex::new(ChunkCache::default()) }
    }
}

/// What a semantic hit points at; the same key names the keyword hit of the same place, so the two
/// rankings can be fused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HitKey {
    /// A section of a content's text, by its location.
    Text { content: String, location: Option<String> },
    /// A note, highlight or book metadata document, by its search document id.
    Doc(String),
}

#[derive(Clone, Debug)]
pub struct SemanticHit {
    pub key: HitKey,
    pub kind: Kind,
    pub book_id: Option<String>,
    pub content_key: Option<String>,
    pub location: Option<String>,
    pub title: Option<String>,
    /// HTML-escaped excerpt (no marks: nothing matched literally).
    pub snippet: String,
    pub score: f32,
}

/// The search document of a note or highlight row as clients sync it, or None when it is deleted.
pub(crate) fn annotation_doc(
    user: &UserId,
    table: SyncTable,
    id: &str,
    row: Option<serde_json::Map<String, serde_json::Value>>,
) -> Option<Doc> {
    let kind = if table == SyncTable::Notes { Kind::Note } else { Kind::Highlight };
    let row = row.filter(|r| !matches!(r.get("is_deleted"), Some(v) if v.as_i64() == Some(1) || v.as_bool() == Some(true)))?;
    let text = |k: &str| row.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let location = text("position_cfi")
        .or_else(|| text("position_start_cfi"))
        .or_else(|| row.get("page_number").and_then(|p| p.as_i64()).map(|p| format!("page:{p}")));
    Some(Doc {
        id: annotation_doc_id(table, id),
        owner: Some(user.to_string()),
        content_key: None,
        book_id: text("book_id"),
        kind,
        location,
        title: None,
        text: text("content").or_else(|| text("text")).unwrap_or_default(),
    })
}

pub(crate) fn annotation_doc_id(table: SyncTable, id: &str) -> String {
    let kind = if table == SyncTable::Notes { Kind::Note } else { Kind::Highlight };
    format!("{}:{id}", kind.as_str())
}

fn set_bytes(set: &CachedSet) -> usize {
    set.chunks.iter().map(|c| c.vector.len() + c.preview.len() + 64).sum()
}

fn escaped(text: &str) -> String {
    athena_search::highlight(text, &BTreeSet::new(), athena_search::semantic::PREVIEW_CHARS + 8)
}

impl App {
    /// The same use cases with semantic search.
    pub fn with_semantic(mut self, embedder: Arc<dyn TextEmbedder>) -> Self {
        self.semantic = Some(Arc::new(Semantic::new(embedder)));
        self
    }

    fn semantic(&self) -> AppResult<Arc<Semantic>> {
        self.semantic.clone().ok_or_else(|| AppError::Unavailable("semantic search is off: no embedding model is configured".into()))
    }

    /// Ranks the user's book chunks and annotations by similarity to `q`, best first, at most
    /// [`MAX_SEMANTIC_RESULTS`], one hit per section of a book (its best chunk).
    pub(crate) async fn semantic_ranked(&self, user: &UserId, q: &str, kinds: &[Kind], books: &[Book]) -> AppResult<Vec<SemanticHit>> {
        let semantic = self.semantic()?;
        let (model, query) = {
            let (embedder, q) = (semantic.embedder.clone(), q.to_string());
            tokio::task::spawn_blocking(move || Ok::<_, athena_search::SearchError>((embedder.model_id()?, embedder.embed_query(&q)?)))
                .await
                .map_err(AppError::internal)?
                .map_err(|e| AppError::Unavailable(Box::new(e)))?
        };
        // Candidates of the scope: the user's contents' chunk sets, and their annotations.
        let mut sets = Vec::new();
        if kinds.contains(&Kind::BookText) {
            let mut shas: Vec<ContentHash> = books.iter().map(|b| b.content_sha256.clone()).collect();
            shas.sort();
            shas.dedup();
            for set in self.store.content_vector_sets(&shas, &model).await? {
                let cached = self.chunk_set(&semantic, &set.content_sha256, &model, set.embedded_at).await?;
                sets.push((set.content_sha256.to_string(), cached));
            }
        }
        let want_notes = kinds.contains(&Kind::Note);
        let want_highlights = kinds.contains(&Kind::Highlight);
        let mut annotations = Vec::new();
        if want_notes || want_highlights {
            let owned: BTreeSet<String> = books.iter().map(|b| b.id.to_string()).collect();
            for v in self.store.annotation_vectors(user, &model).await? {
                let kind = if v.kind == "note" { Kind::Note } else { Kind::Highlight };
                // Annotations of books outside the scope (deleted, or filtered out) are not shown.
                if (kind == Kind::Note && want_notes || kind == Kind::Highlight && want_highlights)
                    && v.book_id.as_ref().is_some_and(|b| owned.contains(b))
                {
                    annotations.push((kind, is_cjk_text(&v.preview), v));
                }
            }
        }
        let mut hits = Vec::new();
        for (content, set) in &sets {
            // One hit per section: its best chunk.
            let mut best: HashMap<Option<String>, (f32, usize)> = HashMap::new();
            for (i, chunk) in set.chunks.iter().enumerate() {
                let Some(score) = dot_encoded(&chunk.vector, &query) else { continue };
                let slot = best.entry(chunk.location.clone()).or_insert((score, i));
                if score > slot.0 {
                    *slot = (score, i);
                }
            }
            hits.extend(best.into_values().map(|(score, i)| {
                let chunk = &set.chunks[i];
                let hit = SemanticHit {
                    key: HitKey::Text { content: content.clone(), location: chunk.location.clone() },
                    kind: Kind::BookText,
                    book_id: None,
                    content_key: Some(content.clone()),
                    location: chunk.location.clone(),
                    title: chunk.title.clone(),
                    snippet: escaped(&chunk.preview),
                    score,
                };
                (score, set.cjk[i], hit)
            }));
        }
        for (kind, cjk, v) in annotations {
            let Some(score) = dot_encoded(&v.vector, &query) else { continue };
            let hit = SemanticHit {
                key: HitKey::Doc(v.doc_id.clone()),
                kind,
                book_id: v.book_id.clone(),
                content_key: None,
                location: v.location.clone(),
                title: None,
                snippet: escaped(&v.preview),
                score,
            };
            hits.push((score, cjk, hit));
        }
        let mut hits: Vec<SemanticHit> = interleave_by_script(is_cjk_text(q), hits).into_iter().map(|(_, h)| h).collect();
        hits.truncate(MAX_SEMANTIC_RESULTS);
        Ok(hits)
    }

    async fn chunk_set(
        &self,
        semantic: &Semantic,
        sha: &ContentHash,
        model: &str,
        embedded_at: DateTime<Utc>,
    ) -> AppResult<Arc<CachedSet>> {
        let key = (sha.to_string(), model.to_string());
        if let Some(cached) = semantic.cache.lock().expect("cache lock").sets.get(&key) {
            if cached.embedded_at == embedded_at {
                return Ok(cached.clone());
            }
        }
        let chunks = self.store.content_vectors(sha, model).await?;
        let cjk = chunks.iter().map(|c| is_cjk_text(&c.preview)).collect();
        let set = Arc::new(CachedSet { embedded_at, chunks, cjk });
        let bytes = set_bytes(&set);
        let mut cache = semantic.cache.lock().expect("cache lock");
        if cache.bytes + bytes > CACHE_BYTES {
            cache.sets.clear();
            cache.bytes = 0;
        }
        if let Some(old) = cache.sets.insert(key, set.clone()) {
            cache.bytes = cache.bytes.saturating_sub(set_bytes(&old));
        }
        cache.bytes += bytes;
        Ok(set)
    }

    /// The search documents of a user's live notes and highlights of one book (index rebuilds).
    pub async fn annotation_docs(&self, user: &UserId, book: &athena_domain::BookId) -> AppResult<Vec<Doc>> {
        let mut docs = Vec::new();
        for (table, id) in self.store.live_annotation_ids(user, book).await? {
            if let Some(doc) = annotation_doc(user, table, &id, self.store.client_row(user, table, &id).await?) {
                docs.push(doc);
            }
        }
        Ok(docs)
    }

    /// Embeds the named notes and highlights of a user (the worker's `annotations.embed`), and
    /// forgets the vectors of those deleted since.
    pub async fn embed_annotations(&self, user: &UserId, rows: &[(SyncTable, String)]) -> AppResult<usize> {
        let semantic = self.semantic()?;
        let mut docs = Vec::new();
        for (table, id) in rows {
            match annotation_doc(user, *table, id, self.store.client_row(user, *table, id).await?) {
                Some(doc) if !doc.text.trim().is_empty() => docs.push(doc),
                _ => self.store.delete_annotation_vector(user, &annotation_doc_id(*table, id)).await?,
            }
        }
        if docs.is_empty() {
            return Ok(0);
        }
        let (model, vectors) = {
            let embedder = semantic.embedder.clone();
            let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok::<_, athena_search::SearchError>((embedder.model_id()?, embedder.embed_passages(&refs)?))
            })
            .await
            .map_err(AppError::internal)?
            .map_err(|e| AppError::Unavailable(Box::new(e)))?
        };
        let now = self.clock.now();
        let count = docs.len();
        for (doc, vector) in docs.into_iter().zip(vectors) {
            let preview =
                athena_search::semantic::TextChunk { chunk_no: 0, section: 0, location: None, title: None, text: doc.text.clone() }
                    .preview();
            self.store
                .put_annotation_vector(AnnotationVector {
                    user_id: user.clone(),
                    doc_id: doc.id,
                    book_id: doc.book_id,
                    kind: doc.kind.as_str().to_string(),
                    location: doc.location,
                    preview,
                    model: model.clone(),
                    vector: encode_vector(&vector),
                    updated_at: now,
                })
                .await?;
        }
        Ok(count)
    }
}
