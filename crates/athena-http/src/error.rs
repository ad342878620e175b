use athena_app::AppError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error on its way to the client: a stable code, a status derived from it, a message and details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
    pub retry_after: Option<u64>,
    /// An internal error's cause chain: logged, handed to the error reporter (`report.rs`), never sent.
    pub(crate) internal: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    code: &'a str,
    message: &'a str,
    details: &'a serde_json::Value,
    /// Older clients read the code from here.
    detail: &'a str,
}

/// The one mapping from stable codes to HTTP statuses.
pub fn status_for(code: &str) -> StatusCode {
    match code {
        "unauthorized" | "invalid_token" | "invalid_code" | "invalid_refresh" | "bad_signature" => StatusCode::UNAUTHORIZED,
        "forbidden" | "quota_exceeded" | "readonly_mode_quota_exceeded" | "upload_forbidden_quota_exceeded" | "ocr_quota_exceeded" => {
            StatusCode::FORBIDDEN
        }
        "not_found" => StatusCode::NOT_FOUND,
        "version_conflict" | "ocr_in_progress" => StatusCode::CONFLICT,
        "missing_if_match" => StatusCode::PRECONDITION_REQUIRED,
        "invalid_if_match" | "ocr_max_pages_exceeded" | "already_digitalized" | "missing_filename" | "missing_key" | "bad_request" => {
            StatusCode::BAD_REQUEST
        }
        "validation_error" => StatusCode::UNPROCESSABLE_ENTITY,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_format" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "range_not_satisfiable" => StatusCode::RANGE_NOT_SATISFIABLE,
        "insufficient_credits" => StatusCode::PAYMENT_REQUIRED,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "service_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: status_for(code), code, message: message.into(), details: serde_json::json!({}), retry_after: None, internal: None }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new("validation_error", format!("{field}: {message}")).with_details(serde_json::json!({ "field": field, "message": message }))
    }

    pub fn not_found() -> Self {
        Self::new("not_found", "not found")
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let code = e.code();
        let retry_after = match &e {
            AppError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let mut internal = None;
        let message = match &e {
            // Internal details are logged once here, never sent.
            AppError::Internal(_) | AppError::Unavailable(_) => {
                let chain = error_chain(&e);
                tracing::error!(error = %chain, code, "request failed");
                internal = Some(chain);
                e.to_string()
            }
            other => other.to_string(),
        };
        let status = match &e {
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => status_for(code),
        };
        Self { status, code, message, details: e.details(), retry_after, internal }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { status: "error", code: self.code, message: &self.message, details: &self.details, detail: self.code };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status.is_server_error() {
            response.extensions_mut().insert(crate::report::InternalCause { code: self.code, detail: self.internal });
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read: the connection cannot be reused.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
