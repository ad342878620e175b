//! `Idempotency-Key` on creating `POST`s: the same key within 24 h returns the first result.

use athena_app::Principal;
use athena_store::IdempotentResponse;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use http_body_util::BodyExt;

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

const MAX_KEY_LEN: usize = 255;
const MAX_STORED_BODY: usize = 256 * 1024;

pub fn key_of(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let v = v.to_str().map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))?.trim();
    if v.is_empty() || v.len() > MAX_KEY_LEN {
        return Err(ApiError::validation("Idempotency-Key", "must be 1 to 255 characters"));
    }
    Ok(Some(v.to_string()))
}

/// Runs `handler` once per (user, key): a replay returns the stored status and body.
pub async fn run<F>(state: &ApiState, who: &Principal, headers: &HeaderMap, request: &str, handler: F) -> ApiResult<Response>
where
    F: std::future::Future<Output = ApiResult<Response>>,
{
    let Some(key) = key_of(headers)? else { return handler.await };
    let app = &state.app;
    let now = app.clock.now();
    if let Some(previous) =
        app.store.idempotent_response(&who.user_id, &key, now - Duration::hours(24)).await.map_err(athena_app::AppError::from)?
    {
        if previous.request != request {
            return Err(ApiError::validation("Idempotency-Key", "was already used for another request"));
        }
        let status = StatusCode::from_u16(previous.status).unwrap_or(StatusCode::OK);
        let mut response = (status, previous.body).into_response();
        response.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
        return Ok(response);
    }
    let response = handler.await?;
    if !response.status().is_success() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(|e| athena_app::AppError::internal(std::io::Error::other(e.to_string())))?.to_bytes();
    if bytes.len() <= MAX_STORED_BODY {
        let record = IdempotentResponse {
            user_id: who.user_id.clone(),
            key,
            request: request.to_string(),
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            created_at: now,
        };
        app.store.put_idempotent_response(record).await.map_err(athena_app::AppError::from)?;
    }
    Ok(Response::from_parts(parts, axum::body::Body::from(bytes)))
}
