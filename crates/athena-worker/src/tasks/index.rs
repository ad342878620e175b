//! `book.index`: the book's extracted text (shared by content hash) and its own metadata (title,
//! authors, publisher, owned by the user) into the search index. Replaces what was there, so a rerun
//! leaves the same index.

use std::time::Duration;

use async_trait::async_trait;
use athena_app::pipeline::TaskKind;
use athena_domain::ObjectKey;
use athena_search::{Doc, Kind};
use athena_store::jobs::{BookProcessing, Job};

use super::{blocking, fetch, load_book, record_error};
use crate::{Task, TaskCtx, TaskError};

pub struct IndexTask {
    pub limit: Duration,
}

#[async_trait]
impl Task for IndexTask {
    fn kind(&self) -> &'static str {
        TaskKind::Index.as_str()
    }

    fn time_limit(&self) -> Duration {
        self.limit
    }

    async fn run(&self, ctx: &TaskCtx, job: &Job) -> Result<(), TaskError> {
        let Some(book) = load_book(ctx, job).await? else { return Ok(()) };
        let Some(index) = ctx.app.search.clone() else {
            return Err(TaskError::permanent("search_unavailable", "this worker process has no search index"));
        };
        let text_key = ObjectKey::for_text(&book.content_sha256);
        let text = match ctx.app.blobs.stat(&text_key).await? {
            Some(_) => Some(fetch(ctx, &text_key, "text.jsonl").await?),
            None => None,
        };
        let authors =
            book.meta.get("authors").and_then(|a| a.as_array()).map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" "));
        let publisher = book.meta.get("publisher").and_then(|p| p.as_str()).map(str::to_string);
        let meta_text =
            [Some(book.title.clone()), book.author.clone(), authors, publisher].into_iter().flatten().collect::<Vec<_>>().join("\n");
        let meta = Doc {
            id: format!("meta:{}", book.id),
            owner: Some(book.user_id.to_string()),
            content_key: None,
            book_id: Some(book.id.to_string()),
            kind: Kind::BookMeta,
            location: None,
            title: Some(book.title.clone()),
            text: meta_text,
        };
        // The owner's notes and highlights of the book too: a rebuilt index must hold them again.
        let mut own_docs = ctx.app.annotation_docs(&book.user_id, &book.id).await.map_err(TaskError::retry)?;
        own_docs.push(meta);
        let sha = book.content_sha256.to_string();
        let sections = blocking(move || -> Result<u64, athena_search::SearchError> {
            let mut sections = 0;
            if let Some(path) = text {
                let file = std::fs::File::open(&path)?;
                sections = athena_search::index_book_text(&*index, &sha, None, std::io::BufReader::new(file))?.sections;
            }
            index.upsert(own_docs)?;
            index.commit()?;
            Ok(sections)
        })
        .await?
        .map_err(|e| match e {
            athena_search::SearchError::BadText { .. } | athena_search::SearchError::InvalidDoc { .. } => {
                TaskError::permanent("bad_text", e.to_string())
            }
            other => TaskError::retry(other),
        })?;
        let merge = serde_json::Map::from_iter([
            ("search".to_string(), serde_json::json!({ "indexed_at": ctx.app.clock.now().to_rfc3339(), "sections": sections })),
            ("index_error".to_string(), serde_json::Value::Null),
        ]);
        ctx.app
            .store
            .update_book_processing(&book.id, BookProcessing { meta_merge: Some(merge), ..Default::default() }, ctx.app.clock.now())
            .await?;
        Ok(())
    }

    async fn give_up(&self, ctx: &TaskCtx, job: &Job, error: &TaskError) -> Result<(), TaskError> {
        record_error(ctx, job, "index_error", error, BookProcessing::default()).await
    }
}
