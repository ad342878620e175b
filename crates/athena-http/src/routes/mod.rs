//! The router: one module per resource, the operations endpoints, and the layers every request
//! passes (request id, trace span, metrics, panic guard, CORS, body limits).

pub(crate) mod auth;
pub(crate) mod books;
pub(crate) mod ops;
pub(crate) mod processing;
pub(crate) mod search;
pub(crate) mod shelves;
pub(crate) mod sync_upload;
pub(crate) mod uploads;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::extract::MAX_JSON_BYTES;
use crate::openapi::ApiDoc;
use crate::state::ApiState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API. `extra` lets other roles mount their routes (the sync service under `/powersync`).
pub fn router(state: ApiState) -> Router {
    let upload_limit = DefaultBodyLimit::disable();
    let api = Router::new()
        .route("/auth/email/send-code", post(auth::send_code))
        .route("/auth/email/verify-code", post(auth::verify_code))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/sessions", get(auth::sessions))
        .route("/auth/me", get(auth::me))
        .route("/books", get(books::list_books).post(uploads::upload_multipart).layer(upload_limit))
        .route("/books/deleted", get(books::list_deleted))
        .route("/books/upload_init", post(uploads::upload_init))
        .route("/books/upload/{*key}", put(uploads::signed_put).layer(upload_limit))
        .route("/books/upload_complete", post(uploads::upload_complete))
        .route("/books/dedup_reference", post(uploads::dedup_reference))
        .route("/books/{id}", get(books::get_book).delete(books::delete_book))
        .route("/books/{id}/metadata", axum::routing::patch(books::edit_metadata))
        .route("/books/{id}/restore", post(books::restore_book))
        .route("/books/{id}/permanent", axum::routing::delete(books::delete_permanently))
        .route("/books/{id}/content", get(books::content))
        .route("/books/{id}/cover", get(books::cover))
        .route("/books/{id}/processing/status", get(processing::status))
        .route("/books/{id}/ocr", post(processing::request_ocr))
        .route("/books/{id}/ocr/status", get(processing::ocr_status))
        .route("/books/{id}/ocr/page/{n}", get(processing::ocr_page))
        .route("/books/{id}/ocr/search", get(processing::ocr_search))
        .route("/search", get(search::search))
        .route("/shelves", post(shelves::create).get(shelves::list))
        .route("/shelves/{id}", get(shelves::get).patch(shelves::patch).delete(shelves::delete))
        .route("/shelves/{id}/items", post(shelves::add_item).get(shelves::items))
        .route("/shelves/{id}/items/{book_id}", axum::routing::delete(shelves::remove_item))
        .route("/sync/upload", post(sync_upload::upload).layer(DefaultBodyLimit::max(sync_upload::MAX_SYNC_UPLOAD_BYTES)))
        .fallback(api_not_found)
        .method_not_allowed_fallback(method_not_allowed);

    let cors = cors_layer(&state.app.config.cors_origins);
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        // The built web app (or the placeholder page at `/`); the API's prefixes still 404 as JSON.
        .fallback(crate::web::fallback)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .route_layer(axum::middleware::from_fn(crate::report::track))
        .with_state(state)
        .layer(cors)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn api_not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new("method_not_allowed", "this method is not allowed here")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic itself is logged by the trace layer's failure hook; the client gets the envelope.
    tracing::error!("handler panicked");
    ApiError::new("internal_error", "internal error").into_response()
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    // Same-origin by default: cross-origin use needs an explicit allow-list (ATHENA_CORS_ORIGINS).
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::RANGE,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::ETAG, header::CONTENT_RANGE, REQUEST_ID])
        .max_age(Duration::from_secs(600))
}
