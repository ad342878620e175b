//! Prometheus metrics: request counts and latency histograms per matched route, plus gauges the
//! server refreshes (database pool). One recorder per process, shared by every app built in it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests building several apps): then this
            // handle renders nothing new, which is acceptable for tests only.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("athena_http_requests_total", &labels).increment(1);
    metrics::histogram!("athena_http_request_duration_seconds", &labels[..2]).record(start.elapsed().as_secs_f64());
    response
}

/// Sets the queue gauges from the database. They are read at scrape time, so they are true for the
/// whole worker fleet whichever process is scraped (the seed's `redis-cli llen celery`).
pub async fn refresh_queue_gauges(store: &dyn athena_store::Store) {
    let Ok(stats) = store.queue_stats(chrono::Utc::now()).await else { return };
    for q in stats {
        let Some(queue) = q.queue else { continue };
        let queue = queue.as_str();
        metrics::gauge!("athena_queue_depth", "queue" => queue).set(q.ready as f64);
        metrics::gauge!("athena_queue_scheduled", "queue" => queue).set(q.scheduled as f64);
        metrics::gauge!("athena_queue_running", "queue" => queue).set(q.running as f64);
        metrics::gauge!("athena_queue_dead", "queue" => queue).set(q.dead as f64);
    }
}
