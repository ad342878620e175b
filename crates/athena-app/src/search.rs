//! Search over what a user owns: the text of their books (indexed once per content hash, shared
//! safely because a query only ever names the user's own content) and their books' metadata.

use std::collections::HashMap;
use std::sync::Arc;

use athena_domain::BookId;
use athena_search::{Kind, Query, SearchIndex};
use athena_store::{Book, BookQuery};
use serde::Serialize;

use crate::semantic::HitKey;
use crate::{App, AppError, AppResult, Principal};

/// Most books looked at to build a user's search scope (far above the default quota of 50).
const MAX_SCOPE_BOOKS: usize = 20_000;

#[derive(Clone, Debug, Default)]
pub struct SearchParams {
    pub q: String,
    /// `book` (titles, authors), `content` (book text), `note` or `highlight`; all when absent.
    pub kind: Option<String>,
    pub book_id: Option<BookId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `keyword` (default), `semantic` (by meaning, through the embedding model) or `hybrid`
    /// (both rankings fused by reciprocal rank fusion).
    pub mode: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Keyword,
    Semantic,
    Hybrid,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchHit {
    /// `content`, `book`, `note` or `highlight`.
    pub kind: &'static str,
    pub book_id: BookId,
    pub book_title: String,
    /// The chapter's title, for content hits.
    pub title: Option<String>,
    /// Where the reader opens: an EPUB CFI or `page:N`.
    pub location: Option<String>,
    /// The matched terms are marked with `<mark>…</mark>`; the rest is HTML-escaped.
    pub snippet: String,
    pub score: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchResults {
    pub items: Vec<SearchHit>,
    pub total: u64,
    pub next_cursor: Option<String>,
    #[serde(skip)]
    pub engine: &'static str,
}

impl App {
    fn search_index(&self) -> AppResult<Arc<dyn SearchIndex>> {
        self.search.clone().ok_or_else(|| AppError::Unavailable("this process has no search index".into()))
    }

    /// The user's live books, for the search scope (their content hashes) and to name hits.
    async fn scope(&self, who: &Principal) -> AppResult<Vec<Book>> {
        let mut books = Vec::new();
        let mut query = BookQuery { limit: 200, ..Default::default() };
        loop {
            let page = self.store.list_books(&who.user_id, &query).await?;
            let done = page.len() < query.limit as usize;
            query.after = page.last().map(|b| (b.created_at, b.id.clone()));
            books.extend(page);
            if done || books.len() >= MAX_SCOPE_BOOKS {
                return Ok(books);
            }
        }
    }

    pub async fn search(&self, who: &Principal, params: SearchParams) -> AppResult<SearchResults> {
        let mode = match params.mode.as_deref() {
            None | Some("") | Some("keyword") => Mode::Keyword,
            Some("semantic") => Mode::Semantic,
            Some("hybrid") => Mode::Hybrid,
            Some(_) => return Err(AppError::validation("mode", "must be keyword, semantic or hybrid")),
        };
        let kinds = match params.kind.as_deref() {
            None | Some("") => vec![Kind::BookText, Kind::BookMeta, Kind::Note, Kind::Highlight],
            Some("content") => vec![Kind::BookText],
            Some("book") => vec![Kind::BookMeta],
            Some("note") => vec![Kind::Note],
            Some("highlight") => vec![Kind::Highlight],
            Some(_) => return Err(AppError::validation("kind", "must be book, content, note or highlight")),
        };
        // Checked before anything runs, so every engine and mode refuses the same inputs alike.
        let parsed = athena_search::parse_query(&params.q).map_err(|e| AppError::validation("q", e.to_string()))?;
        if parsed.is_empty() && mode != Mode::Keyword {
            return Err(AppError::validation("q", "the query has no words"));
        }
        let limit = params.limit.unwrap_or(20).clamp(1, athena_search::MAX_LIMIT as u32) as usize;
        let index = match mode {
            Mode::Semantic => None,
            _ => Some(self.search_index()?),
        };
        let books = self.scope(who).await?;
        let books: Vec<Book> = match &params.book_id {
            Some(id) => books.into_iter().filter(|b| &b.id == id).collect(),
            None => books,
        };
        if params.book_id.is_some() && books.is_empty() {
            return Err(AppError::NotFound);
        }
        let by_content: HashMap<String, &Book> = books.iter().map(|b| (b.content_sha256.to_string(), b)).collect();
        let by_id: HashMap<String, &Book> = books.iter().map(|b| (b.id.to_string(), b)).collect();
        let name_book = |kind: Kind, content_key: Option<&str>, book_id: Option<&str>| -> Option<&Book> {
            match kind {
                Kind::BookText => content_key.and_then(|k| by_content.get(k)).copied(),
                _ => book_id.and_then(|id| by_id.get(id)).copied(),
            }
        };
        let query = |limit: usize, cursor: Option<String>| Query {
            text: params.q.clone(),
            kinds: kinds.clone(),
            // Shared text carries no book id; a book filter narrows the allowed content instead.
            book_ids: None,
            allowed_content: by_content.keys().cloned().collect(),
            user_id: who.user_id.to_string(),
            limit,
            cursor,
        };
        if mode == Mode::Keyword {
            let index = index.expect("keyword mode has an index");
            let page = self.keyword_page(&index, query(limit, params.cursor.clone())).await?;
            let mut items = Vec::with_capacity(page.items.len());
            for hit in page.items {
                // The index may briefly hold documents of a book deleted a moment ago.
                let Some(book) = name_book(hit.kind, hit.content_key.as_deref(), hit.book_id.as_deref()) else { continue };
                items.push(search_hit(book, hit.kind, hit.title, hit.location, hit.snippet, hit.score));
            }
            return Ok(SearchResults { items, total: page.total, next_cursor: page.next_cursor, engine: index.engine() });
        }

        // Semantic and hybrid rankings are computed whole (bounded) and paged by offset.
        let fingerprint = ranking_fingerprint(&params);
        let offset = match &params.cursor {
            None => 0,
            Some(c) => parse_offset_cursor(c, &fingerprint).ok_or_else(|| AppError::validation("cursor", "invalid cursor"))?,
        };
        let semantic = self.semantic_ranked(&who.user_id, &params.q, &kinds, &books).await?;
        let engine = index.as_ref().map_or("semantic", |i| i.engine());
        let ranked: Vec<Ranked> = match index {
            None => semantic.into_iter().map(Ranked::from).collect(),
            Some(index) => {
                let keyword = self.keyword_page(&index, query(athena_search::MAX_LIMIT, None)).await?;
                let mut found: HashMap<HitKey, Ranked> = HashMap::new();
                let keyword_keys: Vec<HitKey> = keyword
                    .items
                    .into_iter()
                    .map(|h| {
                        let key = match h.kind {
                            Kind::BookText => {
                                HitKey::Text { content: h.content_key.clone().unwrap_or_default(), location: h.location.clone() }
                            }
                            _ => HitKey::Doc(h.id.clone()),
                        };
                        found.insert(
                            key.clone(),
                            Ranked {
                                kind: h.kind,
                                content_key: h.content_key,
                                book_id: h.book_id,
                                title: h.title,
                                location: h.location,
                                snippet: h.snippet,
                                score: h.score,
                            },
                        );
                        key
                    })
                    .collect();
                let semantic_keys: Vec<HitKey> = semantic
                    .into_iter()
                    .map(|h| {
                        let key = h.key.clone();
                        // A place found both ways keeps the keyword snippet, whose terms are marked.
                        found.entry(key.clone()).or_insert_with(|| Ranked::from(h));
                        key
                    })
                    .collect();
                athena_search::semantic::fuse_rrf(&[keyword_keys, semantic_keys])
                    .into_iter()
                    .filter_map(|(key, score)| found.remove(&key).map(|r| Ranked { score, ..r }))
                    .collect()
            }
        };
        let mut named = Vec::with_capacity(ranked.len());
        for r in ranked {
            let Some(book) = name_book(r.kind, r.content_key.as_deref(), r.book_id.as_deref()) else { continue };
            named.push(search_hit(book, r.kind, r.title, r.location, r.snippet, r.score));
        }
        let total = named.len() as u64;
        let items: Vec<SearchHit> = named.into_iter().skip(offset).take(limit).collect();
        let next = offset + items.len();
        let next_cursor = (next < total as usize).then(|| offset_cursor(next, &fingerprint));
        Ok(SearchResults { items, total, next_cursor, engine })
    }

    async fn keyword_page(&self, index: &Arc<dyn SearchIndex>, query: Query) -> AppResult<athena_search::Page<athena_search::Hit>> {
        let index = index.clone();
        tokio::task::spawn_blocking(move || index.search(&query)).await.map_err(AppError::internal)?.map_err(|e| {
            if e.is_user_error() {
                AppError::validation(if matches!(e, athena_search::SearchError::InvalidCursor) { "cursor" } else { "q" }, e.to_string())
            } else {
                AppError::Unavailable(Box::new(e))
            }
        })
    }

    /// Brings the user's changed notes and highlights into the search index (or out of it when
    /// deleted), and queues their embedding for semantic search. The index is derived data: a
    /// failure is logged, never fails the upload.
    pub(crate) async fn index_annotations(&self, who: &Principal, changed: Vec<(athena_store::SyncTable, String)>) {
        if changed.is_empty() {
            return;
        }
        if self.semantic.is_some() {
            let rows: Vec<(String, String)> = changed.iter().map(|(t, id)| (t.name().to_string(), id.clone())).collect();
            let job = crate::pipeline::embed_annotations_job(&who.user_id, &rows, self.config.worker.max_attempts, self.clock.now());
            if let Err(e) = self.store.enqueue_job(job).await {
                tracing::warn!(error = %e, "could not queue the embedding of notes and highlights");
            }
        }
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (table, id) in changed {
            let row = match self.store.client_row(&who.user_id, table, &id).await {
                Ok(row) => row,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read an annotation to index");
                    continue;
                }
            };
            match crate::semantic::annotation_doc(&who.user_id, table, &id, row) {
                Some(doc) => upserts.push(doc),
                None => deletes.push(crate::semantic::annotation_doc_id(table, &id)),
            }
        }
        // A deleted note leaves semantic results at once, not when the worker gets to it.
        for id in &deletes {
            if let Err(e) = self.store.delete_annotation_vector(&who.user_id, id).await {
                tracing::warn!(error = %e, "could not remove a deleted annotation's vector");
            }
        }
        let Some(index) = self.search.clone() else { return };
        let result = tokio::task::spawn_blocking(move || {
            for id in &deletes {
                index.delete(id)?;
            }
            if !upserts.is_empty() {
                index.upsert(upserts)?;
            }
            index.commit()
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::warn!(user = %who.user_id, "could not update notes and highlights in the search index");
        }
    }

    /// Removes a deleted book's documents (and its content's text when no book has it any more).
    pub(crate) async fn unindex_book(&self, book: &Book, content_gone: bool) {
        if content_gone {
            if let Err(e) = self.store.delete_content_vectors(&book.content_sha256).await {
                tracing::warn!(book = %book.id, error = %e, "could not remove a deleted book's vectors");
            }
        }
        let Some(index) = self.search.clone() else { return };
        let (id, sha) = (book.id.to_string(), book.content_sha256.to_string());
        let result = tokio::task::spawn_blocking(move || {
            index.delete_by_book(&id)?;
            index.delete(&format!("meta:{id}"))?;
            if content_gone {
                index.delete_by_content(&sha)?;
            }
            index.commit()
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::warn!(book = %book.id, "could not remove a deleted book from the search index");
        }
    }
}

fn search_hit(book: &Book, kind: Kind, title: Option<String>, location: Option<String>, snippet: String, score: f32) -> SearchHit {
    SearchHit {
        kind: match kind {
            Kind::BookText => "content",
            Kind::BookMeta => "book",
            Kind::Note => "note",
            Kind::Highlight => "highlight",
        },
        book_id: book.id.clone(),
        book_title: book.title.clone(),
        title: title.filter(|_| kind == Kind::BookText),
        location,
        snippet,
        score,
    }
}

/// Ties an offset cursor to the request it pages, so a cursor of another query is refused.
fn ranking_fingerprint(params: &SearchParams) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [params.q.as_str(), params.kind.as_deref().unwrap_or(""), params.mode.as_deref().unwrap_or("")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(params.book_id.as_ref().map(|b| b.to_string()).unwrap_or_default().as_bytes());
    hex::encode(&h.finalize()[..6])
}

fn offset_cursor(offset: usize, fingerprint: &str) -> String {
    format!("o{offset}.{fingerprint}")
}

fn parse_offset_cursor(cursor: &str, fingerprint: &str) -> Option<usize> {
    let (offset, fp) = cursor.strip_prefix('o')?.split_once('.')?;
    let offset: usize = offset.parse().ok()?;
    (fp == fingerprint && offset <= crate::semantic::MAX_SEMANTIC_RESULTS + athena_search::MAX_LIMIT).then_some(offset)
}

/// A hit of either ranking, before it is named after the user's book.
struct Ranked {
    kind: Kind,
    content_key: Option<String>,
    book_id: Option<String>,
    title: Option<String>,
    location: Option<String>,
    snippet: String,
    score: f32,
}

impl From<crate::semantic::SemanticHit> for Ranked {
    fn from(h: crate::semantic::SemanticHit) -> Self {
        Ranked {
            kind: h.kind,
            content_key: h.content_key,
            book_id: h.book_id,
            title: h.title,
            location: h.location,
            snippet: h.snippet,
            score: h.score,
        }
    }
}
