use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

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
    // Queue figures come from the database at scrape time: they are true for the whole worker
    // fleet, whichever process is scraped (the seed's `redis-cli llen celery`).
    if let Ok(stats) = s.app.store.queue_stats(s.app.clock.now()).await {
        for q in stats {
            let Some(queue) = q.queue else { continue };
            let queue = queue.as_str();
            metrics::gauge!("athena_queue_depth", "queue" => queue).set(q.ready as f64);
            metrics::gauge!("athena_queue_scheduled", "queue" => queue).set(q.scheduled as f64);
            metrics::gauge!("athena_queue_running", "queue" => queue).set(q.running as f64);
            metrics::gauge!("athena_queue_dead", "queue" => queue).set(q.dead as f64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

/// Until the web app lands, `/` says what this server is and where to go.
pub async fn placeholder() -> Html<&'static str> {
    Html(include_str!("placeholder.html"))
}
