//! Search over what a user owns: the text of their books (indexed once per content hash, shared
//! safely because a query only ever names the user's own content) and their books' metadata.

use std::collections::HashMap;
use std::sync::Arc;

use athena_domain::BookId;
use athena_search::{Kind, Query, SearchIndex};
use athena_store::{Book, BookQuery};
use serde::Serialize;

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
        let index = self.search_index()?;
        let kinds = match params.kind.as_deref() {
            None | Some("") => vec![Kind::BookText, Kind::BookMeta, Kind::Note, Kind::Highlight],
            Some("content") => vec![Kind::BookText],
            Some("book") => vec![Kind::BookMeta],
            Some("note") => vec![Kind::Note],
            Some("highlight") => vec![Kind::Highlight],
            Some(_) => return Err(AppError::validation("kind", "must be book, content, note or highlight")),
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
        let query = Query {
            text: params.q.clone(),
            kinds,
            // Shared text carries no book id; a book filter narrows the allowed content instead.
            book_ids: None,
            allowed_content: by_content.keys().cloned().collect(),
            user_id: who.user_id.to_string(),
            limit: params.limit.unwrap_or(20).clamp(1, athena_search::MAX_LIMIT as u32) as usize,
            cursor: params.cursor.clone(),
        };
        let page = {
            let index = index.clone();
            tokio::task::spawn_blocking(move || index.search(&query)).await.map_err(AppError::internal)?
        }
        .map_err(|e| {
            if e.is_user_error() {
                AppError::validation(if matches!(e, athena_search::SearchError::InvalidCursor) { "cursor" } else { "q" }, e.to_string())
            } else {
                AppError::Unavailable(Box::new(e))
            }
        })?;
        let mut items = Vec::with_capacity(page.items.len());
        for hit in page.items {
            let book = match hit.kind {
                Kind::BookText => hit.content_key.as_deref().and_then(|k| by_content.get(k)),
                _ => hit.book_id.as_deref().and_then(|id| by_id.get(id)),
            };
            // The index may briefly hold documents of a book deleted a moment ago.
            let Some(book) = book else { continue };
            items.push(SearchHit {
                kind: match hit.kind {
                    Kind::BookText => "content",
                    Kind::BookMeta => "book",
                    Kind::Note => "note",
                    Kind::Highlight => "highlight",
                },
                book_id: book.id.clone(),
                book_title: book.title.clone(),
                title: hit.title.filter(|_| hit.kind == Kind::BookText),
                location: hit.location,
                snippet: hit.snippet,
                score: hit.score,
            });
        }
        Ok(SearchResults { items, total: page.total, next_cursor: page.next_cursor, engine: index.engine() })
    }

    /// Brings the user's changed notes and highlights into the search index (or out of it when
    /// deleted). The index is derived data: a failure is logged, never fails the upload.
    pub(crate) async fn index_annotations(&self, who: &Principal, changed: Vec<(athena_store::SyncTable, String)>) {
        let Some(index) = self.search.clone() else { return };
        if changed.is_empty() {
            return;
        }
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (table, id) in changed {
            let kind = if table == athena_store::SyncTable::Notes { Kind::Note } else { Kind::Highlight };
            let doc_id = format!("{}:{id}", kind.as_str());
            let row = match self.store.client_row(&who.user_id, table, &id).await {
                Ok(row) => row,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read an annotation to index");
                    continue;
                }
            };
            match row.filter(|r| !matches!(r.get("is_deleted"), Some(v) if v.as_i64() == Some(1) || v.as_bool() == Some(true))) {
                Some(row) => {
                    let text = |k: &str| row.get(k).and_then(|v| v.as_str()).map(str::to_string);
                    let location = text("position_cfi")
                        .or_else(|| text("position_start_cfi"))
                        .or_else(|| row.get("page_number").and_then(|p| p.as_i64()).map(|p| format!("page:{p}")));
                    upserts.push(athena_search::Doc {
                        id: doc_id,
                        owner: Some(who.user_id.to_string()),
                        content_key: None,
                        book_id: text("book_id"),
                        kind,
                        location,
                        title: None,
                        text: text("content").or_else(|| text("text")).unwrap_or_default(),
                    });
                }
                None => deletes.push(doc_id),
            }
        }
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
