//! HTTP endpoints of the sync service: `POST /sync/stream`, `GET /write-checkpoint2.json`,
//! `GET /health`, `/probes/liveness`, `/probes/readiness`. The same router is served on the sync port
//! and mounted under `/powersync` on the API port.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::gzip::GzipStream;
use crate::protocol::{StreamRequest, WireFormat, MAX_REQUEST_BUCKETS, MAX_REQUEST_BYTES};
use crate::service::SyncService;
use crate::stream::{self, StreamContext, StreamEnd};

/// Lines buffered per stream before the producer waits for the client to read: one, because a
/// data line may be several MiB; the producer builds the next line while this one is written.
const STREAM_BUFFER_LINES: usize = 1;

#[derive(Clone)]
struct SyncState {
    service: SyncService,
    stop: watch::Receiver<bool>,
}

/// The sync router. `stop` ends open streams at shutdown (they would otherwise keep the server up).
pub fn router(service: SyncService, stop: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/sync/stream", post(sync_stream))
        .route("/write-checkpoint2.json", get(write_checkpoint))
        .route("/write-checkpoint.json", get(write_checkpoint))
        .route("/health", get(health))
        .route("/probes/liveness", get(liveness))
        .route("/probes/readiness", get(health))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(SyncState { service, stop })
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    // The PowerSync service's error shape, with Athena's stable code.
    (status, axum::Json(serde_json::json!({ "error": { "status": status.as_u16(), "code": code, "description": message } })))
        .into_response()
}

fn token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    ["Token ", "token ", "Bearer ", "bearer "]
        .iter()
        .find_map(|p| value.strip_prefix(p))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4096)
}

async fn authenticate(state: &SyncState, headers: &HeaderMap) -> Result<(athena_app::Principal, chrono::DateTime<chrono::Utc>), Response> {
    let Some(token) = token(headers) else {
        return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "authorization required"));
    };
    state.service.inner.app.authenticate_until(token).await.map_err(|e| match e {
        athena_app::AppError::Unavailable(_) | athena_app::AppError::Internal(_) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "internal_error", "try again later")
        }
        _ => error(StatusCode::UNAUTHORIZED, "invalid_token", "the token is invalid or expired"),
    })
}

struct ConnectionGauge;

impl ConnectionGauge {
    fn open() -> Self {
        metrics::gauge!("powersync_active_connections").increment(1.0);
        Self
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!("powersync_active_connections").decrement(1.0);
    }
}

async fn sync_stream(State(state): State<SyncState>, headers: HeaderMap, body: Bytes) -> Response {
    // The body is a slice of hyper's read buffer. Copied and released before the first await, the
    // buffer is unique again when hyper next reads the idle connection and can be reused in place;
    // otherwise hyper allocates a new 16 KiB buffer that stays for the stream's whole life.
    let body: Vec<u8> = {
        let shared = body;
        shared.to_vec()
    };
    let (principal, expires_at) = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let request: StreamRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StreamRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => return error(StatusCode::BAD_REQUEST, "validation_error", "the request body is not a sync request"),
        }
    };
    if request.buckets.len() > MAX_REQUEST_BUCKETS || request.buckets.iter().any(|b| b.name.len() > 1024) {
        return error(StatusCode::BAD_REQUEST, "validation_error", "too many or too long bucket names");
    }
    let client_id = request.client_id.clone().filter(|c| !c.is_empty() && c.len() <= 256);
    let inner = state.service.inner.clone();
    let user_id = principal.user_id.to_string();
    // Client-sent `parameters` never decide bucket membership: only the verified token does.
    let _client_parameters = &request.parameters;
    let buckets =
        inner.rules.buckets_for(&athena_sync_rules::RequestParams { user_id: user_id.clone(), token_parameters: serde_json::Map::new() });
    // Positions only for buckets this user has: a crafted request naming another user's bucket
    // simply has no effect.
    let mut positions = HashMap::new();
    for b in &request.buckets {
        if buckets.iter().any(|mine| mine.name == b.name) {
            if let Some(after) = b.after() {
                positions.insert(b.name.clone(), after);
            }
        }
    }
    let format = WireFormat::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let ctx = StreamContext { user_id, client_id, buckets, positions, expires_at, format };
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER_LINES);
    let stop = state.stop.clone();
    let service = state.service.clone();
    tokio::spawn(async move {
        let _gauge = ConnectionGauge::open();
        // Catch up with what is already committed, so the first checkpoint is as fresh as it can be.
        if let Err(e) = service.sequence_now().await {
            tracing::warn!(error = %e, "sequencing before a stream failed");
        }
        match stream::run(&inner, ctx, tx, stop).await {
            Ok(()) | Err(StreamEnd::ClientGone) => {}
            Err(StreamEnd::Storage(e)) => tracing::warn!(error = %e, "sync stream ended by a storage error"),
        }
    });
    let gzip = crate::gzip::accepted(headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    metrics::counter!("powersync_streams_opened_total", "format" => format.label(), "gzip" => if gzip { "true" } else { "false" })
        .increment(1);
    let body = Body::from_stream(body_stream(rx, gzip.then(GzipStream::default)));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept, accept-encoding"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The response body: the stream's lines as they come, gzipped when the client asked.
fn body_stream(
    mut rx: mpsc::Receiver<Bytes>,
    mut gzip: Option<GzipStream>,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|line| match line {
            Some(line) => Some(Ok(match gzip.as_mut() {
                Some(gz) => gz.line(&line),
                None => line,
            })),
            // The stream ended normally: close the gzip member (a vanished client never gets here).
            None => gzip.take().map(|gz| Ok(gz.finish())),
        })
    })
}

#[derive(Deserialize)]
struct WriteCheckpointQuery {
    client_id: Option<String>,
}

async fn write_checkpoint(State(state): State<SyncState>, headers: HeaderMap, Query(q): Query<WriteCheckpointQuery>) -> Response {
    let (principal, _) = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client_id = q.client_id.unwrap_or_default();
    if client_id.len() > 256 {
        return error(StatusCode::BAD_REQUEST, "validation_error", "client_id is too long");
    }
    match state.service.create_write_checkpoint(principal.user_id.as_str(), &client_id).await {
        Ok(w) => axum::Json(serde_json::json!({ "data": { "write_checkpoint": w.to_string() } })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "write checkpoint failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "internal_error", "try again later")
        }
    }
}

async fn health(State(state): State<SyncState>) -> Response {
    match state.service.inner.store.pending_changes().await {
        Ok(pending) => axum::Json(serde_json::json!({
            "data": { "status": "ok", "last_op_id": state.service.last_op_id().to_string(), "pending_changes": pending }
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "sync health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "data": { "status": "down" } }))).into_response()
        }
    }
}

async fn liveness() -> Response {
    axum::Json(serde_json::json!({ "data": { "status": "ok" } })).into_response()
}
