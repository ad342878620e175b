//! `POST /sync/upload`: a client's PowerSync CRUD queue, applied by `App::sync_upload`.

use athena_app::{SyncOpError, SyncOperation, SyncUploadResult};
use axum::extract::{FromRequest, Request, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ok, ApiJson};
use crate::state::ApiState;

/// Largest body this route accepts (a batch of up to 10,000 operations).
pub const MAX_SYNC_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize, ToSchema)]
pub struct SyncUploadRequest {
    /// At most 10,000 operations, applied in order.
    operations: Vec<SyncOperationRequest>,
}

/// One PowerSync CRUD entry. Other fields a client sends (`op_id`, `tx_id`, …) are ignored.
#[derive(Deserialize, ToSchema)]
pub struct SyncOperationRequest {
    /// One of the synced tables: books, reading_progress, reading_sessions, notes, highlights, bookmarks,
    /// shelves, shelf_books, user_settings, reading_settings.
    table: String,
    /// `PUT` (the whole row), `PATCH` (the changed columns) or `DELETE`.
    op: String,
    /// The row's id (a UUID).
    id: String,
    /// Client columns and values: timestamps as ISO-8601 text, booleans as 0/1 or true/false.
    /// `id` and `user_id` here are ignored (the row's owner is the caller).
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct SyncUploadView {
    /// `ok` when every operation was applied, `partial` when some were refused (see `errors`).
    status: &'static str,
    /// Operations applied (an older write that a newer one outranks counts as applied: it is done).
    processed: usize,
    /// Operations refused for good, in request order; the server keeps a record of each.
    errors: Vec<SyncOpErrorView>,
}

#[derive(Serialize, ToSchema)]
pub struct SyncOpErrorView {
    /// The operation's row id.
    id: String,
    /// `validation_error` (unknown table or column, bad value), `not_found` (the row or a row it references is not
    /// the caller's), `readonly_mode_quota_exceeded` (the account is over quota).
    code: &'static str,
    message: String,
}

impl From<SyncUploadResult> for SyncUploadView {
    fn from(r: SyncUploadResult) -> Self {
        Self {
            status: if r.errors.is_empty() { "ok" } else { "partial" },
            processed: r.processed,
            errors: r.errors.into_iter().map(|SyncOpError { id, code, message }| SyncOpErrorView { id, code, message }).collect(),
        }
    }
}

/// Upload a client's queued changes (PowerSync `uploadData`).
///
/// Each operation is applied on its own, under the conflict rules of each table (last writer wins by the client's
/// `updated_at` for progress and settings; conflict copies for notes and highlights; column merge elsewhere).
/// Refusals are per operation in `errors` (answered 200: the client moves on). A 503 means "retry the batch";
/// retrying is always harmless.
#[utoipa::path(post, path = "/api/v1/sync/upload", tag = "sync", request_body = SyncUploadRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = SyncUploadView),
        (status = 403, description = "forbidden: uploads are disabled on this server (POWERSYNC_UPLOAD_ENABLED=false)"),
        (status = 413, description = "payload_too_large: the body is over 16 MiB"),
        (status = 422, description = "validation_error: not JSON of this shape, or more than 10,000 operations"),
        (status = 503, description = "the database is unavailable or busy: retry the batch"),
    ))]
pub async fn upload(State(s): State<ApiState>, Auth(who): Auth, req: Request) -> ApiResult<Response> {
    let ApiJson(body) = ApiJson::<SyncUploadRequest>::from_request(req, &s).await.map_err(|e| {
        if e.code == "payload_too_large" {
            ApiError::new("payload_too_large", format!("sync uploads are limited to {MAX_SYNC_UPLOAD_BYTES} bytes; send fewer operations"))
        } else {
            e
        }
    })?;
    let operations =
        body.operations.into_iter().map(|o| SyncOperation { table: o.table, op: o.op, id: o.id, data: o.data }).collect::<Vec<_>>();
    let result = s.app.sync_upload(&who, operations).await?;
    Ok(ok(SyncUploadView::from(result)))
}
