//! Shelves and their items.

use athena_domain::{BookId, ShelfId, UserId};
use athena_store::{NewShelf, Shelf, ShelfItem, ShelfPatch, StoreError, StoreResult};
use chrono::{DateTime, Utc};

use crate::db::{begin_write, db, DbPool};
use crate::rows;

pub(crate) async fn create_shelf(pool: &DbPool, new: NewShelf) -> StoreResult<Shelf> {
    let row = sqlx::query(
        "INSERT INTO shelves (id, user_id, name, description, sort_order, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
    )
    .bind(new.id.as_str())
    .bind(new.user_id.as_str())
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.sort_order)
    .bind(new.now)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    rows::shelf(&row)
}

/// A live shelf of the user; deleted shelves are gone for the API.
pub(crate) async fn shelf(pool: &DbPool, user: &UserId, id: &ShelfId) -> StoreResult<Shelf> {
    let row = sqlx::query("SELECT * FROM shelves WHERE id = $1 AND user_id = $2 AND NOT is_deleted")
        .bind(id.as_str())
        .bind(user.as_str())
        .fetch_one(pool)
        .await
        .map_err(db)?;
    rows::shelf(&row)
}

pub(crate) async fn list_shelves(pool: &DbPool, user: &UserId, after: Option<&ShelfId>, limit: u32) -> StoreResult<Vec<Shelf>> {
    // The cursor is an id; its sort key is looked up so the keyset follows the listing order.
    let found = sqlx::query(
        "SELECT * FROM shelves s WHERE s.user_id = $1 AND NOT s.is_deleted
           AND ($2 IS NULL OR (s.sort_order, s.created_at, s.id) >
               (SELECT c.sort_order, c.created_at, c.id FROM shelves c WHERE c.id = $2 AND c.user_id = $1))
         ORDER BY s.sort_order, s.created_at, s.id LIMIT $3",
    )
    .bind(user.as_str())
    .bind(after.map(ShelfId::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    found.iter().map(rows::shelf).collect()
}

pub(crate) async fn update_shelf(
    pool: &DbPool,
    user: &UserId,
    id: &ShelfId,
    expected_version: Option<i64>,
    patch: ShelfPatch,
    now: DateTime<Utc>,
) -> StoreResult<Shelf> {
    let row = sqlx::query(
        "UPDATE shelves SET
             name = COALESCE($1, name),
             description = CASE WHEN $2 THEN $3 ELSE description END,
             sort_order = COALESCE($4, sort_order),
             version = version + 1, updated_at = $5
         WHERE id = $6 AND user_id = $7 AND NOT is_deleted AND ($8 IS NULL OR version = $8)
         RETURNING *",
    )
    .bind(patch.name)
    .bind(patch.description.is_some())
    .bind(patch.description.flatten())
    .bind(patch.sort_order)
    .bind(now)
    .bind(id.as_str())
    .bind(user.as_str())
    .bind(expected_version)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    match row {
        Some(row) => rows::shelf(&row),
        None => match shelf(pool, user, id).await {
            Ok(_) => Err(StoreError::VersionConflict),
            Err(e) => Err(e),
        },
    }
}

pub(crate) async fn delete_shelf(pool: &DbPool, user: &UserId, id: &ShelfId, now: DateTime<Utc>) -> StoreResult<()> {
    let mut tx = begin_write(pool).await?;
    let done = sqlx::query(
        "UPDATE shelves SET is_deleted = TRUE, deleted_at = $1, updated_at = $1, version = version + 1
         WHERE id = $2 AND user_id = $3 AND NOT is_deleted",
    )
    .bind(now)
    .bind(id.as_str())
    .bind(user.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM shelf_books WHERE shelf_id = $1").bind(id.as_str()).execute(&mut *tx).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// Joins that prove the shelf and the book are the user's and live.
const OWNED_ITEM: &str = "SELECT sb.* FROM shelf_books sb
     JOIN shelves s ON s.id = sb.shelf_id AND s.user_id = $3 AND NOT s.is_deleted
     JOIN books b ON b.id = sb.book_id AND b.user_id = $3 AND b.deleted_at IS NULL
     WHERE sb.shelf_id = $1 AND sb.book_id = $2";

pub(crate) async fn add_shelf_item(
    pool: &DbPool,
    user: &UserId,
    shelf: &ShelfId,
    book: &BookId,
    now: DateTime<Utc>,
) -> StoreResult<ShelfItem> {
    // Insert only when both rows are the user's and live; an item already there is kept as is.
    // The new item goes to the end of the shelf.
    sqlx::query(
        "INSERT INTO shelf_books (id, user_id, shelf_id, book_id, sort_order, added_at)
         SELECT $4, $3, $1, $2,
                COALESCE((SELECT MAX(sort_order) + 1 FROM shelf_books WHERE shelf_id = $1), 0), $5
         WHERE EXISTS (SELECT 1 FROM shelves WHERE id = $1 AND user_id = $3 AND NOT is_deleted)
           AND EXISTS (SELECT 1 FROM books WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL)
         ON CONFLICT (shelf_id, book_id) DO NOTHING",
    )
    .bind(shelf.as_str())
    .bind(book.as_str())
    .bind(user.as_str())
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(now)
    .execute(pool)
    .await
    .map_err(db)?;
    let row = sqlx::query(OWNED_ITEM).bind(shelf.as_str()).bind(book.as_str()).bind(user.as_str()).fetch_one(pool).await.map_err(db)?;
    rows::shelf_item(&row)
}

pub(crate) async fn list_shelf_items(pool: &DbPool, user: &UserId, shelf_id: &ShelfId) -> StoreResult<Vec<ShelfItem>> {
    // A foreign or deleted shelf is NotFound, not an empty list.
    shelf(pool, user, shelf_id).await?;
    let found = sqlx::query(
        "SELECT sb.* FROM shelf_books sb
         JOIN books b ON b.id = sb.book_id AND b.deleted_at IS NULL
         WHERE sb.shelf_id = $1 AND sb.user_id = $2
         ORDER BY sb.sort_order, sb.added_at, sb.id",
    )
    .bind(shelf_id.as_str())
    .bind(user.as_str())
    .fetch_all(pool)
    .await
    .map_err(db)?;
    found.iter().map(rows::shelf_item).collect()
}

pub(crate) async fn remove_shelf_item(pool: &DbPool, user: &UserId, shelf_id: &ShelfId, book: &BookId) -> StoreResult<()> {
    let done = sqlx::query(
        "DELETE FROM shelf_books WHERE shelf_id = $1 AND book_id = $2 AND user_id = $3
           AND EXISTS (SELECT 1 FROM shelves WHERE id = $1 AND user_id = $3 AND NOT is_deleted)",
    )
    .bind(shelf_id.as_str())
    .bind(book.as_str())
    .bind(user.as_str())
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
