//! What clients see: the JSON shapes of books, shelves, users and sessions, documented for OpenAPI.
//! Field names follow the synced tables' client names (`file_type`, `file_size`, `cover_url`, …).

use athena_store::{Book, Session, Shelf, ShelfItem, User};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct BookView {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub author: Option<String>,
    pub language: Option<String>,
    /// API path of the cover image, when the book has one.
    pub cover_url: Option<String>,
    /// Sniffed from the content: epub, pdf, mobi, azw3, fb2, txt, rtf, docx, doc, djvu, lit.
    pub file_type: String,
    pub file_size: i64,
    pub content_sha256: String,
    pub original_content_sha256: String,
    pub storage_key: String,
    pub metadata_confirmed: bool,
    pub is_digitalized: Option<bool>,
    pub initial_digitalization_confidence: Option<f64>,
    pub page_count: Option<i64>,
    pub ocr_status: Option<String>,
    pub conversion_status: Option<String>,
    pub converted_epub_key: Option<String>,
    /// Extracted metadata: authors, publisher, identifiers, description, toc, warnings.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Book> for BookView {
    fn from(b: Book) -> Self {
        Self {
            cover_url: b.cover_image_key.as_ref().map(|_| format!("/api/v1/books/{}/cover", b.id)),
            id: b.id.to_string(),
            user_id: b.user_id.to_string(),
            title: b.title,
            author: b.author,
            language: b.language,
            file_type: b.original_format.to_string(),
            file_size: b.size,
            content_sha256: b.content_sha256.to_string(),
            original_content_sha256: b.original_content_sha256.to_string(),
            storage_key: b.minio_key.to_string(),
            metadata_confirmed: b.metadata_confirmed,
            is_digitalized: b.is_digitalized,
            initial_digitalization_confidence: b.initial_digitalization_confidence,
            page_count: b.page_count,
            ocr_status: b.ocr_status,
            conversion_status: b.conversion_status,
            converted_epub_key: b.converted_epub_key.map(|k| k.to_string()),
            meta: b.meta,
            version: b.version,
            created_at: b.created_at,
            updated_at: b.updated_at,
            deleted_at: b.deleted_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ShelfView {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    pub cover_url: Option<String>,
    pub sort_order: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Shelf> for ShelfView {
    fn from(s: Shelf) -> Self {
        Self {
            id: s.id.to_string(),
            user_id: s.user_id.to_string(),
            name: s.name,
            description: s.description,
            cover_url: s.cover_url,
            sort_order: s.sort_order,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ShelfItemView {
    pub id: String,
    pub shelf_id: String,
    pub book_id: String,
    pub sort_order: i64,
    pub added_at: DateTime<Utc>,
}

impl From<ShelfItem> for ShelfItemView {
    fn from(i: ShelfItem) -> Self {
        Self { id: i.id, shelf_id: i.shelf_id.to_string(), book_id: i.book_id.to_string(), sort_order: i.sort_order, added_at: i.added_at }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub language: String,
    pub timezone: String,
    pub role: String,
    pub membership_tier: String,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            display_name: u.display_name,
            language: u.language,
            timezone: u.timezone,
            role: u.role.as_str().to_string(),
            membership_tier: u.membership_tier,
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// True for the session the request was made with.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: Session, current: &athena_domain::SessionId) -> Self {
        Self {
            current: &s.id == current,
            id: s.id.to_string(),
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.refresh_expires_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ListView<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
