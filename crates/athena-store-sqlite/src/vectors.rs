//! Embedding vectors (`athena_store::vectors`).

use athena_domain::{ContentHash, UserId};
use athena_store::vectors::{AnnotationVector, ChunkVector, ContentVectorSet};
use athena_store::{StoreResult, SyncTable};
use chrono::{DateTime, Utc};

use crate::db::{begin_write, db, get, parsed, ts, DbPool, DbRow};

pub(crate) async fn put_content_vectors(
    pool: &DbPool,
    sha: &ContentHash,
    model: &str,
    chunks: Vec<ChunkVector>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut tx = begin_write(pool).await?;
    sqlx::query("DELETE FROM content_vectors WHERE content_sha256 = $1 AND model = $2")
        .bind(sha.as_str())
        .bind(model)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let count = chunks.len() as i64;
    for c in chunks {
        sqlx::query(
            "INSERT INTO content_vectors (content_sha256, model, chunk_no, location, title, preview, vector)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(sha.as_str())
        .bind(model)
        .bind(c.chunk_no)
        .bind(c.location)
        .bind(c.title)
        .bind(c.preview)
        .bind(c.vector)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    sqlx::query(
        "INSERT INTO content_vector_sets (content_sha256, model, chunks, embedded_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (content_sha256, model) DO UPDATE SET chunks = excluded.chunks, embedded_at = excluded.embedded_at",
    )
    .bind(sha.as_str())
    .bind(model)
    .bind(count)
    .bind(ts(now))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)
}

pub(crate) async fn content_vector_sets(pool: &DbPool, shas: &[ContentHash], model: &str) -> StoreResult<Vec<ContentVectorSet>> {
    let list = serde_json::to_string(&shas.iter().map(|s| s.as_str()).collect::<Vec<_>>()).map_err(athena_store::StoreError::internal)?;
    let rows = sqlx::query("SELECT * FROM content_vector_sets WHERE model = $1 AND content_sha256 IN (SELECT value FROM json_each($2))")
        .bind(model)
        .bind(list)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(ContentVectorSet {
                content_sha256: parsed(r, "content_sha256")?,
                model: get(r, "model")?,
                chunks: get(r, "chunks")?,
                embedded_at: get(r, "embedded_at")?,
            })
        })
        .collect()
}

pub(crate) async fn content_vectors(pool: &DbPool, sha: &ContentHash, model: &str) -> StoreResult<Vec<ChunkVector>> {
    let rows = sqlx::query("SELECT * FROM content_vectors WHERE content_sha256 = $1 AND model = $2 ORDER BY chunk_no")
        .bind(sha.as_str())
        .bind(model)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(ChunkVector {
                chunk_no: get(r, "chunk_no")?,
                location: get(r, "location")?,
                title: get(r, "title")?,
                preview: get(r, "preview")?,
                vector: get(r, "vector")?,
            })
        })
        .collect()
}

pub(crate) async fn delete_content_vectors(pool: &DbPool, sha: &ContentHash) -> StoreResult<()> {
    let mut tx = begin_write(pool).await?;
    for table in ["content_vectors", "content_vector_sets"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE content_sha256 = $1")).bind(sha.as_str()).execute(&mut *tx).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

pub(crate) async fn put_annotation_vector(pool: &DbPool, v: AnnotationVector) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO annotation_vectors (user_id, doc_id, book_id, kind, location, preview, model, vector, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (user_id, doc_id) DO UPDATE SET book_id = excluded.book_id, kind = excluded.kind,
             location = excluded.location, preview = excluded.preview, model = excluded.model,
             vector = excluded.vector, updated_at = excluded.updated_at",
    )
    .bind(v.user_id.as_str())
    .bind(v.doc_id)
    .bind(v.book_id)
    .bind(v.kind)
    .bind(v.location)
    .bind(v.preview)
    .bind(v.model)
    .bind(v.vector)
    .bind(ts(v.updated_at))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn delete_annotation_vector(pool: &DbPool, user: &UserId, doc_id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM annotation_vectors WHERE user_id = $1 AND doc_id = $2")
        .bind(user.as_str())
        .bind(doc_id)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn annotation_vectors(pool: &DbPool, user: &UserId, model: &str) -> StoreResult<Vec<AnnotationVector>> {
    let rows = sqlx::query("SELECT * FROM annotation_vectors WHERE user_id = $1 AND model = $2")
        .bind(user.as_str())
        .bind(model)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(annotation_vector).collect()
}

fn annotation_vector(r: &DbRow) -> StoreResult<AnnotationVector> {
    Ok(AnnotationVector {
        user_id: parsed(r, "user_id")?,
        doc_id: get(r, "doc_id")?,
        book_id: get(r, "book_id")?,
        kind: get(r, "kind")?,
        location: get(r, "location")?,
        preview: get(r, "preview")?,
        model: get(r, "model")?,
        vector: get(r, "vector")?,
        updated_at: get(r, "updated_at")?,
    })
}

pub(crate) async fn live_annotation_ids(
    pool: &DbPool,
    user: &UserId,
    book: &athena_domain::BookId,
) -> StoreResult<Vec<(SyncTable, String)>> {
    let mut out = Vec::new();
    for table in [SyncTable::Notes, SyncTable::Highlights] {
        let rows =
            sqlx::query(&format!("SELECT id FROM {} WHERE user_id = $1 AND book_id = $2 AND is_deleted = 0 ORDER BY id", table.name()))
                .bind(user.as_str())
                .bind(book.as_str())
                .fetch_all(pool)
                .await
                .map_err(db)?;
        for r in &rows {
            out.push((table, get::<String>(r, "id")?));
        }
    }
    Ok(out)
}
