//! The embedding model behind semantic search, loaded on first use: a process that never embeds
//! (a sync-only role, an API that gets no semantic query) never pays its memory (~150 MB).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use athena_search::semantic::TextEmbedder;
use athena_search::SearchError;

pub struct LazyEmbedder {
    path: PathBuf,
    model: OnceLock<Result<athena_embed::Embedder, String>>,
}

impl LazyEmbedder {
    pub fn new(path: PathBuf) -> Self {
        Self { path, model: OnceLock::new() }
    }

    fn model(&self) -> Result<&athena_embed::Embedder, SearchError> {
        self.model
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let loaded = athena_embed::Embedder::load(&self.path).map_err(|e| format!("{}: {e}", self.path.display()));
                match &loaded {
                    Ok(m) => tracing::info!(model = m.model_id(), ms = started.elapsed().as_millis() as u64, "embedding model loaded"),
                    Err(e) => tracing::error!(error = %e, "embedding model not loaded; semantic search fails until restart"),
                }
                loaded
            })
            .as_ref()
            .map_err(|e| SearchError::Engine(format!("embedding model: {e}")))
    }
}

fn engine_error(e: athena_embed::EmbedError) -> SearchError {
    SearchError::Engine(format!("embedding: {e}"))
}

impl TextEmbedder for LazyEmbedder {
    fn model_id(&self) -> Result<String, SearchError> {
        Ok(self.model()?.model_id().to_string())
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, SearchError> {
        self.model()?.embed_query(text).map_err(engine_error)
    }

    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SearchError> {
        self.model()?.embed_passages(texts).map_err(engine_error)
    }
}

/// The configured model, when semantic search is on.
pub fn embedder(config: &athena_config::Config) -> Option<Arc<dyn TextEmbedder>> {
    config.worker.embed_model.clone().map(|path| Arc::new(LazyEmbedder::new(path)) as Arc<dyn TextEmbedder>)
}
