//! `GET /search` (`CONTRACTS.md`): the user's books and book text, with snippets and reader locations.

use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{ok, path_id};
use crate::state::ApiState;

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// The text to find; `"…"` for an exact phrase. Chinese and English, simplified or traditional.
    q: String,
    /// `book` (titles, authors), `content` (book text), `note` or `highlight`; all when absent.
    kind: Option<String>,
    /// Only this book.
    book_id: Option<String>,
    /// 1–100, default 20.
    limit: Option<u32>,
    /// Opaque cursor from `next_cursor`.
    cursor: Option<String>,
    /// `keyword` (default), `semantic` (by meaning, with the local embedding model; 503 when it is
    /// off) or `hybrid` (both, fused by reciprocal rank).
    mode: Option<String>,
}

/// Search over the user's books, notes and highlights; the `X-Search-Engine` header names the engine.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchQuery), security(("bearer" = [])),
    responses((status = 200, description = "hits with snippet, score and location"), (status = 422, description = "validation_error"),
    (status = 404, description = "not_found (book_id)")))]
pub async fn search(State(s): State<ApiState>, Auth(who): Auth, Query(p): Query<SearchQuery>) -> ApiResult<Response> {
    let book_id = p.book_id.as_deref().map(path_id).transpose()?;
    let params = athena_app::SearchParams { q: p.q, kind: p.kind, book_id, limit: p.limit, cursor: p.cursor, mode: p.mode };
    let results = s.app.search(&who, params).await?;
    let engine = results.engine;
    let mut response = ok(results);
    response.headers_mut().insert("x-search-engine", HeaderValue::from_static(engine));
    Ok(response)
}
