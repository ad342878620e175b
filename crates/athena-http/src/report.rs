//! Internal errors on their way to an outside collector (Sentry, wired by `athena-server` when `SENTRY_DSN` is set).
//!
//! This module only says *what* failed, in terms that carry no user content: the stable code, the internal error's
//! message (never sent to clients), the method, the route template (`/api/v1/books/{id}`, not the concrete path or
//! query) and the request id. Where it goes is the installed [`ErrorReporter`]'s business; with none installed
//! nothing happens.

use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// One 5xx response, as reported.
#[derive(Debug, Clone)]
pub struct InternalErrorReport {
    pub status: u16,
    /// The stable API code (`internal_error`, `service_unavailable`, …).
    pub code: &'static str,
    /// The internal error's cause chain, as logged; `None` when the response was built without one.
    pub detail: Option<String>,
    pub method: String,
    pub route: String,
    pub request_id: Option<String>,
}

pub trait ErrorReporter: Send + Sync + 'static {
    /// Called on the request's task: must not block (queue and send in the background).
    fn report(&self, report: InternalErrorReport);
}

/// Process-wide, like the panic hook it goes with: one reporter per process, installed once at start.
static REPORTER: OnceLock<Box<dyn ErrorReporter>> = OnceLock::new();

/// Installs the reporter; `false` when one was installed already (the first stays).
pub fn set_error_reporter(reporter: Box<dyn ErrorReporter>) -> bool {
    REPORTER.set(reporter).is_ok()
}

/// What an [`crate::ApiError`] leaves on its response for [`track`]: its code and internal cause.
#[derive(Debug, Clone)]
pub(crate) struct InternalCause {
    pub code: &'static str,
    pub detail: Option<String>,
}

/// Route layer: reports every 5xx response of a matched route to the installed reporter.
pub async fn track(req: Request, next: Next) -> Response {
    let Some(reporter) = REPORTER.get() else {
        return next.run(req).await;
    };
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".to_string());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let response = next.run(req).await;
    if response.status().is_server_error() {
        let cause = response.extensions().get::<InternalCause>().cloned();
        reporter.report(InternalErrorReport {
            status: response.status().as_u16(),
            code: cause.as_ref().map_or("internal_error", |c| c.code),
            detail: cause.and_then(|c| c.detail),
            method,
            route,
            request_id,
        });
    }
    response
}
