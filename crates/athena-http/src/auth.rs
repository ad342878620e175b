//! The `Auth` extractor: a bearer token (or `?token=` for media URLs used by `<img>` and readers).

use athena_app::Principal;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::ApiState;

pub struct Auth(pub Principal);

fn bearer(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        for scheme in ["Bearer ", "bearer ", "Token ", "token "] {
            if let Some(t) = v.strip_prefix(scheme) {
                return Some(t.trim().to_string());
            }
        }
    }
    parts.uri.query().and_then(|q| url_query_param(q, "token"))
}

fn url_query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

impl FromRequestParts<ApiState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| ApiError::new("unauthorized", "authentication required"))?;
        if token.len() > 4096 {
            return Err(ApiError::new("invalid_token", "the access token is invalid or expired"));
        }
        let principal = state.app.authenticate(&token).await?;
        Ok(Auth(principal))
    }
}
