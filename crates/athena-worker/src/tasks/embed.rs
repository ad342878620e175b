//! `book.embed`: the book's stored text, cut into overlapping chunks, through the embedding model
//! into vectors for semantic search (kept per content hash and model, like the text); and
//! `annotations.embed`: a user's changed notes and highlights through the same model.

use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::TaskKind;
use athena_domain::ObjectKey;
use athena_search::semantic::{chunk_book_text, encode_vector};
use athena_store::jobs::{BookProcessing, Job};
use athena_store::vectors::ChunkVector;
use athena_store::SyncTable;

use super::{blocking, fetch, load_book, record_error};
use crate::{Task, TaskCtx, TaskError};

/// Chunks embedded per model call: enough to keep every core busy, few enough to bound memory.
const BATCH: usize = 32;

pub struct EmbedTask {
    pub limit: Duration,
}

fn model_error(e: athena_search::SearchError) -> TaskError {
    match e {
        athena_search::SearchError::BadText { .. } => TaskError::permanent("bad_text", e.to_string()),
        // A model file that cannot be read stays unreadable until an operator fixes it.
        other => TaskError::permanent("embedding_failed", other.to_string()),
    }
}

#[async_trait]
impl Task for EmbedTask {
    fn kind(&self) -> &'static str {
        TaskKind::Embed.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let Some(book) = load_book(ctx, job).await? else { return Ok(()) };
        let Some(semantic) = ctx.app.semantic.clone() else {
            return Err(TaskError::permanent("semantic_unavailable", "semantic search is off in this worker"));
        };
        let text_key = ObjectKey::for_text(&book.content_sha256);
        let Some(text_meta) = ctx.app.blobs.stat(&text_key).await? else {
            return Err(TaskError::permanent("no_text", "the book has no extracted text"));
        };
        let embedder = semantic.embedder.clone();
        let model = {
            let embedder = embedder.clone();
            blocking(move || embedder.model_id()).await?.map_err(model_error)?
        };
        // Content shared by several owners is embedded once: skip when vectors newer than the text exist.
        let sets = ctx.app.store.content_vector_sets(std::slice::from_ref(&book.content_sha256), &model).await?;
        if let Some(set) = sets.first() {
            if text_meta.last_modified.is_none_or(|t| set.embedded_at >= t) {
                return Ok(());
            }
        }
        let path = fetch(ctx, &text_key, "text.jsonl").await?;
        let chunks = blocking(move || -> Result<Vec<ChunkVector>, athena_search::SearchError> {
            let file = std::io::BufReader::new(std::fs::File::open(&path)?);
            let mut out = Vec::new();
            chunk_book_text(file, BATCH, |batch| {
                let texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
                let vectors = embedder.embed_passages(&texts)?;
                for (chunk, vector) in batch.iter().zip(vectors) {
                    out.push(ChunkVector {
                        chunk_no: chunk.chunk_no,
                        location: chunk.location.clone(),
                        title: chunk.title.clone(),
                        preview: chunk.preview(),
                        vector: encode_vector(&vector),
                    });
                }
                Ok(())
            })?;
            Ok(out)
        })
        .await?
        .map_err(model_error)?;
        let count = chunks.len();
        ctx.app.store.put_content_vectors(&book.content_sha256, &model, chunks, ctx.app.clock.now()).await?;
        let merge = serde_json::Map::from_iter([
            (
                "semantic".to_string(),
                serde_json::json!({ "embedded_at": ctx.app.clock.now().to_rfc3339(), "chunks": count, "model": model }),
            ),
            ("semantic_error".to_string(), serde_json::Value::Null),
        ]);
        ctx.app
            .store
            .update_book_processing(&book.id, BookProcessing { meta_merge: Some(merge), ..Default::default() }, ctx.app.clock.now())
            .await?;
        Ok(())
    }

    async fn give_up(&self, ctx: &TaskCtx, job: &Job, error: &TaskError) -> Result<(), TaskError> {
        record_error(ctx, job, "semantic_error", error, BookProcessing::default()).await
    }
}

pub struct EmbedAnnotationsTask {
    pub limit: Duration,
}

#[async_trait]
impl Task for EmbedAnnotationsTask {
    fn kind(&self) -> &'static str {
        TaskKind::EmbedAnnotations.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let user = job
            .user_id
            .clone()
            .or_else(|| job.payload.get("user_id").and_then(|u| u.as_str()).and_then(|u| u.parse().ok()))
            .ok_or_else(|| TaskError::permanent("bad_job", "the job names no user"))?;
        let rows: Vec<(SyncTable, String)> = job
            .payload
            .get("rows")
            .and_then(|r| r.as_array())
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| {
                        let table = SyncTable::from_name(r.get("table")?.as_str()?)?;
                        matches!(table, SyncTable::Notes | SyncTable::Highlights).then_some((table, r.get("id")?.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        match ctx.app.embed_annotations(&user, &rows).await {
            Ok(_) => Ok(()),
            Err(athena_app::AppError::Unavailable(e)) => Err(TaskError::permanent("semantic_unavailable", e.to_string())),
            Err(e) => Err(TaskError::retry(e)),
        }
    }
}
