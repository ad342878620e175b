use athena_app::{UploadComplete, UploadInit, UploadInitResult};
use athena_domain::{BookId, ContentHash, ObjectKey};
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ok, ok_versioned, ApiJson};
use crate::idempotency;
use crate::state::ApiState;
use crate::views::BookView;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadInitRequest {
    filename: Option<String>,
    content_type: Option<String>,
    /// A hint: enables "already in your library" and instant upload. The server hashes the bytes itself.
    content_sha256: Option<String>,
    size: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ChallengeBody {
    id: String,
    /// `[start, end)` byte ranges of the file; `proof` = hex SHA-256 of these bytes concatenated in order.
    ranges: Vec<(u64, u64)>,
    expires_at: DateTime<Utc>,
}

/// One of: `{dedup_hit: "own", existing_book_id}`, `{dedup_hit: "global", canonical_book_id, challenge}`,
/// `{dedup_hit: null, upload_url, key, expires_at, method, headers}`.
#[derive(Serialize, ToSchema)]
pub struct UploadInitResponse {
    dedup_hit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    existing_book_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    canonical_book_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<ChallengeBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

fn sha_hint(raw: Option<&str>) -> ApiResult<Option<ContentHash>> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| s.parse().map_err(|_| ApiError::validation("content_sha256", "must be 64 hex digits")))
        .transpose()
}

/// Step 1 of the two-step upload: dedup check, or a signed PUT URL.
#[utoipa::path(post, path = "/api/v1/books/upload_init", tag = "uploads", request_body = UploadInitRequest, security(("bearer" = [])),
    responses((status = 200, body = UploadInitResponse), (status = 400, description = "missing_filename"), (status = 413, description = "payload_too_large"),
    (status = 403, description = "upload_forbidden_quota_exceeded")))]
pub async fn upload_init(State(s): State<ApiState>, Auth(who): Auth, ApiJson(req): ApiJson<UploadInitRequest>) -> ApiResult<Response> {
    let init = UploadInit {
        filename: req.filename.unwrap_or_default(),
        content_type: req.content_type,
        content_sha256: sha_hint(req.content_sha256.as_deref())?,
        size: req.size,
    };
    let empty = UploadInitResponse {
        dedup_hit: None,
        existing_book_id: None,
        canonical_book_id: None,
        challenge: None,
        upload_url: None,
        method: None,
        headers: None,
        key: None,
        expires_at: None,
    };
    let body = match s.app.upload_init(&who, init).await? {
        UploadInitResult::Own { existing_book_id } => {
            UploadInitResponse { dedup_hit: Some("own"), existing_book_id: Some(existing_book_id.to_string()), ..empty }
        }
        UploadInitResult::Global { canonical_book_id, challenge } => UploadInitResponse {
            dedup_hit: Some("global"),
            canonical_book_id: Some(canonical_book_id.to_string()),
            challenge: Some(ChallengeBody { id: challenge.id, ranges: challenge.ranges, expires_at: challenge.expires_at }),
            ..empty
        },
        UploadInitResult::Upload { put, key } => UploadInitResponse {
            upload_url: Some(put.url),
            method: Some(put.method.to_string()),
            headers: Some(put.headers.into_iter().collect()),
            key: Some(key.to_string()),
            expires_at: Some(put.expires_at),
            ..empty
        },
    };
    Ok(ok(body))
}

#[derive(Deserialize)]
pub struct SignedParams {
    expires: i64,
    signature: String,
}

/// The target of signed upload URLs in embedded mode (S3 deployments PUT to the store directly).
#[utoipa::path(put, path = "/api/v1/books/upload/{key}", tag = "uploads",
    params(("key" = String, Path), ("expires" = i64, Query), ("signature" = String, Query)),
    responses((status = 200), (status = 401, description = "bad_signature"), (status = 413, description = "payload_too_large")))]
pub async fn signed_put(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    Query(p): Query<SignedParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let Some(signer) = s.signer.as_ref() else {
        drain(body).await;
        return Err(ApiError::not_found());
    };
    let verified = key.parse::<ObjectKey>().ok().filter(|k| signer.verify(k, p.expires, &p.signature, s.app.clock.now()).is_ok());
    let Some(key) = verified else {
        drain(body).await;
        return Err(ApiError::new("bad_signature", "the signature is invalid or expired"));
    };
    let max = s.app.config.limits.max_upload_bytes;
    if content_length(&headers).is_some_and(|n| n > max) {
        return Err(ApiError::from(athena_app::AppError::PayloadTooLarge { limit: max }));
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let size = s.app.receive_signed_put(&key, stream).await?;
    Ok(ok(serde_json::json!({ "key": key.to_string(), "size": size })))
}

/// Reads and discards up to 8 MiB of a body we refuse, so the client gets to read our answer
/// instead of seeing the connection drop mid-upload. Larger bodies are cut off.
async fn drain(body: Body) {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, 8 << 20);
    let _ = limited.collect().await;
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadCompleteRequest {
    key: Option<String>,
    title: Option<String>,
    author: Option<String>,
    language: Option<String>,
    /// A hint only; the sniffed format wins.
    original_format: Option<String>,
    /// A hint only; the stored size is what counts.
    size: Option<u64>,
    /// A hint only; the server hashes the stored bytes.
    content_sha256: Option<String>,
}

/// Step 2: the server hashes and inspects the uploaded bytes and creates the book (or returns the one
/// you already have).
#[utoipa::path(post, path = "/api/v1/books/upload_complete", tag = "uploads", request_body = UploadCompleteRequest,
    params(("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 201, body = BookView), (status = 200, body = BookView, description = "already in your library"),
    (status = 400, description = "missing_key"), (status = 413, description = "payload_too_large"), (status = 415, description = "unsupported_format")))]
pub async fn upload_complete(
    State(s): State<ApiState>,
    Auth(who): Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UploadCompleteRequest>,
) -> ApiResult<Response> {
    let _hints_only = (&req.original_format, req.size, &req.content_sha256);
    let state = s.clone();
    let caller = who.clone();
    idempotency::run(&s, &caller, &headers, "POST /books/upload_complete", async move {
        let complete = UploadComplete { key: req.key.unwrap_or_default(), title: req.title, author: req.author, language: req.language };
        let book = state.app.upload_complete(&who, complete).await?;
        Ok(created_or_existing(book))
    })
    .await
}

/// 201 for a new book, 200 when the caller already had it.
fn created_or_existing(up: athena_app::Uploaded) -> Response {
    let version = up.book.version;
    ok_versioned(if up.created { StatusCode::CREATED } else { StatusCode::OK }, BookView::from(up.book), version)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupReferenceRequest {
    content_sha256: String,
    canonical_book_id: String,
    /// Hex SHA-256 of the challenge's byte ranges.
    proof: String,
    title: Option<String>,
    author: Option<String>,
}

/// Instant upload: create your book from content already stored, proving you hold the file.
#[utoipa::path(post, path = "/api/v1/books/dedup_reference", tag = "uploads", request_body = DedupReferenceRequest,
    params(("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 201, body = BookView), (status = 403, description = "forbidden: proof failed, upload normally")))]
pub async fn dedup_reference(
    State(s): State<ApiState>,
    Auth(who): Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DedupReferenceRequest>,
) -> ApiResult<Response> {
    let sha: ContentHash = req.content_sha256.parse().map_err(|_| ApiError::validation("content_sha256", "must be 64 hex digits"))?;
    let canonical: BookId = req.canonical_book_id.parse().map_err(|_| ApiError::validation("canonical_book_id", "must be a book id"))?;
    if req.proof.len() > 128 {
        return Err(ApiError::validation("proof", "must be 64 hex digits"));
    }
    let state = s.clone();
    let caller = who.clone();
    idempotency::run(&s, &caller, &headers, "POST /books/dedup_reference", async move {
        let book = state.app.dedup_reference(&who, &sha, &canonical, &req.proof, req.title, req.author).await?;
        Ok(created_or_existing(book))
    })
    .await
}

/// One-step upload: `multipart/form-data` with the file in part `file` (optional parts `title`,
/// `author` before it). Streamed to disk; a duplicate returns your existing book.
#[utoipa::path(post, path = "/api/v1/books", tag = "uploads", params(("Idempotency-Key" = Option<String>, Header)),
    request_body(content_type = "multipart/form-data", description = "parts: file (required), title, author"), security(("bearer" = [])),
    responses((status = 201, body = BookView), (status = 200, body = BookView, description = "already in your library"),
    (status = 413, description = "payload_too_large"), (status = 415, description = "unsupported_format"), (status = 403, description = "upload_forbidden_quota_exceeded")))]
pub async fn upload_multipart(State(s): State<ApiState>, Auth(who): Auth, headers: HeaderMap, multipart: Multipart) -> ApiResult<Response> {
    let max = s.app.config.limits.max_upload_bytes;
    // Refuse at once what cannot fit, without reading the body (multipart adds a little framing).
    if content_length(&headers).is_some_and(|n| n > max + 64 * 1024) {
        return Err(ApiError::from(athena_app::AppError::PayloadTooLarge { limit: max }));
    }
    let state = s.clone();
    let caller = who.clone();
    idempotency::run(&s, &caller, &headers, "POST /books", async move { receive_multipart(&state, &who, multipart).await }).await
}

async fn receive_multipart(s: &ApiState, who: &athena_app::Principal, mut multipart: Multipart) -> ApiResult<Response> {
    let bad = |m: &str| ApiError::validation("file", m.to_string());
    let mut title = None;
    let mut author = None;
    let mut book = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(&e.to_string()))? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" if book.is_none() => {
                let filename = field.file_name().unwrap_or("").to_string();
                let stream = field.map_err(|e| std::io::Error::other(e.to_string()));
                let stream = Box::pin(stream);
                book = Some(s.app.upload_stream(who, &filename, title.take(), author.take(), stream).await?);
            }
            "title" | "author" => {
                let text = field.text().await.map_err(|e| multipart_error(&e.to_string()))?;
                if text.chars().count() > 500 {
                    return Err(ApiError::validation(&name, "must be at most 500 characters"));
                }
                match (&book, name.as_str()) {
                    (None, "title") => title = Some(text),
                    (None, _) => author = Some(text),
                    // Parts after the file edit the created book.
                    (Some(up), field_name) => {
                        let b: &athena_store::Book = &up.book;
                        let edit = athena_app::MetadataEdit {
                            title: (field_name == "title").then(|| text.clone()),
                            author: (field_name == "author").then(|| Some(text.clone())),
                            ..Default::default()
                        };
                        let edited = s.app.edit_metadata(who, &b.id, b.version, edit).await?;
                        book = Some(athena_app::Uploaded { book: edited, created: up.created });
                    }
                }
            }
            _ => {
                // Unknown parts are drained, bounded by the body limit.
                let _ = field.bytes().await;
            }
        }
    }
    let book = book.ok_or_else(|| bad("the multipart body has no `file` part"))?;
    Ok(created_or_existing(book))
}

fn multipart_error(message: &str) -> ApiError {
    if message.contains("limit") || message.contains("too large") {
        ApiError::new("payload_too_large", "the upload is larger than the limit")
    } else {
        ApiError::validation("body", format!("malformed multipart body: {message}"))
    }
}
