//! Row → record decoding, shared by every query module.

use athena_store::jobs::{Job, OcrPage, OcrResult};
use athena_store::{
    Book, BookContent, DedupChallenge, IdempotentResponse, LoginCode, PendingUpload, Session, Shelf, ShelfItem, StoreError, StoreResult,
    User,
};

use crate::db::{get, parsed, parsed_opt, DbRow};

pub(crate) fn user(r: &DbRow) -> StoreResult<User> {
    Ok(User {
        id: parsed(r, "id")?,
        email: parsed(r, "email")?,
        display_name: get(r, "display_name")?,
        language: get(r, "language")?,
        timezone: get(r, "timezone")?,
        role: parsed(r, "role")?,
        membership_tier: get(r, "membership_tier")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

pub(crate) fn login_code(r: &DbRow) -> StoreResult<LoginCode> {
    let attempts: i64 = get(r, "attempts")?;
    Ok(LoginCode {
        email: parsed(r, "email")?,
        code_hash: get(r, "code_hash")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        expires_at: get(r, "expires_at")?,
        created_at: get(r, "created_at")?,
    })
}

pub(crate) fn session(r: &DbRow) -> StoreResult<Session> {
    Ok(Session {
        id: parsed(r, "id")?,
        user_id: parsed(r, "user_id")?,
        user_agent: get(r, "user_agent")?,
        created_at: get(r, "created_at")?,
        last_used_at: get(r, "last_used_at")?,
        refresh_expires_at: get(r, "refresh_expires_at")?,
        revoked_at: get(r, "revoked_at")?,
    })
}

pub(crate) fn content(r: &DbRow) -> StoreResult<BookContent> {
    Ok(BookContent {
        sha256: parsed(r, "sha256")?,
        storage_key: parsed(r, "storage_key")?,
        size: get(r, "size")?,
        format: parsed(r, "format")?,
        ref_count: get(r, "ref_count")?,
        created_at: get(r, "created_at")?,
    })
}

pub(crate) fn book(r: &DbRow) -> StoreResult<Book> {
    let meta: String = get(r, "meta")?;
    Ok(Book {
        id: parsed(r, "id")?,
        user_id: parsed(r, "user_id")?,
        title: get(r, "title")?,
        author: get(r, "author")?,
        language: get(r, "language")?,
        cover_image_key: parsed_opt(r, "cover_image_key")?,
        original_format: parsed(r, "original_format")?,
        size: get(r, "size")?,
        original_content_sha256: parsed(r, "original_content_sha256")?,
        content_sha256: parsed(r, "content_sha256")?,
        minio_key: parsed(r, "minio_key")?,
        metadata_confirmed: get(r, "metadata_confirmed")?,
        is_digitalized: get(r, "is_digitalized")?,
        initial_digitalization_confidence: get(r, "initial_digitalization_confidence")?,
        page_count: get(r, "page_count")?,
        ocr_status: get(r, "ocr_status")?,
        conversion_status: get(r, "conversion_status")?,
        converted_epub_key: parsed_opt(r, "converted_epub_key")?,
        ocr_result_key: parsed_opt(r, "ocr_result_key")?,
        meta: serde_json::from_str(&meta).map_err(StoreError::internal)?,
        canonical_book_id: parsed_opt(r, "canonical_book_id")?,
        version: get(r, "version")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
        deleted_at: get(r, "deleted_at")?,
    })
}

pub(crate) fn pending_upload(r: &DbRow) -> StoreResult<PendingUpload> {
    Ok(PendingUpload {
        key: parsed(r, "key")?,
        user_id: parsed(r, "user_id")?,
        filename: get(r, "filename")?,
        content_type: get(r, "content_type")?,
        declared_size: get(r, "declared_size")?,
        declared_sha256: parsed_opt(r, "declared_sha256")?,
        expires_at: get(r, "expires_at")?,
        created_at: get(r, "created_at")?,
    })
}

pub(crate) fn dedup_challenge(r: &DbRow) -> StoreResult<DedupChallenge> {
    let ranges: String = get(r, "ranges")?;
    Ok(DedupChallenge {
        id: get(r, "id")?,
        user_id: parsed(r, "user_id")?,
        sha256: parsed(r, "sha256")?,
        ranges: serde_json::from_str(&ranges).map_err(StoreError::internal)?,
        expires_at: get(r, "expires_at")?,
        created_at: get(r, "created_at")?,
    })
}

pub(crate) fn shelf(r: &DbRow) -> StoreResult<Shelf> {
    Ok(Shelf {
        id: parsed(r, "id")?,
        user_id: parsed(r, "user_id")?,
        name: get(r, "name")?,
        description: get(r, "description")?,
        cover_url: get(r, "cover_url")?,
        sort_order: get(r, "sort_order")?,
        is_deleted: get(r, "is_deleted")?,
        deleted_at: get(r, "deleted_at")?,
        version: get(r, "version")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

pub(crate) fn shelf_item(r: &DbRow) -> StoreResult<ShelfItem> {
    Ok(ShelfItem {
        id: get(r, "id")?,
        shelf_id: parsed(r, "shelf_id")?,
        book_id: parsed(r, "book_id")?,
        sort_order: get(r, "sort_order")?,
        added_at: get(r, "added_at")?,
    })
}

pub(crate) fn idempotent_response(r: &DbRow) -> StoreResult<IdempotentResponse> {
    let status: i64 = get(r, "status")?;
    Ok(IdempotentResponse {
        user_id: parsed(r, "user_id")?,
        key: get(r, "key")?,
        request: get(r, "request")?,
        status: u16::try_from(status).map_err(StoreError::internal)?,
        body: get(r, "body")?,
        created_at: get(r, "created_at")?,
    })
}

pub(crate) fn job(r: &DbRow) -> StoreResult<Job> {
    let payload: String = get(r, "payload")?;
    Ok(Job {
        id: parsed(r, "id")?,
        queue: get::<String>(r, "queue")?.parse().map_err(|e: String| StoreError::Internal(e.into()))?,
        kind: get(r, "kind")?,
        payload: serde_json::from_str(&payload).map_err(StoreError::internal)?,
        dedup_key: get(r, "dedup_key")?,
        state: get::<String>(r, "state")?.parse().map_err(|e: String| StoreError::Internal(e.into()))?,
        attempts: get(r, "attempts")?,
        max_attempts: get(r, "max_attempts")?,
        priority: get(r, "priority")?,
        run_at: get(r, "run_at")?,
        lease_owner: get(r, "lease_owner")?,
        lease_expires_at: get(r, "lease_expires_at")?,
        last_error: get(r, "last_error")?,
        user_id: parsed_opt(r, "user_id")?,
        book_id: parsed_opt(r, "book_id")?,
        created_at: get(r, "created_at")?,
        started_at: get(r, "started_at")?,
        finished_at: get(r, "finished_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

pub(crate) fn ocr_result(r: &DbRow) -> StoreResult<OcrResult> {
    Ok(OcrResult {
        content_sha256: parsed(r, "content_sha256")?,
        engine: get(r, "engine")?,
        page_count: get(r, "page_count")?,
        layered_key: parsed(r, "layered_key")?,
        created_at: get(r, "created_at")?,
    })
}

pub(crate) fn ocr_page(r: &DbRow) -> StoreResult<OcrPage> {
    let lines: String = get(r, "lines")?;
    Ok(OcrPage {
        content_sha256: parsed(r, "content_sha256")?,
        page: get(r, "page")?,
        text: get(r, "text")?,
        lines: serde_json::from_str(&lines).map_err(StoreError::internal)?,
    })
}
