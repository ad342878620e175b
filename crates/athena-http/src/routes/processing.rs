//! Processing status and OCR (`CONTRACTS.md`: `/books/{id}/processing/status`, `/books/{id}/ocr…`).

use athena_domain::BookId;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{ok, path_id};
use crate::state::ApiState;

/// Conversion, cover, text and OCR state of a book, with the jobs behind them and failure reasons.
#[utoipa::path(get, path = "/api/v1/books/{id}/processing/status", tag = "processing", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, description = "status"), (status = 404, description = "not_found")))]
pub async fn status(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(ok(s.app.processing_status(&who, &id).await?))
}

/// Requests OCR of an image PDF: `queued` (with `queue_position`, `estimated_minutes`) or
/// `instant_completed` when the same content was OCR'd before.
#[utoipa::path(post, path = "/api/v1/books/{id}/ocr", tag = "processing", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "queued or instant_completed"), (status = 400, description = "already_digitalized | ocr_max_pages_exceeded"),
    (status = 403, description = "ocr_quota_exceeded"), (status = 409, description = "ocr_in_progress"), (status = 404, description = "not_found")))]
pub async fn request_ocr(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(ok(s.app.request_ocr(&who, &id).await?))
}

/// OCR progress of a book.
#[utoipa::path(get, path = "/api/v1/books/{id}/ocr/status", tag = "processing", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, description = "status"), (status = 404, description = "not_found")))]
pub async fn ocr_status(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(ok(s.app.ocr_status(&who, &id).await?))
}

/// One OCR'd page: its text and line boxes.
#[utoipa::path(get, path = "/api/v1/books/{id}/ocr/page/{n}", tag = "processing", params(("id" = String, Path), ("n" = i64, Path)),
    security(("bearer" = [])), responses((status = 200, description = "page"), (status = 404, description = "not_found")))]
pub async fn ocr_page(State(s): State<ApiState>, Auth(who): Auth, Path((id, n)): Path<(String, String)>) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    let n: i64 = n.parse().map_err(|_| athena_app::AppError::validation("n", "must be a page number"))?;
    Ok(ok(s.app.ocr_page(&who, &id, n).await?))
}

#[derive(Deserialize, IntoParams)]
pub struct OcrSearchParams {
    /// Text to find (1–200 characters).
    q: String,
}

/// Pages of the OCR text containing `q`, with snippets.
#[utoipa::path(get, path = "/api/v1/books/{id}/ocr/search", tag = "processing", params(("id" = String, Path), OcrSearchParams),
    security(("bearer" = [])), responses((status = 200, description = "hits"), (status = 404, description = "not_found")))]
pub async fn ocr_search(
    State(s): State<ApiState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(p): Query<OcrSearchParams>,
) -> ApiResult<Response> {
    let id: BookId = path_id(&id)?;
    Ok(ok(s.app.ocr_search(&who, &id, &p.q).await?))
}
