//! Book contents (reference-counted, shared across users) and books.

use athena_domain::{BookId, ContentHash, ObjectKey, UserId};
use athena_store::{Book, BookContent, BookInsert, BookPatch, BookQuery, NewBook, StoreError, StoreResult, Usage};
use chrono::{DateTime, Utc};

use crate::db::{begin_write, db, get, parsed, parsed_opt, ts, ts_opt, DbPool, Tx};
use crate::rows;

pub(crate) async fn content(pool: &DbPool, sha: &ContentHash) -> StoreResult<Option<BookContent>> {
    let row = sqlx::query("SELECT * FROM book_contents WHERE sha256 = $1").bind(sha.as_str()).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::content).transpose()
}

pub(crate) async fn canonical_book_for(pool: &DbPool, sha: &ContentHash) -> StoreResult<Option<Book>> {
    let row = sqlx::query("SELECT * FROM books WHERE content_sha256 = $1 ORDER BY created_at, id LIMIT 1")
        .bind(sha.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::book).transpose()
}

pub(crate) async fn content_key_in_use(pool: &DbPool, key: &ObjectKey) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 AS one FROM book_contents WHERE storage_key = $1 LIMIT 1")
        .bind(key.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(row.is_some())
}

pub(crate) async fn insert_book(pool: &DbPool, new: NewBook) -> StoreResult<BookInsert> {
    let mut tx = begin_write(pool).await?;
    let result = insert_book_in(&mut tx, &new).await?;
    tx.commit().await.map_err(db)?;
    Ok(result)
}

async fn insert_book_in(tx: &mut Tx, new: &NewBook) -> StoreResult<BookInsert> {
    // Take the content reference first: the write locks the content row, so concurrent inserts of
    // the same hash queue here and then see each other's books.
    let content = sqlx::query(
        "INSERT INTO book_contents (sha256, storage_key, size, format, ref_count, created_at)
         VALUES ($1, $2, $3, $4, 1, $5)
         ON CONFLICT (sha256) DO UPDATE SET ref_count = book_contents.ref_count + 1
         RETURNING storage_key, ref_count",
    )
    .bind(new.sha256.as_str())
    .bind(new.storage_key.as_str())
    .bind(new.size)
    .bind(new.format.as_str())
    .bind(ts(new.now))
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let storage_key: ObjectKey = parsed(&content, "storage_key")?;
    // A content row never survives with zero references, so 1 means this upload created it.
    let content_is_new = get::<i64>(&content, "ref_count")? == 1;

    let existing = sqlx::query("SELECT id, deleted_at FROM books WHERE user_id = $1 AND content_sha256 = $2")
        .bind(new.user_id.as_str())
        .bind(new.sha256.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    if let Some(existing) = existing {
        // The user already holds this content: give the reference back and restore their book.
        sqlx::query("UPDATE book_contents SET ref_count = ref_count - 1 WHERE sha256 = $1")
            .bind(new.sha256.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        let id: String = get(&existing, "id")?;
        let row = sqlx::query(
            "UPDATE books SET deleted_at = NULL, updated_at = $1, version = version + 1
             WHERE id = $2 AND deleted_at IS NOT NULL RETURNING *",
        )
        .bind(ts(new.now))
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        let row = match row {
            Some(row) => row,
            None => sqlx::query("SELECT * FROM books WHERE id = $1").bind(&id).fetch_one(&mut **tx).await.map_err(db)?,
        };
        return Ok(BookInsert::Existing(rows::book(&row)?));
    }

    let meta = serde_json::to_string(&new.meta).map_err(StoreError::internal)?;
    let row = sqlx::query(
        "INSERT INTO books (id, user_id, title, author, language, cover_image_key, original_format, size,
             original_content_sha256, content_sha256, minio_key, metadata_confirmed, is_digitalized,
             initial_digitalization_confidence, page_count, conversion_status, meta, canonical_book_id,
             version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, FALSE, $11, $12, $13, $14, $15,
             (SELECT id FROM books WHERE content_sha256 = $9 ORDER BY created_at, id LIMIT 1),
             1, $16, $16)
         RETURNING *",
    )
    .bind(new.id.as_str())
    .bind(new.user_id.as_str())
    .bind(&new.title)
    .bind(&new.author)
    .bind(&new.language)
    .bind(new.cover_key.as_ref().map(ObjectKey::as_str))
    .bind(new.format.as_str())
    .bind(new.size)
    .bind(new.sha256.as_str())
    .bind(storage_key.as_str())
    .bind(new.is_digitalized)
    .bind(new.digitalization_confidence)
    .bind(new.page_count)
    .bind(&new.conversion_status)
    .bind(meta)
    .bind(ts(new.now))
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    // The book's jobs commit with it: a book never exists without the work it is waiting for.
    for job in &new.jobs {
        crate::jobs::enqueue_in(tx, job).await?;
    }
    Ok(BookInsert::Created { book: rows::book(&row)?, content_is_new })
}

pub(crate) async fn book(pool: &DbPool, user: &UserId, id: &BookId, include_deleted: bool) -> StoreResult<Book> {
    let row = sqlx::query("SELECT * FROM books WHERE id = $1 AND user_id = $2 AND ($3 OR deleted_at IS NULL)")
        .bind(id.as_str())
        .bind(user.as_str())
        .bind(include_deleted)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    rows::book(&row)
}

pub(crate) async fn book_by_content(pool: &DbPool, user: &UserId, sha: &ContentHash) -> StoreResult<Option<Book>> {
    let row = sqlx::query("SELECT * FROM books WHERE user_id = $1 AND content_sha256 = $2")
        .bind(user.as_str())
        .bind(sha.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::book).transpose()
}

pub(crate) async fn list_books(pool: &DbPool, user: &UserId, q: &BookQuery) -> StoreResult<Vec<Book>> {
    let deleted = if q.deleted { "deleted_at IS NOT NULL" } else { "deleted_at IS NULL" };
    // Keyset pagination on (created_at, id), matching the books_user_created index.
    let sql = format!(
        "SELECT * FROM books WHERE user_id = $1 AND {deleted}
           AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let (after_at, after_id) = match &q.after {
        Some((at, id)) => (Some(ts(*at)), Some(id.as_str())),
        None => (None, None),
    };
    let found =
        sqlx::query(&sql).bind(user.as_str()).bind(after_at).bind(after_id).bind(i64::from(q.limit)).fetch_all(pool).await.map_err(db)?;
    found.iter().map(rows::book).collect()
}

pub(crate) async fn update_book(
    pool: &DbPool,
    user: &UserId,
    id: &BookId,
    expected_version: Option<i64>,
    patch: BookPatch,
    now: DateTime<Utc>,
) -> StoreResult<Book> {
    // `CASE WHEN $flag` keeps untouched columns and lets `Some(None)` clear a nullable one.
    let row = sqlx::query(
        "UPDATE books SET
             title = COALESCE($1, title),
             author = CASE WHEN $2 THEN $3 ELSE author END,
             language = CASE WHEN $4 THEN $5 ELSE language END,
             metadata_confirmed = COALESCE($6, metadata_confirmed),
             cover_image_key = CASE WHEN $7 THEN $8 ELSE cover_image_key END,
             version = version + 1, updated_at = $9
         WHERE id = $10 AND user_id = $11 AND deleted_at IS NULL AND ($12 IS NULL OR version = $12)
         RETURNING *",
    )
    .bind(patch.title)
    .bind(patch.author.is_some())
    .bind(patch.author.flatten())
    .bind(patch.language.is_some())
    .bind(patch.language.flatten())
    .bind(patch.metadata_confirmed)
    .bind(patch.cover_image_key.is_some())
    .bind(patch.cover_image_key.flatten().map(String::from))
    .bind(ts(now))
    .bind(id.as_str())
    .bind(user.as_str())
    .bind(expected_version)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    match row {
        Some(row) => rows::book(&row),
        // Tell a stale version apart from a missing (or foreign) book.
        None => match book(pool, user, id, false).await {
            Ok(_) => Err(StoreError::VersionConflict),
            Err(e) => Err(e),
        },
    }
}

pub(crate) async fn set_book_deleted(
    pool: &DbPool,
    user: &UserId,
    id: &BookId,
    deleted_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<Book> {
    let row = sqlx::query(
        "UPDATE books SET deleted_at = $1, updated_at = $2, version = version + 1
         WHERE id = $3 AND user_id = $4 RETURNING *",
    )
    .bind(ts_opt(deleted_at))
    .bind(ts(now))
    .bind(id.as_str())
    .bind(user.as_str())
    .fetch_one(pool)
    .await
    .map_err(db)?;
    rows::book(&row)
}

pub(crate) async fn delete_book_permanently(pool: &DbPool, user: &UserId, id: &BookId) -> StoreResult<Vec<ObjectKey>> {
    let mut tx = begin_write(pool).await?;
    let freed = delete_book_in(&mut tx, user, id).await?;
    tx.commit().await.map_err(db)?;
    Ok(freed)
}

async fn delete_book_in(tx: &mut Tx, user: &UserId, id: &BookId) -> StoreResult<Vec<ObjectKey>> {
    // Rows hanging off the book go first (the schema also cascades; explicit deletes keep this
    // correct if a table is ever declared without the cascade).
    for table in ["shelf_books", "reading_progress", "notes", "highlights", "bookmarks", "reading_sessions", "reading_settings"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE book_id = $1 AND EXISTS (SELECT 1 FROM books WHERE id = $1 AND user_id = $2)"))
            .bind(id.as_str())
            .bind(user.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    let book = sqlx::query(
        "DELETE FROM books WHERE id = $1 AND user_id = $2
         RETURNING content_sha256, cover_image_key, converted_epub_key, ocr_result_key",
    )
    .bind(id.as_str())
    .bind(user.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let sha: String = get(&book, "content_sha256")?;
    let mut freed = Vec::new();

    let content = sqlx::query("UPDATE book_contents SET ref_count = ref_count - 1 WHERE sha256 = $1 RETURNING ref_count, storage_key")
        .bind(&sha)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    // Per-book derived objects, and the content's OCR output once the content itself goes.
    let mut derived = Vec::new();
    for column in ["cover_image_key", "converted_epub_key", "ocr_result_key"] {
        derived.extend(parsed_opt::<ObjectKey>(&book, column)?);
    }
    if let Some(content) = content {
        if get::<i64>(&content, "ref_count")? <= 0 {
            sqlx::query("DELETE FROM book_contents WHERE sha256 = $1").bind(&sha).execute(&mut **tx).await.map_err(db)?;
            freed.push(parsed(&content, "storage_key")?);
            sqlx::query("DELETE FROM ocr_pages WHERE content_sha256 = $1").bind(&sha).execute(&mut **tx).await.map_err(db)?;
            let ocr = sqlx::query("DELETE FROM ocr_results WHERE content_sha256 = $1 RETURNING layered_key")
                .bind(&sha)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
            if let Some(ocr) = ocr {
                derived.push(parsed(&ocr, "layered_key")?);
            }
        }
    }
    // Each is freed unless another book row or a live OCR result still points at it (books of the
    // same content share its OCR output).
    for key in derived {
        let still_used = sqlx::query(
            "SELECT 1 AS one FROM books
             WHERE cover_image_key = $1 OR converted_epub_key = $1 OR ocr_result_key = $1 OR minio_key = $1
             UNION ALL SELECT 1 FROM ocr_results WHERE layered_key = $1
             LIMIT 1",
        )
        .bind(key.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        if still_used.is_none() && !freed.contains(&key) {
            freed.push(key);
        }
    }
    Ok(freed)
}

pub(crate) async fn books_deleted_before(pool: &DbPool, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Book>> {
    let found = sqlx::query("SELECT * FROM books WHERE deleted_at IS NOT NULL AND deleted_at < $1 ORDER BY deleted_at, id LIMIT $2")
        .bind(ts(before))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    found.iter().map(rows::book).collect()
}

pub(crate) async fn usage(pool: &DbPool, user: &UserId) -> StoreResult<Usage> {
    let row = sqlx::query("SELECT COUNT(*) AS books, COALESCE(SUM(size), 0) AS bytes FROM books WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(Usage { books: get(&row, "books")?, bytes: get(&row, "bytes")? })
}
