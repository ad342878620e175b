use athena_app::{MetadataEdit, Principal};
use athena_domain::BookId;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_match, ok, ok_versioned, path_id, ApiJson};
use crate::state::ApiState;
use crate::views::{BookView, ListView};

#[derive(Deserialize, IntoParams)]
pub struct ListParams {
    /// Opaque cursor from `next_cursor`.
    cursor: Option<String>,
    /// 1–200, default 50.
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
pub struct ContentParams {
    /// `true`: the file as uploaded, instead of what readers open (the EPUB made from a
    /// converted format, or the layered PDF after OCR).
    original: Option<bool>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataPatch {
    title: Option<String>,
    /// `null` clears the author.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    author: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    language: Option<Option<String>>,
    /// Marks the metadata as confirmed by the user.
    confirmed: Option<bool>,
}

fn book_response(status: StatusCode, book: athena_store::Book) -> Response {
    let version = book.version;
    ok_versioned(status, BookView::from(book), version)
}

fn list_params(p: &ListParams) -> ApiResult<()> {
    if p.cursor.as_ref().is_some_and(|c| c.len() > 512) {
        return Err(ApiError::validation("cursor", "is not a cursor this server issued"));
    }
    Ok(())
}

async fn list(s: &ApiState, who: &Principal, deleted: bool, p: ListParams) -> ApiResult<Response> {
    list_params(&p)?;
    let page = s.app.list_books(who, deleted, p.cursor.as_deref(), p.limit).await?;
    Ok(ok(ListView { items: page.items.into_iter().map(BookView::from).collect(), next_cursor: page.next_cursor }))
}

/// The caller's books, newest first.
#[utoipa::path(get, path = "/api/v1/books", tag = "books", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = ListView<BookView>)))]
pub async fn list_books(State(s): State<ApiState>, Auth(who): Auth, Query(p): Query<ListParams>) -> ApiResult<Response> {
    list(&s, &who, false, p).await
}

/// Books in the trash (restorable for 30 days).
#[utoipa::path(get, path = "/api/v1/books/deleted", tag = "books", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = ListView<BookView>)))]
pub async fn list_deleted(State(s): State<ApiState>, Auth(who): Auth, Query(p): Query<ListParams>) -> ApiResult<Response> {
    list(&s, &who, true, p).await
}

/// One book, with `ETag: W/"<version>"`.
#[utoipa::path(get, path = "/api/v1/books/{id}", tag = "books", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = BookView), (status = 404, description = "not_found")))]
pub async fn get_book(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(book_response(StatusCode::OK, s.app.book(&who, &id).await?))
}

/// Edit title/author/language and confirm metadata. Needs `If-Match` with the book's ETag.
#[utoipa::path(patch, path = "/api/v1/books/{id}/metadata", tag = "books", params(("id" = String, Path), ("If-Match" = String, Header)),
    request_body = MetadataPatch, security(("bearer" = [])),
    responses((status = 200, body = BookView), (status = 409, description = "version_conflict"), (status = 428, description = "missing_if_match"), (status = 400, description = "invalid_if_match")))]
pub async fn edit_metadata(
    State(s): State<ApiState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<MetadataPatch>,
) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    let version = if_match(&headers)?;
    let edit = MetadataEdit { title: req.title, author: req.author, language: req.language, confirmed: req.confirmed };
    Ok(book_response(StatusCode::OK, s.app.edit_metadata(&who, &id, version, edit).await?))
}

/// Move a book to the trash.
#[utoipa::path(delete, path = "/api/v1/books/{id}", tag = "books", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = BookView), (status = 404, description = "not_found")))]
pub async fn delete_book(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(book_response(StatusCode::OK, s.app.delete_book(&who, &id).await?))
}

/// Take a book out of the trash.
#[utoipa::path(post, path = "/api/v1/books/{id}/restore", tag = "books", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = BookView), (status = 404, description = "not_found")))]
pub async fn restore_book(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(book_response(StatusCode::OK, s.app.restore_book(&who, &id).await?))
}

/// Delete a book for good; its file is freed when no other book references it.
#[utoipa::path(delete, path = "/api/v1/books/{id}/permanent", tag = "books", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200), (status = 404, description = "not_found")))]
pub async fn delete_permanently(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    s.app.delete_book_permanently(&who, &id).await?;
    Ok(ok(serde_json::json!({ "deleted": true, "id": id.to_string() })))
}

enum RangeRequest {
    None,
    From(u64, Option<u64>),
    Suffix(u64),
}

fn parse_range(headers: &HeaderMap) -> Result<RangeRequest, ApiError> {
    let Some(raw) = headers.get(header::RANGE) else { return Ok(RangeRequest::None) };
    let unsatisfiable = || ApiError::new("range_not_satisfiable", "the Range header is malformed or outside the file");
    let text = raw.to_str().map_err(|_| unsatisfiable())?.trim();
    let Some(spec) = text.strip_prefix("bytes=") else { return Err(unsatisfiable()) };
    if spec.contains(',') {
        // Multiple ranges are optional in HTTP; the whole file is a correct answer.
        return Ok(RangeRequest::None);
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Ok(RangeRequest::Suffix(b.parse().map_err(|_| unsatisfiable())?)),
        (false, true) => Ok(RangeRequest::From(a.parse().map_err(|_| unsatisfiable())?, None)),
        (false, false) => {
            let (start, end): (u64, u64) = (a.parse().map_err(|_| unsatisfiable())?, b.parse().map_err(|_| unsatisfiable())?);
            if end < start {
                return Err(unsatisfiable());
            }
            Ok(RangeRequest::From(start, Some(end)))
        }
        (true, true) => Err(unsatisfiable()),
    }
}

fn stream_response(read: athena_app::ContentRead, ranged: bool, etag: &str, cache: &'static str) -> ApiResult<Response> {
    let r = read.read;
    let len = if r.total_size == 0 { 0 } else { r.end - r.start + 1 };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, read.media_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, format!("\"{etag}\""));
    if ranged {
        builder = builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start, r.end, r.total_size));
    }
    builder.body(Body::from_stream(r.body)).map_err(|e| athena_app::AppError::internal(std::io::Error::other(e.to_string())).into())
}

/// The book file, streamed; honours `Range: bytes=…` (206 with `Content-Range`).
#[utoipa::path(get, path = "/api/v1/books/{id}/content", tag = "books", params(("id" = String, Path), ContentParams, ("Range" = Option<String>, Header)),
    security(("bearer" = [])), responses((status = 200, description = "the file"), (status = 206, description = "a byte range"),
    (status = 416, description = "range_not_satisfiable"), (status = 404, description = "not_found")))]
pub async fn content(
    State(s): State<ApiState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(variant): Query<ContentParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    let original = variant.original.unwrap_or(false);
    let range = match parse_range(&headers)? {
        RangeRequest::None => None,
        RangeRequest::From(start, end) => Some((start, end)),
        RangeRequest::Suffix(n) => {
            let size = s.app.book_content_size(&who, &id, original).await?;
            if n == 0 || size == 0 {
                return Err(ApiError::new("range_not_satisfiable", "the Range header is outside the file"));
            }
            Some((size.saturating_sub(n), None))
        }
    };
    let read = s.app.book_content(&who, &id, range, original).await.map_err(|e| match e {
        athena_app::AppError::Validation { ref field, .. } if field == "range" => {
            ApiError::new("range_not_satisfiable", "the Range header is outside the file")
        }
        other => other.into(),
    })?;
    let etag = read.etag.clone();
    let mut response = stream_response(read, range.is_some(), &etag, "private, max-age=3600")?;
    if range.is_none() {
        *response.status_mut() = StatusCode::OK;
    }
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Ok(response)
}

/// The cover image.
#[utoipa::path(get, path = "/api/v1/books/{id}/cover", tag = "books", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "image"), (status = 404, description = "not_found")))]
pub async fn cover(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    let read = s.app.book_cover(&who, &id).await?;
    let etag = read.etag.clone();
    let mut response = stream_response(read, false, &etag, "private, max-age=86400")?;
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Ok(response)
}
