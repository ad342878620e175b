//! Request parsing at the edge: JSON bodies (422 with the failing field), ids in paths, `If-Match`,
//! and the success envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

/// Largest JSON body any endpoint accepts (uploads are not JSON).
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// A JSON body parsed into `T`; a malformed body or a field of the wrong type is a 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") || ct.contains("+json"))
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new("validation_error", "the body must be JSON (Content-Type: application/json)")
                .with_details(serde_json::json!({ "field": "body" })));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new("payload_too_large", format!("JSON bodies are limited to {MAX_JSON_BYTES} bytes"))
            } else {
                ApiError::validation("body", "could not be read")
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Ok(v) => {
                de.end().map_err(|_| ApiError::validation("body", "has trailing characters after the JSON value"))?;
                Ok(ApiJson(v))
            }
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." || path.is_empty() { "body".to_string() } else { path };
                let inner = e.into_inner();
                let message = if inner.is_syntax() || inner.is_eof() {
                    "is not valid JSON".to_string()
                } else {
                    // serde's message names the expected type or the unknown/missing field, never internals.
                    inner.to_string().split(" at line ").next().unwrap_or("is invalid").to_string()
                };
                Err(ApiError::validation(&field, message))
            }
        }
    }
}

/// `{"status": "success", "data": …}`.
#[derive(Serialize)]
pub struct Envelope<T: Serialize> {
    pub status: &'static str,
    pub data: T,
}

pub fn ok<T: Serialize>(data: T) -> Response {
    axum::Json(Envelope { status: "success", data }).into_response()
}

pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, axum::Json(Envelope { status: "success", data })).into_response()
}

/// Like [`ok`], with `ETag: W/"<version>"` for versioned resources.
pub fn ok_versioned<T: Serialize>(status: StatusCode, data: T, version: i64) -> Response {
    let mut r = (status, axum::Json(Envelope { status: "success", data })).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// Parses an id from a path segment: anything that is not an id of the right shape cannot exist.
pub fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// The version an `If-Match` header names: missing → 428, malformed → 400.
pub fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
    let raw = headers
        .get(header::IF_MATCH)
        .ok_or_else(|| ApiError::new("missing_if_match", "this update needs an If-Match header with the ETag you read"))?;
    let malformed = || ApiError::new("invalid_if_match", "If-Match must be an ETag such as W/\"3\"");
    let text = raw.to_str().map_err(|_| malformed())?.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(malformed)?;
    text.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h).unwrap_err().code, "missing_if_match");
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\""));
        assert_eq!(if_match(&h).unwrap(), 3);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"4\""));
        assert_eq!(if_match(&h).unwrap(), 4);
        for bad in ["3", "W/3", "\"x\"", "*"] {
            h.insert(header::IF_MATCH, HeaderValue::from_static(bad));
            assert_eq!(if_match(&h).unwrap_err().code, "invalid_if_match", "{bad}");
        }
    }
}
