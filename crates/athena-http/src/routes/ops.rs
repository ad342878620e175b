use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::health::{report, HealthReport};
use crate::state::ApiState;

/// Overall and per-component health; 503 when a component is down.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "healthy or degraded"), (status = 503, description = "unhealthy")))]
pub async fn health(State(s): State<ApiState>) -> Response {
    let r: HealthReport = report(&s.health).await;
    let status = if r.status == "unhealthy" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, axum::Json(r)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(s): State<ApiState>) -> Response {
    let pool = s.app.store.pool_stats();
    metrics::gauge!("athena_db_pool_connections", "state" => "total").set(f64::from(pool.size));
    metrics::gauge!("athena_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("athena_db_pool_connections", "state" => "max").set(f64::from(pool.max));
    crate::metrics::refresh_queue_gauges(&*s.app.store).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}
