//! The OpenAPI document, generated from the handlers' annotations. A test checks every route of the
//! router appears here.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{auth, books, ops, processing, search, shelves, sync_upload, uploads};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Athena API", description = "Self-hosted ebook library. Success bodies are `{status: \"success\", data}`; errors are `{status: \"error\", code, message, details, detail}` with the stable codes of CONTRACTS.md."),
    modifiers(&BearerAuth),
    paths(
        auth::send_code, auth::verify_code, auth::refresh, auth::logout, auth::sessions, auth::me,
        uploads::upload_init, uploads::signed_put, uploads::upload_complete, uploads::dedup_reference, uploads::upload_multipart,
        books::list_books, books::list_deleted, books::get_book, books::edit_metadata, books::delete_book, books::restore_book,
        books::delete_permanently, books::content, books::cover,
        processing::status, processing::request_ocr, processing::ocr_status, processing::ocr_page, processing::ocr_search,
        search::search,
        shelves::create, shelves::list, shelves::get, shelves::patch, shelves::delete, shelves::add_item, shelves::items, shelves::remove_item,
        sync_upload::upload,
        ops::health, ops::metrics,
    ),
    tags((name = "auth"), (name = "books"), (name = "uploads"), (name = "processing"), (name = "search"), (name = "shelves"), (name = "sync"), (name = "operations"))
)]
pub struct ApiDoc;
