use std::sync::Arc;

use athena_app::App;
use athena_blob::LocalSigner;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::HealthCheck;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub app: App,
    /// Verifies signed upload URLs that point at Athena itself (embedded storage).
    pub signer: Option<Arc<LocalSigner>>,
    pub metrics: PrometheusHandle,
    /// Components reporting into `/health` (database, storage, and whatever roles add).
    pub health: Arc<Vec<Arc<dyn HealthCheck>>>,
}
