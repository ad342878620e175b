//! `/health`: each component reports itself; the whole is as healthy as its worst required part.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use athena_blob::BlobStore;
use athena_store::Store;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ComponentHealth {
    /// `ok`, `degraded` (works, with a warning), `down`, or `warn` (needs an operator's attention,
    /// e.g. an old backup, but leaves the overall status alone).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub latency_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    pub status: &'static str,
    pub components: std::collections::BTreeMap<&'static str, ComponentHealth>,
}

/// One component of `/health`. Roles added later (sync, worker, search) register their own.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    fn name(&self) -> &'static str;
    async fn check(&self) -> ComponentHealth;
}

pub struct DatabaseHealth(pub Arc<dyn Store>);
pub struct StorageHealth(pub Arc<dyn BlobStore>);

fn timed(start: Instant, result: Result<Option<String>, String>) -> ComponentHealth {
    let latency_ms = (start.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    match result {
        Ok(detail) => ComponentHealth { status: "ok", detail, latency_ms },
        Err(detail) => ComponentHealth { status: "down", detail: Some(detail), latency_ms },
    }
}

#[async_trait]
impl HealthCheck for DatabaseHealth {
    fn name(&self) -> &'static str {
        "database"
    }
    async fn check(&self) -> ComponentHealth {
        let start = Instant::now();
        let backend = self.0.backend();
        let result = tokio::time::timeout(std::time::Duration::from_secs(3), self.0.ping()).await;
        timed(
            start,
            match result {
                Ok(Ok(())) => Ok(Some(backend.to_string())),
                Ok(Err(e)) => Err(format!("{backend}: {e}")),
                Err(_) => Err(format!("{backend}: timed out")),
            },
        )
    }
}

#[async_trait]
impl HealthCheck for StorageHealth {
    fn name(&self) -> &'static str {
        "storage"
    }
    async fn check(&self) -> ComponentHealth {
        let start = Instant::now();
        let backend = self.0.backend();
        let probe: athena_domain::ObjectKey = "health/probe".parse().expect("static key is valid");
        let result = tokio::time::timeout(std::time::Duration::from_secs(3), self.0.stat(&probe)).await;
        timed(
            start,
            match result {
                Ok(Ok(_)) => Ok(Some(backend.to_string())),
                Ok(Err(e)) => Err(format!("{backend}: {e}")),
                Err(_) => Err(format!("{backend}: timed out")),
            },
        )
    }
}

pub async fn report(checks: &[Arc<dyn HealthCheck>]) -> HealthReport {
    let results = futures::future::join_all(checks.iter().map(|c| async move { (c.name(), c.check().await) })).await;
    let status = if results.iter().any(|(_, h)| h.status == "down") {
        "unhealthy"
    } else if results.iter().any(|(_, h)| h.status == "degraded") {
        "degraded"
    } else {
        "ok"
    };
    HealthReport { status, components: results.into_iter().collect() }
}

/// The search index: `degraded` while it is being rebuilt, `down` when it cannot be read.
pub struct SearchHealth(pub Arc<dyn athena_search::SearchIndex>);

#[async_trait]
impl HealthCheck for SearchHealth {
    fn name(&self) -> &'static str {
        "search"
    }
    async fn check(&self) -> ComponentHealth {
        let start = Instant::now();
        let engine = self.0.engine();
        let latency = |s: Instant| (s.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
        match self.0.health() {
            athena_search::IndexHealth::Ready { docs } => {
                ComponentHealth { status: "ok", detail: Some(format!("{engine}, {docs} documents")), latency_ms: latency(start) }
            }
            athena_search::IndexHealth::Rebuilding { docs, reason } => ComponentHealth {
                status: "degraded",
                detail: Some(format!("{engine} rebuilding ({reason}), {docs} documents so far")),
                latency_ms: latency(start),
            },
            athena_search::IndexHealth::Corrupt { reason } => {
                ComponentHealth { status: "down", detail: Some(format!("{engine}: {reason}")), latency_ms: latency(start) }
            }
        }
    }
}
