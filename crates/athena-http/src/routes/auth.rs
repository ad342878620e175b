use athena_domain::{Email, SessionId};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ok, ApiJson};
use crate::state::ApiState;
use crate::views::{SessionView, UserView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCode {
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCode {
    email: String,
    code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    session_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokensView {
    access_token: String,
    refresh_token: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    token_type: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct SessionRefView {
    id: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginView {
    user: UserView,
    tokens: TokensView,
    session: SessionRefView,
}

#[derive(Serialize, ToSchema)]
pub struct SendCodeView {
    sent: bool,
    expires_in: i64,
    /// Only in development mode without SMTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    dev_code: Option<String>,
}

fn email(raw: &str) -> ApiResult<Email> {
    raw.parse().map_err(|_| ApiError::validation("email", "must be an email address"))
}

fn login_view(r: athena_app::LoginResult) -> LoginView {
    LoginView {
        user: r.user.into(),
        tokens: TokensView {
            access_token: r.tokens.access_token,
            refresh_token: r.tokens.refresh_token,
            expires_in: r.tokens.expires_in,
            token_type: r.tokens.token_type,
        },
        session: SessionRefView { id: r.session.id.to_string() },
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// Send a 6-digit login code to an email address (valid 10 minutes; one per address per minute).
#[utoipa::path(post, path = "/api/v1/auth/email/send-code", tag = "auth", request_body = SendCode,
    responses((status = 200, body = SendCodeView), (status = 422, description = "validation_error"), (status = 429, description = "rate_limited")))]
pub async fn send_code(State(s): State<ApiState>, ApiJson(req): ApiJson<SendCode>) -> ApiResult<Response> {
    let r = s.app.send_login_code(&email(&req.email)?).await?;
    Ok(ok(SendCodeView { sent: r.sent, expires_in: r.expires_in, dev_code: r.dev_code }))
}

/// Exchange an email code for tokens; creates the user on first login.
#[utoipa::path(post, path = "/api/v1/auth/email/verify-code", tag = "auth", request_body = VerifyCode,
    responses((status = 200, body = LoginView), (status = 401, description = "invalid_code"), (status = 429, description = "rate_limited")))]
pub async fn verify_code(State(s): State<ApiState>, headers: HeaderMap, ApiJson(req): ApiJson<VerifyCode>) -> ApiResult<Response> {
    if req.code.len() > 32 {
        return Err(ApiError::validation("code", "must be 6 digits"));
    }
    let r = s.app.verify_login_code(&email(&req.email)?, &req.code, &user_agent(&headers)).await?;
    Ok(ok(login_view(r)))
}

/// Rotate a refresh token: returns a new pair; the old refresh token stops working.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Refresh,
    responses((status = 200, body = LoginView), (status = 401, description = "invalid_refresh")))]
pub async fn refresh(State(s): State<ApiState>, ApiJson(req): ApiJson<Refresh>) -> ApiResult<Response> {
    if req.refresh_token.len() > 512 {
        return Err(ApiError::new("invalid_refresh", "the refresh token is invalid, expired or already used"));
    }
    Ok(ok(login_view(s.app.refresh(&req.refresh_token).await?)))
}

/// End the current session, or another of the caller's sessions.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = Logout, description = "optional"),
    security(("bearer" = [])), responses((status = 200), (status = 404, description = "not_found")))]
pub async fn logout(State(s): State<ApiState>, Auth(who): Auth, body: axum::body::Bytes) -> ApiResult<Response> {
    // The body is optional: an empty one logs out the current session.
    let req: Logout = if body.iter().all(u8::is_ascii_whitespace) {
        Logout::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::validation("body", e.to_string().split(" at line ").next().unwrap_or("is invalid").to_string()))?
    };
    let target = req.session_id.as_deref().map(crate::extract::path_id::<SessionId>).transpose()?;
    s.app.logout(&who, target.as_ref()).await?;
    Ok(ok(serde_json::json!({ "logged_out": true })))
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>)))]
pub async fn sessions(State(s): State<ApiState>, Auth(who): Auth) -> ApiResult<Response> {
    let list = s.app.sessions(&who).await?;
    Ok(ok(list.into_iter().map(|x| SessionView::new(x, &who.session_id)).collect::<Vec<_>>()))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = UserView)))]
pub async fn me(State(s): State<ApiState>, Auth(who): Auth) -> ApiResult<Response> {
    Ok(ok(UserView::from(s.app.me(&who).await?)))
}
