use athena_app::{ShelfCreate, ShelfEdit};
use athena_domain::{BookId, ShelfId};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{if_match, ok, ok_versioned, path_id, ApiJson};
use crate::idempotency;
use crate::state::ApiState;
use crate::views::{ListView, ShelfItemView, ShelfView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShelfCreateRequest {
    name: String,
    description: Option<String>,
    sort_order: Option<i64>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShelfPatchRequest {
    name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    sort_order: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShelfItemRequest {
    book_id: String,
}

#[derive(Deserialize, IntoParams)]
pub struct ShelfListParams {
    cursor: Option<String>,
    /// 1–500, default 100.
    limit: Option<u32>,
}

fn shelf_response(status: StatusCode, shelf: athena_store::Shelf) -> Response {
    let version = shelf.version;
    ok_versioned(status, ShelfView::from(shelf), version)
}

/// Create a shelf.
#[utoipa::path(post, path = "/api/v1/shelves", tag = "shelves", request_body = ShelfCreateRequest,
    params(("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])), responses((status = 201, body = ShelfView)))]
pub async fn create(
    State(s): State<ApiState>,
    Auth(who): Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ShelfCreateRequest>,
) -> ApiResult<Response> {
    let state = s.clone();
    let caller = who.clone();
    idempotency::run(&s, &caller, &headers, "POST /shelves", async move {
        let shelf =
            state.app.create_shelf(&who, ShelfCreate { name: req.name, description: req.description, sort_order: req.sort_order }).await?;
        Ok(shelf_response(StatusCode::CREATED, shelf))
    })
    .await
}

/// The caller's shelves.
#[utoipa::path(get, path = "/api/v1/shelves", tag = "shelves", params(ShelfListParams), security(("bearer" = [])),
    responses((status = 200, body = ListView<ShelfView>)))]
pub async fn list(State(s): State<ApiState>, Auth(who): Auth, Query(p): Query<ShelfListParams>) -> ApiResult<Response> {
    let (items, next_cursor) = s.app.shelves(&who, p.cursor.as_deref(), p.limit).await?;
    Ok(ok(ListView { items: items.into_iter().map(ShelfView::from).collect(), next_cursor }))
}

/// One shelf, with `ETag`.
#[utoipa::path(get, path = "/api/v1/shelves/{id}", tag = "shelves", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ShelfView), (status = 404, description = "not_found")))]
pub async fn get(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: ShelfId = path_id(&id)?;
    Ok(shelf_response(StatusCode::OK, s.app.shelf(&who, &id).await?))
}

/// Rename or reorder a shelf. Needs `If-Match`.
#[utoipa::path(patch, path = "/api/v1/shelves/{id}", tag = "shelves", params(("id" = String, Path), ("If-Match" = String, Header)),
    request_body = ShelfPatchRequest, security(("bearer" = [])),
    responses((status = 200, body = ShelfView), (status = 409, description = "version_conflict"), (status = 428, description = "missing_if_match")))]
pub async fn patch(
    State(s): State<ApiState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ShelfPatchRequest>,
) -> ApiResult<Response> {
    let id: ShelfId = path_id(&id)?;
    let version = if_match(&headers)?;
    let edit = ShelfEdit { name: req.name, description: req.description, sort_order: req.sort_order };
    Ok(shelf_response(StatusCode::OK, s.app.edit_shelf(&who, &id, version, edit).await?))
}

/// Delete a shelf (its books stay in the library).
#[utoipa::path(delete, path = "/api/v1/shelves/{id}", tag = "shelves", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200), (status = 404, description = "not_found")))]
pub async fn delete(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let id: ShelfId = path_id(&id)?;
    s.app.delete_shelf(&who, &id).await?;
    Ok(ok(serde_json::json!({ "deleted": true, "id": id.to_string() })))
}

/// Put a book on a shelf (idempotent).
#[utoipa::path(post, path = "/api/v1/shelves/{id}/items", tag = "shelves", params(("id" = String, Path)), request_body = ShelfItemRequest,
    security(("bearer" = [])), responses((status = 201, body = ShelfItemView), (status = 404, description = "not_found")))]
pub async fn add_item(
    State(s): State<ApiState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ShelfItemRequest>,
) -> ApiResult<Response> {
    let shelf: ShelfId = path_id(&id)?;
    let book: BookId = path_id(&req.book_id)?;
    let item = s.app.add_to_shelf(&who, &shelf, &book).await?;
    Ok(crate::extract::created(ShelfItemView::from(item)))
}

/// The books on a shelf.
#[utoipa::path(get, path = "/api/v1/shelves/{id}/items", tag = "shelves", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ListView<ShelfItemView>), (status = 404, description = "not_found")))]
pub async fn items(State(s): State<ApiState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let shelf: ShelfId = path_id(&id)?;
    let items = s.app.shelf_items(&who, &shelf).await?;
    Ok(ok(ListView { items: items.into_iter().map(ShelfItemView::from).collect(), next_cursor: None }))
}

/// Take a book off a shelf.
#[utoipa::path(delete, path = "/api/v1/shelves/{id}/items/{book_id}", tag = "shelves", params(("id" = String, Path), ("book_id" = String, Path)),
    security(("bearer" = [])), responses((status = 200), (status = 404, description = "not_found")))]
pub async fn remove_item(State(s): State<ApiState>, Auth(who): Auth, Path((id, book_id)): Path<(String, String)>) -> ApiResult<Response> {
    let shelf: ShelfId = path_id(&id)?;
    let book: BookId = path_id(&book_id)?;
    s.app.remove_from_shelf(&who, &shelf, &book).await?;
    Ok(ok(serde_json::json!({ "removed": true })))
}
